"""jobs, partitions, results, predictions

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "lidframe_jobs",
        sa.Column("job_id", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("manifest_digest", sa.String(64), nullable=False),
        sa.Column("out", sa.Text, nullable=False),
        sa.Column("models", JSONType, nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("environment", JSONType, nullable=False),
        sa.Column("n_partitions", sa.Integer, nullable=False),
        sa.Column("n_rows", sa.BigInteger, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", Timestamp, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "lidframe_partitions",
        sa.Column(
            "job_id",
            sa.String(200),
            sa.ForeignKey("lidframe_jobs.job_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("row_start", sa.BigInteger, nullable=False),
        sa.Column("row_stop", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_token", sa.String(64)),
        sa.Column("lease_expires", sa.Float),
        sa.Column("last_error", sa.Text),
        sa.Column("rows", sa.Integer),
        sa.Column("errors", sa.Integer),
        sa.Column("seconds", sa.Float),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
    )
    op.create_index("ix_lidframe_partitions_job_state", "lidframe_partitions", ["job_id", "state"])
    op.create_table(
        "lidframe_results",
        sa.Column(
            "job_id",
            sa.String(200),
            sa.ForeignKey("lidframe_jobs.job_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("row_id", sa.Text, primary_key=True),
        sa.Column("row", sa.BigInteger, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("audio", sa.Text, nullable=False),
        sa.Column("offset", sa.Float),
        sa.Column("duration", sa.Float),
        sa.Column("label", sa.String(16)),
        sa.Column("error", sa.Text),
        sa.Column("error_category", sa.String(32)),
        sa.Column("lang", sa.String(16)),
        sa.Column("agree", sa.Boolean),
        sa.Column("n_agree", sa.Integer),
        sa.Column("consensus_prob", sa.Float),
        sa.Column("consensus_method", sa.String(64)),
    )
    op.create_index(
        "ix_lidframe_results_job_partition", "lidframe_results", ["job_id", "partition"]
    )
    op.create_table(
        "lidframe_predictions",
        sa.Column("job_id", sa.String(200), primary_key=True),
        sa.Column("row_id", sa.Text, primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("lang", sa.String(16)),
        sa.Column("prob", sa.Float),
        sa.Column("topk", JSONType),
        sa.ForeignKeyConstraint(["job_id"], ["lidframe_jobs.job_id"], ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("lidframe_predictions")
    op.drop_index("ix_lidframe_results_job_partition", "lidframe_results")
    op.drop_table("lidframe_results")
    op.drop_index("ix_lidframe_partitions_job_state", "lidframe_partitions")
    op.drop_table("lidframe_partitions")
    op.drop_table("lidframe_jobs")
