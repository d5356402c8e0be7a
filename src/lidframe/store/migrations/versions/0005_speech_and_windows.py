"""speech: seconds of audio and of speech per row, a long file's windows and code switches

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

``lidframe_results.audio_seconds`` and ``lidframe_results.speech_seconds`` (see
:data:`lidframe.columns.SPEECH`): how much audio a row has and how much of it voice activity
detection found to be speech; ``lidframe_results.code_switch``: a long file's confident windows
disagree on the language; ``lidframe_predictions.windows`` (JSON): a long file's windows as one
model judged them (see :mod:`lidframe.row_windows`). Null for rows stored before this revision.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("lidframe_results", sa.Column("audio_seconds", sa.Float()))
    op.add_column("lidframe_results", sa.Column("speech_seconds", sa.Float()))
    op.add_column("lidframe_results", sa.Column("code_switch", sa.Boolean()))
    op.add_column(
        "lidframe_predictions",
        sa.Column("windows", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
    )


def downgrade() -> None:
    op.drop_column("lidframe_predictions", "windows")
    op.drop_column("lidframe_results", "code_switch")
    op.drop_column("lidframe_results", "speech_seconds")
    op.drop_column("lidframe_results", "audio_seconds")
