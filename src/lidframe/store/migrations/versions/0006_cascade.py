"""cascade: the models each row was sent to

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24

``lidframe_results.models_asked`` (see :data:`lidframe.columns.CASCADE`): with ``--cascade``, the
aliases of the models a row was sent to, in order. Null for rows stored before this revision and for
jobs without a cascade.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("lidframe_results", sa.Column("models_asked", sa.Text()))


def downgrade() -> None:
    op.drop_column("lidframe_results", "models_asked")
