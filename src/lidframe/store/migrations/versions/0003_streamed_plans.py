"""streamed plans: partitions carry their source, duplicate ids are row errors

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

* ``lidframe_jobs.planned`` (every partition is in the table) and ``content_digest`` (hash of the
  partitions' digests, set when planning ends): partitions are planned while the job runs.
* ``lidframe_partitions.source`` / ``digest``: where a partition's rows are in the manifest, and
  what they hash to, so any process can read one partition alone and notice a changed manifest.
* ``lidframe_results`` is keyed by (job, manifest row); an id is unique per job among rows that are
  not ``duplicate_id`` errors (a partial unique index), so a duplicate id is stored as a row error.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_UNIQUE = "error_category IS NULL OR error_category <> 'duplicate_id'"


def upgrade() -> None:
    op.add_column(
        "lidframe_jobs",
        sa.Column("planned", sa.Boolean, nullable=False, server_default=sa.true()),
    )
    op.add_column("lidframe_jobs", sa.Column("content_digest", sa.String(64)))
    op.drop_index("ix_lidframe_partitions_job_state", "lidframe_partitions")
    op.create_index(
        "ix_lidframe_partitions_job_state", "lidframe_partitions", ["job_id", "state", "partition"]
    )
    op.add_column("lidframe_partitions", sa.Column("source", sa.Text))
    op.add_column("lidframe_partitions", sa.Column("digest", sa.String(32)))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE lidframe_results DROP CONSTRAINT lidframe_results_pkey, "
            'ADD CONSTRAINT lidframe_results_pkey PRIMARY KEY (job_id, "row")'
        )
    else:
        # SQLite cannot change a primary key in place: a new table, the rows copied over.
        op.create_table(
            "lidframe_results_v3",
            sa.Column(
                "job_id",
                sa.String(200),
                sa.ForeignKey("lidframe_jobs.job_id", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("row_id", sa.Text, nullable=False),
            sa.Column("row", sa.BigInteger, primary_key=True, autoincrement=False),
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
        op.execute("INSERT INTO lidframe_results_v3 SELECT * FROM lidframe_results")
        op.drop_table("lidframe_results")
        op.rename_table("lidframe_results_v3", "lidframe_results")
        op.create_index(
            "ix_lidframe_results_job_partition", "lidframe_results", ["job_id", "partition"]
        )
    op.create_index(
        "ux_lidframe_results_job_row_id",
        "lidframe_results",
        ["job_id", "row_id"],
        unique=True,
        postgresql_where=sa.text(_UNIQUE),
        sqlite_where=sa.text(_UNIQUE),
    )


def downgrade() -> None:
    op.drop_index("ux_lidframe_results_job_row_id", "lidframe_results")
    op.drop_index("ix_lidframe_partitions_job_state", "lidframe_partitions")
    op.create_index("ix_lidframe_partitions_job_state", "lidframe_partitions", ["job_id", "state"])
    op.drop_column("lidframe_partitions", "digest")
    op.drop_column("lidframe_partitions", "source")
    op.drop_column("lidframe_jobs", "content_digest")
    op.drop_column("lidframe_jobs", "planned")
