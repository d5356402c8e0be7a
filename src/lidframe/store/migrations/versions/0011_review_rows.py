"""review: one row, one reviewer across queues (an index by row; rows answered elsewhere settled)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

A row can sit in several review queues; its claim is now exclusive per row, whatever queue it came
through, and an answer settles the row's items in the other queues (:mod:`lidframe.store.reviews`,
issue 24). Both look items up by ``(job_id, row)``: ``ix_lidframe_review_items_row`` (the primary
key leads with the queue) and ``ix_lidframe_review_answers_job_row`` for the answers. Items of rows
answered before this revision in another queue are marked done here, as an answer does now.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_lidframe_review_items_row", "lidframe_review_items", ["job_id", "row"])
    op.create_index(
        "ix_lidframe_review_answers_job_row", "lidframe_review_answers", ["job_id", "row"]
    )
    first_answer = (
        "SELECT a.reviewer FROM lidframe_review_answers a WHERE a.job_id = i.job_id "
        "AND a.row = i.row AND a.second = i.second AND a.withdrawn_at IS NULL "
        "ORDER BY a.answer_id LIMIT 1"
    )
    op.execute(
        sa.text(
            f"UPDATE lidframe_review_items AS i SET state = 'done', lease_token = NULL, "
            f"leased_until = NULL, reviewer = ({first_answer}) "
            f"WHERE i.state <> 'done' AND EXISTS ({first_answer})"
        )
    )


def downgrade() -> None:
    op.drop_index("ix_lidframe_review_answers_job_row", "lidframe_review_answers")
    op.drop_index("ix_lidframe_review_items_row", "lidframe_review_items")
