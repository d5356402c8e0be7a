"""What the listening page reads beside the review loop: which file a row of the job names, and
which row a reviewer will most likely get next (so the page can load its audio early).

Both are reads, one transaction each, through the store's retried transaction
(:class:`~lidframe.store.reviews.ReviewStore`); every change of review state stays in
:mod:`lidframe.store.reviews`. They sit here, not there, because only the page needs them.

* :meth:`ReviewReads.row_audio` answers only for rows in one of the job's review queues: the page
  plays nothing else, so a row number of another job, or of this job outside its queues, is
  unknown (404), and the URI comes from the job database, never from the request.
* :meth:`ReviewReads.upcoming` is a hint: the first pending first-review row of the queues, in the
  order :meth:`~lidframe.store.reviews.ReviewStore.claim` hands rows out. Another reviewer may take
  it first (then the page loads the row it does get); nothing is leased by asking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lidframe.store.reviews import ReviewStore
from lidframe.store.schema import results, review_items

__all__ = ["ReviewReads", "RowAudio"]


@dataclass(frozen=True)
class RowAudio:
    """The file a row names, as the job read it."""

    row: int
    audio: str  # the manifest's URI
    offset: float | None
    duration: float | None


class ReviewReads(ReviewStore):
    """The page's reads of one job database (see the module docstring)."""

    def row_audio(self, job_id: str, row: int) -> RowAudio | None:
        """The file of ``row`` of ``job_id`` when the row is in one of its review queues."""
        R, IT = results.c, review_items.c

        def tx(conn: Connection) -> RowAudio | None:
            found = conn.execute(
                sa.select(R.audio, R.offset, R.duration)
                .where(
                    R.job_id == job_id,
                    R.row == row,
                    sa.exists().where(IT.job_id == job_id, IT.row == row),
                )
                .limit(1)
            ).first()
            if found is None or found[0] is None:
                return None
            return RowAudio(int(row), str(found[0]), _seconds(found[1]), _seconds(found[2]))

        return self._tx(f"reading the audio of row {row} of {job_id}", tx)

    def upcoming(self, job_id: str, queues: Sequence[str], besides: int | None) -> int | None:
        """The row the next claim of ``queues`` most likely hands out, ``besides`` the one held."""
        IT = review_items.c

        def tx(conn: Connection) -> int | None:
            for queue in queues:
                where = [
                    IT.job_id == job_id,
                    IT.queue == queue,
                    IT.state == "pending",
                    IT.second == sa.false(),
                ]
                if besides is not None:
                    where.append(IT.row != besides)
                row = conn.execute(
                    sa.select(IT.row).where(*where).order_by(IT.position).limit(1)
                ).scalar()
                if row is not None:
                    return int(row)
            return None

        return self._tx(f"reading the next review row of {job_id}", tx)


def _seconds(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if number != number else number  # NaN: not given
