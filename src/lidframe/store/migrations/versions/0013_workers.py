"""workers: each worker a job's driver checked, with its environment's verdict

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

``lidframe_workers`` (see :mod:`lidframe.store.schema` and :mod:`lidframe.environment`, issue 26):
one row per (job, worker): its fingerprint digest, whether it differs from the job's environment in
what can change an answer (and so got no partitions), the difference in one line, and its whole
fingerprint when it differs. Nothing to fill: jobs before this revision checked no worker.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "lidframe_workers",
        sa.Column(
            "job_id",
            sa.String(200),
            sa.ForeignKey("lidframe_jobs.job_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("worker", sa.String(300), primary_key=True),
        sa.Column("host", sa.String(200)),
        sa.Column("environment", sa.String(32), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("difference", sa.Text),
        sa.Column("line", sa.Text),
        sa.Column("fingerprint", JSONType),
        sa.Column(
            "seen_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("lidframe_workers")
