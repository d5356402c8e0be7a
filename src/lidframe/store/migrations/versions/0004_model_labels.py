"""model labels: each job records the label set of every model

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

``lidframe_jobs.labels`` (JSON ``{alias: [codes]}``): what each model of the job can answer, as the
loaded models said, so evaluation, calibration and reports read it instead of guessing it from a
model's name. Null for jobs created before this revision or not yet started.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "lidframe_jobs",
        sa.Column("labels", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
    )


def downgrade() -> None:
    op.drop_column("lidframe_jobs", "labels")
