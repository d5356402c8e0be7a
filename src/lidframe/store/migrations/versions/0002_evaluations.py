"""evaluations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "lidframe_evaluations",
        sa.Column("eval_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("job_id", sa.String(200)),
        sa.Column("results", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("record", JSONType, nullable=False),
    )
    op.create_index("ix_lidframe_evaluations_name", "lidframe_evaluations", ["name"])


def downgrade() -> None:
    op.drop_index("ix_lidframe_evaluations_name", "lidframe_evaluations")
    op.drop_table("lidframe_evaluations")
