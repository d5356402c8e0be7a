"""review: queues of rows for human review, the rows handed out, and every answer

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-15

``lidframe_review_queues`` (one per job and queue: its kind, settings and the strata of a random
sample), ``lidframe_review_items`` (the rows of a queue, each under a short lease while a reviewer
has it) and ``lidframe_review_answers`` (append-only: every answer with its reviewer, time, what the
models said and the lidframe version; an undo marks it withdrawn). See
:mod:`lidframe.store.schema` and :mod:`lidframe.review` (issue 24).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "lidframe_review_queues",
        sa.Column(
            "job_id",
            sa.String(200),
            sa.ForeignKey("lidframe_jobs.job_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("queue", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("params", _JSON, nullable=False),
        sa.Column("strata", _JSON),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "lidframe_review_items",
        sa.Column("job_id", sa.String(200), primary_key=True),
        sa.Column("queue", sa.String(100), primary_key=True),
        sa.Column("row", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("second", sa.Boolean, primary_key=True),
        sa.Column("row_id", sa.Text, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("stratum", sa.String(16)),
        sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("reviewer", sa.String(200)),
        sa.Column("lease_token", sa.String(64)),
        sa.Column("leased_until", sa.Float),
        sa.ForeignKeyConstraint(
            ["job_id", "queue"],
            ["lidframe_review_queues.job_id", "lidframe_review_queues.queue"],
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_lidframe_review_items_next",
        "lidframe_review_items",
        ["job_id", "queue", "state", "position"],
    )
    op.create_index(
        "ix_lidframe_review_items_reviewer",
        "lidframe_review_items",
        ["job_id", "reviewer", "state"],
    )
    op.create_table(
        "lidframe_review_answers",
        sa.Column(
            "answer_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "job_id",
            sa.String(200),
            sa.ForeignKey("lidframe_jobs.job_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("queue", sa.String(100), nullable=False),
        sa.Column("row", sa.BigInteger, nullable=False),
        sa.Column("row_id", sa.Text, nullable=False),
        sa.Column("second", sa.Boolean, nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("answered_at", sa.Float, nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("label", sa.String(16)),
        sa.Column("shown", _JSON),
        sa.Column("lidframe_version", sa.String(64), nullable=False),
        sa.Column("withdrawn_at", sa.Float),
    )
    op.create_index(
        "ix_lidframe_review_answers_reviewer",
        "lidframe_review_answers",
        ["job_id", "reviewer", "answer_id"],
    )
    op.create_index(
        "ix_lidframe_review_answers_row", "lidframe_review_answers", ["job_id", "queue", "row"]
    )


def downgrade() -> None:
    op.drop_table("lidframe_review_answers")
    op.drop_table("lidframe_review_items")
    op.drop_table("lidframe_review_queues")
