"""behaviour: what the models said, per partition, committed with its rows

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

``lidframe_behaviour`` (one row per job, partition and model, plus ``*`` for the job's answer:
counts, top-1 probability and margin histograms, the worker and host) and
``lidframe_behaviour_counts`` (rows per language answered and per error category). See
:mod:`lidframe.store.schema` and :mod:`lidframe.store.behaviour` (issue 25). Partitions committed
before this revision have none.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_FLOATS = ("speech_seconds", "prob_sum")
_SCALARS = ("rows", "answered", "und", "errors", "agree", "code_switch", *_FLOATS)


def _job() -> sa.Column:
    return sa.Column(
        "job_id",
        sa.String(200),
        sa.ForeignKey("lidframe_jobs.job_id", ondelete="CASCADE"),
        primary_key=True,
    )


def upgrade() -> None:
    op.create_table(
        "lidframe_behaviour",
        _job(),
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("worker", sa.String(200)),
        sa.Column("host", sa.String(200)),
        *(
            sa.Column(name, sa.Float if name in _FLOATS else sa.Integer, nullable=False)
            for name in _SCALARS
        ),
        *(sa.Column(f"prob_{i}", sa.Integer, nullable=False) for i in range(10)),
        *(sa.Column(f"margin_{i}", sa.Integer, nullable=False) for i in range(10)),
    )
    op.create_table(
        "lidframe_behaviour_counts",
        _job(),
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lidframe_behaviour_counts")
    op.drop_table("lidframe_behaviour")
