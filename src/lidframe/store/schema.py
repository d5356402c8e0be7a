"""The database tables. Alembic migrations under ``migrations/`` create exactly these.

All tables are prefixed ``lidframe_`` so they can share a database (and a schema) with others.

``lidframe_jobs``: one row per job.
    ``job_id`` (the stable id), ``status`` (``running``, ``stopped``: unfinished and no process
    works on it, ``finished``, ``finished_with_dead``),
    ``manifest`` (URL as given), ``manifest_digest`` (hash of its rows), ``out`` (Parquet folder),
    ``models`` (JSON list of model names), ``config`` (JSON: every setting that changes results),
    ``fingerprint`` (hash of manifest, models and config: a resumed job must match it),
    ``environment`` (JSON: versions and host of the process that created the job),
    ``n_partitions``, ``n_rows`` (so far, while ``planned`` is false: partitions are added as the
    manifest is planned), ``content_digest`` (hash of every partition's digest, once planned),
    ``labels`` (JSON ``{alias: [codes]}``: each model's label set, recorded when the models are
    loaded), ``fidelity`` (JSON: the last half-precision check against float32, see
    :func:`lidframe.kernel.check_fidelity`, with ``fallback`` and the checks of earlier runs under
    ``earlier``;
    null when the job never ran in half precision), ``created_at``, ``updated_at``.

``lidframe_partitions``: one row per (job, partition); partition ``k`` is manifest rows
    ``[row_start, row_stop)``. ``state`` is ``pending``, ``running`` (leased), ``done`` or ``dead``.
    ``attempts`` counts claims; ``lease_owner`` / ``lease_token`` / ``lease_expires`` (epoch seconds
    on the database's clock) describe the current lease; ``last_error`` the last failure.
    ``rows`` / ``errors`` / ``seconds`` (task time) are filled when it is done; ``started_at`` (last
    claim) and ``finished_at`` are epoch seconds on the database clock (``to_timestamp()`` in psql).
    ``source`` (``FILE:START:STOP``, see :class:`lidframe.manifest.PlannedPartition`) and ``digest``
    say where its rows are and what they hash to.

``lidframe_results``: one row per (job, manifest row): ``row`` (its position in the manifest, the
    key), ``partition``, then the result columns declared in :mod:`lidframe.columns` (manifest,
    row and consensus groups): ``row_id`` (the manifest id: unique per job except on
    ``duplicate_id`` error rows), ``audio``, ``label``, ``offset``, ``duration``, ``error``,
    ``error_category`` (the part of ``error`` before the colon), and the consensus columns ``lang``,
    ``agree``, ``n_agree``, ``consensus_prob``, ``consensus_method`` (null with one model).

``lidframe_evaluations``: one row per stored evaluation (``lidframe eval``): ``eval_id``, ``name``,
    ``job_id`` (when the results belong to a job of this database), ``results`` (the folder),
    ``created_at`` and ``record`` (JSON: models, weights hashes, environment, settings, and per source
    the summary and per-language table).

``lidframe_predictions``: one row per (job, manifest row, model): ``model`` (the column alias, e.g.
    ``whisper_base``), then the per-model columns of :mod:`lidframe.columns`: ``lang``, ``prob`` and
    ``topk`` (JSON list of ``{"lang", "prob"}``). Its
    foreign key is the job only: a per-row check against ``lidframe_results`` cost PostgreSQL about
    0.25 ms per row in bulk writes (benchmarks/job_overhead.py), and both tables are always written
    in one transaction anyway.

``lidframe_review_queues``: one row per (job, review queue) (:mod:`lidframe.review`): ``queue`` (its
    name, e.g. ``disagreement`` or ``language-fr``), ``kind`` (which rows it selects, see
    :mod:`lidframe.review`), ``params`` (JSON: every setting it was built with: criteria, limit,
    seed, second-review share), ``strata`` (JSON ``{predicted language: rows of the job}``, for
    the ``random`` queue's stratified accuracy estimate; null for the others), ``created_at``
    (epoch seconds on the database clock).

``lidframe_review_items``: one row per (job, queue, manifest row, ``second``): a row to be shown to a
    reviewer; ``second`` is true for the copy of a row a second reviewer answers (inter-reviewer
    agreement). ``row_id`` (the manifest id), ``position`` (the queue's pseudo-random order,
    seeded; a skipped row moves to the back), ``stratum`` (the job's answer for the row when the
    queue was built), ``state`` (``pending``, ``leased``, ``done``), ``reviewer`` (who holds the
    lease, then who answered), ``lease_token`` and ``leased_until`` (epoch seconds on the database
    clock) of the current lease. Indexed by (job, queue, state, position) for "the next row", by
    (job, reviewer, state) for "the row this reviewer holds", and by (job, row) for "is this row
    held or answered in another queue" (a row is in one reviewer's hands at a time).

``lidframe_review_answers``: append-only, one row per answer a reviewer gave (or imported from Label
    Studio): ``answer_id`` (increasing), ``queue``, ``row``, ``row_id``, ``second``,
    ``reviewer``, ``answered_at`` (epoch seconds on the database clock), ``verdict`` (``label``,
    ``unsure`` or ``no_speech``), ``label`` (canonical code; ``und`` for no speech; null when
    unsure), ``shown`` (JSON: each model's top 3 and the consensus as the reviewer saw them),
    ``lidframe_version``, and ``withdrawn_at`` (set by an undo: the answer is kept, not deleted).

``lidframe_behaviour``: one row per (job, partition, ``model``), written in the transaction that
    commits the partition's rows (:mod:`lidframe.store.behaviour`): what the model said over the
    partition, ``model`` being its column alias, or ``*`` for the job's answer (the consensus with
    several models). ``worker`` (the Dask worker's address) and ``host`` that ran it; counts of
    ``rows``, ``answered`` (with a language), ``und``, ``errors`` (no answer, by error), ``agree``
    (the answer: every answering model agreed), ``code_switch``; ``speech_seconds``; ``prob_sum``
    (sum of the top-1 probabilities of the rows answered with a language); ``prob_0`` ..
    ``prob_9`` (those rows by top-1 probability, ten even bins over [0, 1]) and ``margin_0`` ..
    ``margin_9`` (the answer's margin, ten even bins over [-1, 1]). A fixed size per partition;
    summed by SQL for ``lidframe status``.

``lidframe_behaviour_counts``: one row per (job, partition, ``model``, ``kind``, ``key``) with a
    non-zero count ``n``: ``kind`` ``lang`` (rows answered ``key``, a canonical code), ``error``
    (rows without an answer of error category ``key``) or ``label`` (the answer's ``labelled``
    rows, with a label and an answer, and the ``correct`` ones). At most one row per language of the
    models' label sets and per error category, whatever the partition's size.

``lidframe_behaviour_totals``: the two tables above summed per (job, ``worker``, ``model``):
    one row per (``kind``, ``key``) with its ``value``: ``kind`` ``stat`` (``key`` a scalar
    column's name), ``prob`` / ``margin`` (``key`` the bin), ``lang`` or ``error``; ``host`` of the
    worker; ``worker`` empty outside Dask. Kept in the transactions that write partitions' rows
    (:mod:`lidframe.store.behaviour_rows`), so ``lidframe status`` sums a few rows per worker
    instead of every partition's.

``lidframe_workers``: one row per (job, Dask ``worker`` address) the job's driver checked
    (:mod:`lidframe.environment`): ``host``, ``environment`` (the worker's fingerprint digest),
    ``verdict`` (``same`` as the job's; ``refused``: differs in what can change an answer, no
    partitions; ``allowed``: differs so, and mixed environments were allowed; ``reported``: differs
    only in what cannot change an answer), ``difference`` (what differs, the job's value second:
    ``soxr 1.0.0 != 1.1.0 of the job``), ``line`` (the one line status shows), ``fingerprint``
    (JSON: the worker's whole fingerprint when it differs at all; null when the same as the job's),
    ``seen_at`` (when last checked, the database's clock).
"""

