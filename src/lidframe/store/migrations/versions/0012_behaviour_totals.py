"""behaviour totals: each job's partition behaviour kept summed per worker

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

``lidframe_behaviour_totals`` (see :mod:`lidframe.store.schema` and
:mod:`lidframe.store.behaviour_rows`, issue 25): one row per (job, worker, model, kind, key) with
its summed value, kept in the transactions that commit partitions, so ``lidframe status`` reads a
few rows per worker instead of summing a million partitions' behaviour. Filled here from the
partitions stored since revision 0010.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_SCALARS = ("rows", "answered", "und", "errors", "agree", "code_switch", "speech_seconds",
            "prob_sum")  # fmt: skip
_TOTALS = "lidframe_behaviour_totals (job_id, worker, model, kind, key, host, value)"


def upgrade() -> None:
    op.create_table(
        "lidframe_behaviour_totals",
        sa.Column(
            "job_id",
            sa.String(200),
            sa.ForeignKey("lidframe_jobs.job_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("worker", sa.String(200), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(200)),
        sa.Column("value", sa.Float, nullable=False),
    )
    columns = [("stat", name, name) for name in _SCALARS]
    columns += [("prob", str(i), f"prob_{i}") for i in range(10)]
    columns += [("margin", str(i), f"margin_{i}") for i in range(10)]
    for kind, key, column in columns:
        op.execute(
            f"INSERT INTO {_TOTALS} SELECT job_id, COALESCE(worker, ''), model, '{kind}', "
            f"'{key}', MAX(host), SUM({column}) FROM lidframe_behaviour "
            f"GROUP BY job_id, COALESCE(worker, ''), model HAVING SUM({column}) <> 0"
        )
    op.execute(
        f"INSERT INTO {_TOTALS} SELECT c.job_id, COALESCE(b.worker, ''), c.model, c.kind, c.key, "
        "MAX(b.host), SUM(c.n) FROM lidframe_behaviour_counts c JOIN lidframe_behaviour b "
        "ON b.job_id = c.job_id AND b.partition = c.partition AND b.model = c.model "
        "GROUP BY c.job_id, COALESCE(b.worker, ''), c.model, c.kind, c.key"
    )


def downgrade() -> None:
    op.drop_table("lidframe_behaviour_totals")
