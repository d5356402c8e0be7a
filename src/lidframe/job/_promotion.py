"""Staged Parquet parts become results only once the job database accepted their commit.

Parts are fenced by the lease (see :mod:`lidframe.results`): a task stages its part under its
token, and only a commit accepted by the database promotes it, so a task whose lease was taken over
can never overwrite the part of the attempt that won. Promotion is a move after the commit, and a
crash can fall between the two: :func:`reconcile_parts` finishes what it interrupted (staged parts
whose commit landed are promoted, the others deleted) before a run starts and after it ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lidframe.job._worker import PartitionTask
from lidframe.manifest import MANIFEST_COLUMNS
from lidframe.results import discard, mark_staged, promote, remove_staging, staged_parts
from lidframe.store.jobs import JobStore

__all__ = ["promote_committed", "reconcile_parts"]


def promote_committed(
    task: PartitionTask, k: int, token: str, duplicates: Mapping[int, str]
) -> None:
    """Move a committed part into place, first giving its duplicate-id rows their errors."""
    if duplicates:
        keep = (*MANIFEST_COLUMNS, "error")
        mark_staged(task.out, k, token, duplicates, keep, task.out_options)
    promote(task.out, k, token, task.out_options)


def reconcile_parts(
    store: JobStore,
    job_id: str,
    out: str,
    out_options: Mapping[str, Any] | None = None,
    *,
    finished: bool = False,
) -> tuple[int, int]:
    """Finish what a crash interrupted in ``OUT/_staging``; returns ``(promoted, deleted)``.

    A staged part whose token is its partition's committed one (done, or dead with its rows stored)
    is promoted (the crash came between the commit and the move); one whose lease still holds the
    partition is left alone (its holder may still commit); any other
    (an attempt that failed, was taken over or never committed) is deleted. ``finished``: the job
    has nothing left to run, and an empty staging folder is removed.
    """
    keep = (*MANIFEST_COLUMNS, "error")
    staged = staged_parts(out, out_options)
    if not staged:
        if finished:
            remove_staging(out, out_options)
        return 0, 0
    tokens = store.partition_tokens(job_id, [k for k, _ in staged])
    promoted = deleted = 0
    for k, token in staged:
        state, current, stored = tokens.get(k, ("", None, False))
        if token == current and (state == "done" or (state == "dead" and stored)):
            marks = store.duplicate_marks(job_id, k)
            if marks:
                mark_staged(out, k, token, marks, keep, out_options)
            promoted += promote(out, k, token, out_options)
            continue
        if token == current and state == "running":
            continue  # its holder may still commit it (even past its lease, if nobody took over)
        discard(out, k, token, out_options)
        deleted += 1
    if finished and promoted + deleted == len(staged):
        remove_staging(out, out_options)
    return promoted, deleted
