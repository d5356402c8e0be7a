"""speech: each result row records its seconds of audio and of speech

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

``lidframe_results.audio_seconds`` and ``lidframe_results.speech_seconds`` (see
:data:`lidframe.columns.SPEECH`): how much audio a row has and how much of it voice activity
detection found to be speech. Null for rows stored before this revision.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("lidframe_results", sa.Column("audio_seconds", sa.Float()))
    op.add_column("lidframe_results", sa.Column("speech_seconds", sa.Float()))


def downgrade() -> None:
    op.drop_column("lidframe_results", "speech_seconds")
    op.drop_column("lidframe_results", "audio_seconds")
