"""Planning: a job's partitions are added as the manifest is read, then sealed with a digest.

A manifest with millions of rows is planned in chunks (:meth:`Planning.add_partitions`), in bulk
(COPY on PostgreSQL), and a second process planning the same job adds nothing twice.
:meth:`Planning.finish_planning` stores a hash of every partition's digest: a job resumed on a
manifest whose content changed is refused instead of mixing results of two inputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lidframe.errors import StoreError
from lidframe.store.base import StoreBase
from lidframe.store.schema import jobs, partitions

__all__ = ["Planning", "insert_partitions"]

P = partitions.c
_INSERT_BATCH = 50_000  # rows per executemany on SQLite


class Planning(StoreBase):
    """Adding a job's planned partitions and sealing the plan (mixed into
    :class:`~lidframe.store.jobs.JobStore`)."""

    def add_partitions(self, job_id: str, planned: Sequence[Any]) -> None:
        """Add planned partitions (:class:`lidframe.manifest.PlannedPartition`, in order) to the job.

        One bulk write (COPY on PostgreSQL, executemany on SQLite); partitions already there (another
        process plans the same job) are kept as they are.
        """
        if not planned:
            return
        rows = [(job_id, p.partition, p.row_start, p.row_stop, p.source, p.digest) for p in planned]
        last = planned[-1]

        def tx(conn: Connection) -> None:
            insert_partitions(conn, rows)
            conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job_id, jobs.c.n_partitions <= last.partition)
                .values(n_partitions=last.partition + 1, n_rows=last.row_stop)
            )

        self._tx(f"adding partitions to job {job_id}", tx)

    def last_planned(self, job_id: str) -> tuple[int, int, int, str, str] | None:
        """The job's last planned partition ``(partition, row_start, row_stop, source, digest)``."""

        def tx(conn: Connection) -> tuple[int, int, int, str, str] | None:
            row = conn.execute(
                sa.select(P.partition, P.row_start, P.row_stop, P.source, P.digest)
                .where(P.job_id == job_id)
                .order_by(P.partition.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            return int(row[0]), int(row[1]), int(row[2]), str(row[3]), str(row[4])

        return self._tx(f"reading the plan of {job_id}", tx)

    def finish_planning(self, job_id: str) -> str:
        """Mark every partition planned and store the content digest (a hash of every partition's
        digest, in order); returns it. Raises :class:`StoreError` when the job was planned before
        with another content: the manifest changed between two runs of the job."""

        def tx(conn: Connection) -> str:
            digest = hashlib.blake2b(digest_size=16)
            n = rows = 0
            result = conn.execute(
                sa.select(P.digest, P.row_stop)
                .where(P.job_id == job_id)
                .order_by(P.partition)
                .execution_options(yield_per=50_000)
            )
            for part_digest, stop in result:
                digest.update(f"{part_digest}\x1f".encode())
                n += 1
                rows = int(stop)
            content = digest.hexdigest()
            job = conn.execute(
                sa.select(jobs.c.content_digest).where(jobs.c.job_id == job_id)
            ).one()
            if job[0] is not None and job[0] != content:
                raise _ManifestChanged(job_id)
            conn.execute(
                jobs.update()
                .where(jobs.c.job_id == job_id)
                .values(planned=True, content_digest=content, n_partitions=n, n_rows=rows)
            )
            return content

        try:
            return self._tx(f"finishing the plan of {job_id}", tx)
        except _ManifestChanged:
            raise StoreError(
                f"job {job_id!r}: the manifest's content changed since the job was planned; "
                "restore it, or run it as a new job (--overwrite)"
            ) from None


class _ManifestChanged(Exception):
    pass


def insert_partitions(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Bulk insert of ``(job_id, partition, row_start, row_stop, source, digest)`` rows; rows whose
    partition exists are left alone."""
    columns = ("job_id", "partition", "row_start", "row_stop", "source", "digest")
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    names = ", ".join(f'"{c}"' for c in columns)
    if conn.dialect.name == "postgresql":
        # COPY into a scratch table, then one INSERT ... ON CONFLICT DO NOTHING: COPY's speed, and
        # a second planner of the same job adds nothing twice.
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS lidframe_planned "
            "(LIKE lidframe_partitions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cursor.copy(f"COPY lidframe_planned ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["varchar", "int4", "int8", "int8", "text", "varchar"])
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO lidframe_partitions ({names}) SELECT {names} FROM lidframe_planned "
            "ON CONFLICT DO NOTHING"
        )
        cursor.execute("DELETE FROM lidframe_planned")
        return
    for i in range(0, len(rows), _INSERT_BATCH):
        cursor.executemany(
            f"INSERT OR IGNORE INTO lidframe_partitions ({names}) VALUES (?, ?, ?, ?, ?, ?)",
            rows[i : i + _INSERT_BATCH],
        )