from __future__ import annotations

import sqlalchemy as sa

from lidframe.columns import CASCADE, CONSENSUS, JSON_TYPE, MANIFEST, MODEL, ROW, SPEECH

__all__ = [
    "behaviour",
    "behaviour_counts",
    "behaviour_totals",
    "evaluations",
    "jobs",
    "metadata",
    "partitions",
    "predictions",
    "results",
    "review_answers",
    "review_items",
    "review_queues",
    "workers",
]

metadata = sa.MetaData()

JSONType = JSON_TYPE
Timestamp = sa.DateTime(timezone=True)
# Ids are unique per job, except on rows that are themselves the duplicate_id errors.
_UNIQUE_ID = "error_category IS NULL OR error_category <> 'duplicate_id'"

jobs = sa.Table(
    "lidframe_jobs",
    metadata,
    sa.Column("job_id", sa.String(200), primary_key=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("manifest", sa.Text, nullable=False),
    sa.Column("manifest_digest", sa.String(64), nullable=False),
    sa.Column("out", sa.Text, nullable=False),
    sa.Column("models", JSONType, nullable=False),
    sa.Column("config", JSONType, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("environment", JSONType, nullable=False),
    sa.Column("n_partitions", sa.Integer, nullable=False),
    sa.Column("n_rows", sa.BigInteger, nullable=False),
    sa.Column("planned", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("content_digest", sa.String(64)),
    sa.Column("labels", JSONType),
    sa.Column("fidelity", JSONType),
    sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", Timestamp, nullable=False, server_default=sa.func.now()),
)

partitions = sa.Table(
    "lidframe_partitions",
    metadata,
    sa.Column(
        "job_id",
        sa.String(200),
        sa.ForeignKey("lidframe_jobs.job_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("row_start", sa.BigInteger, nullable=False),
    sa.Column("row_stop", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_token", sa.String(64)),
    sa.Column("lease_expires", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Column("rows", sa.Integer),
    sa.Column("errors", sa.Integer),
    sa.Column("seconds", sa.Float),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("source", sa.Text),
    sa.Column("digest", sa.String(32)),
    sa.Index("ix_lidframe_partitions_job_state", "job_id", "state", "partition"),
)

# The result columns come from lidframe.columns (declared once); the keys are this module's.
_ID, *_MANIFEST_REST = MANIFEST

results = sa.Table(
    "lidframe_results",
    metadata,
    sa.Column(
        "job_id",
        sa.String(200),
        sa.ForeignKey("lidframe_jobs.job_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    _ID.sql_column(),
    sa.Column("row", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("partition", sa.Integer, nullable=False),
    *(c.sql_column() for c in (*_MANIFEST_REST, *ROW, *SPEECH, *CASCADE, *CONSENSUS)),
    sa.Index("ix_lidframe_results_job_partition", "job_id", "partition"),
    sa.Index(
        "ux_lidframe_results_job_row_id",
        "job_id",
        "row_id",
        unique=True,
        postgresql_where=sa.text(_UNIQUE_ID),
        sqlite_where=sa.text(_UNIQUE_ID),
    ),
)

predictions = sa.Table(
    "lidframe_predictions",
    metadata,
    sa.Column("job_id", sa.String(200), primary_key=True),
    sa.Column("row_id", sa.Text, primary_key=True),
    sa.Column("model", sa.String(200), primary_key=True),
    *(c.sql_column() for c in MODEL),
    sa.ForeignKeyConstraint(["job_id"], ["lidframe_jobs.job_id"], ondelete="CASCADE"),
)

evaluations = sa.Table(
    "lidframe_evaluations",
    metadata,
    sa.Column("eval_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("job_id", sa.String(200)),
    sa.Column("results", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.now()),
    sa.Column("record", JSONType, nullable=False),
    sa.Index("ix_lidframe_evaluations_name", "name"),
)


def _job_fk() -> sa.ForeignKey:
    return sa.ForeignKey("lidframe_jobs.job_id", ondelete="CASCADE")


review_queues = sa.Table(
    "lidframe_review_queues",
    metadata,
    sa.Column("job_id", sa.String(200), _job_fk(), primary_key=True),
    sa.Column("queue", sa.String(100), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("params", JSONType, nullable=False),
    sa.Column("strata", JSONType),
    sa.Column("created_at", sa.Float, nullable=False),
)

review_items = sa.Table(
    "lidframe_review_items",
    metadata,
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
    sa.Index("ix_lidframe_review_items_next", "job_id", "queue", "state", "position"),
    sa.Index("ix_lidframe_review_items_reviewer", "job_id", "reviewer", "state"),
    sa.Index("ix_lidframe_review_items_row", "job_id", "row"),
)

review_answers = sa.Table(
    "lidframe_review_answers",
    metadata,
    # BIGINT on PostgreSQL; SQLite autoincrements only an INTEGER primary key.
    sa.Column(
        "answer_id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("job_id", sa.String(200), _job_fk(), nullable=False),
    sa.Column("queue", sa.String(100), nullable=False),
    sa.Column("row", sa.BigInteger, nullable=False),
    sa.Column("row_id", sa.Text, nullable=False),
    sa.Column("second", sa.Boolean, nullable=False),
    sa.Column("reviewer", sa.String(200), nullable=False),
    sa.Column("answered_at", sa.Float, nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("label", sa.String(16)),
    sa.Column("shown", JSONType),
    sa.Column("lidframe_version", sa.String(64), nullable=False),
    sa.Column("withdrawn_at", sa.Float),
    sa.Index("ix_lidframe_review_answers_reviewer", "job_id", "reviewer", "answer_id"),
    sa.Index("ix_lidframe_review_answers_row", "job_id", "queue", "row"),
    sa.Index("ix_lidframe_review_answers_job_row", "job_id", "row"),
)


behaviour = sa.Table(
    "lidframe_behaviour",
    metadata,
    sa.Column("job_id", sa.String(200), _job_fk(), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("worker", sa.String(200)),
    sa.Column("host", sa.String(200)),
    *(
        sa.Column(name, sa.Float if name in ("speech_seconds", "prob_sum") else sa.Integer,
                  nullable=False)
        for name in ("rows", "answered", "und", "errors", "agree", "code_switch",
                     "speech_seconds", "prob_sum")
    ),
    *(sa.Column(f"prob_{i}", sa.Integer, nullable=False) for i in range(10)),
    *(sa.Column(f"margin_{i}", sa.Integer, nullable=False) for i in range(10)),
)  # fmt: skip

behaviour_counts = sa.Table(
    "lidframe_behaviour_counts",
    metadata,
    sa.Column("job_id", sa.String(200), _job_fk(), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)

behaviour_totals = sa.Table(
    "lidframe_behaviour_totals",
    metadata,
    sa.Column("job_id", sa.String(200), _job_fk(), primary_key=True),
    sa.Column("worker", sa.String(200), primary_key=True),
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("host", sa.String(200)),
    sa.Column("value", sa.Float, nullable=False),
)

workers = sa.Table(
    "lidframe_workers",
    metadata,
    sa.Column("job_id", sa.String(200), _job_fk(), primary_key=True),
    sa.Column("worker", sa.String(300), primary_key=True),
    sa.Column("host", sa.String(200)),
    sa.Column("environment", sa.String(32), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("difference", sa.Text),
    sa.Column("line", sa.Text),
    sa.Column("fingerprint", JSONType),
    sa.Column("seen_at", Timestamp, nullable=False, server_default=sa.func.now()),
)
