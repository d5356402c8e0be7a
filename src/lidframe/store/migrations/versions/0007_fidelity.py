"""fidelity: a job's half-precision check against float32

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

``lidframe_jobs.fidelity`` (JSON): per model the clips compared, top-1 agreement and largest
probability difference of half precision against float32, and whether the job fell back to float32
(see :mod:`lidframe.fidelity`). Null for jobs that never ran in half precision.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "lidframe_jobs",
        sa.Column("fidelity", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
    )


def downgrade() -> None:
    op.drop_column("lidframe_jobs", "fidelity")
