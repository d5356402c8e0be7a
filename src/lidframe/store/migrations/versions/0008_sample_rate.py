"""sample rate: each row's file's own sample rate

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08

``lidframe_results.sample_rate`` (see :data:`lidframe.columns.SPEECH`): the sample rate of the
row's audio as stored, in Hz, before lidframe resampled it (8000 for telephone audio). Null for rows
that did not decode and for rows stored before this revision.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("lidframe_results", sa.Column("sample_rate", sa.Integer()))


def downgrade() -> None:
    op.drop_column("lidframe_results", "sample_rate")
