"""What :func:`lidframe.run` hands back: a :class:`RunSummary` of the job, read from its database.

The counts come from the job database, not from what this process saw, so a resumed job reports
the whole job (partitions done by earlier runs too) and the same numbers ``lidframe status`` shows.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lidframe.kernel import fidelity_lines
from lidframe.store.jobs import JobStore

__all__ = ["FAILED_SHOWN", "RunSummary", "failed_lines", "summarize"]

# Rows with an error a summary names (the rest are counted by category; the results hold them all).
FAILED_SHOWN = 5


@dataclass
class RunSummary:
    """What a run did: counts, errors by category, languages per model, and time; shows as its
    text (``repr`` too, not the fields) and as a table in Jupyter (``_repr_html_``).

    With a job database the counts cover the whole job (also partitions done by earlier runs);
    ``committed`` is what this run added, ``skipped`` what it found already done.
    """

    out: str
    partitions: int
    rows: int = 0
    errors: int = 0
    error_categories: Counter[str] = field(default_factory=Counter)
    languages: dict[str, Counter[str]] = field(default_factory=dict)
    seconds: float = 0.0
    job_id: str | None = None
    db: str | None = None
    status: str | None = None
    committed: int = 0
    skipped: int = 0
    dead: int = 0
    # This run's half-precision check against float32 (None: the job ran in float32 unchecked);
    # the record stored with the job (lidframe.kernel.FidelityReport.record, with ``fallback``).
    fidelity: dict[str, Any] | None = None
    # The job's rows/s and seconds as lidframe status says them (JobStatus.timing); "" unknown.
    timing: str = ""
    # The first rows with an error, in manifest order: (id, audio, error) each.
    failed: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The job finished and every row has an answer or its own row error (no dead partition)."""
        return self.status == "finished"

    def time_text(self) -> str:
        """This run's wall clock and the job's partitions' time, each saying what it measures
        (``lidframe status`` and the report show the second)."""
        text = f"this run {self.seconds:.1f} s wall clock (all of it, cluster start included)"
        return text + (f"; the job {self.timing}" if self.timing else "")

    def __str__(self) -> str:
        lines = [
            f"lidframe: {self.rows} rows in {self.partitions} partitions, {self.errors} errors "
            f"-> {self.out}",
            f"  time: {self.time_text()}",
        ]
        if self.job_id is not None:
            lines.append(
                f"  job {self.job_id} {self.status}: {self.committed} partitions done by this run, "
                f"{self.skipped} already done, {self.dead} dead "
                + (f"(state in {self.db})" if self.db else "(no job database kept: --no-db)")
            )
        if self.fidelity is not None:
            lines.extend(f"  {line}" for line in fidelity_lines(self.fidelity))
        if self.error_categories:
            lines.append(
                "  errors: " + ", ".join(f"{k} {v}" for k, v in self.error_categories.most_common())
            )
            lines.extend(f"  {line}" for line in failed_lines(self.failed, self.errors))
        for alias, counts in self.languages.items():
            top = ", ".join(f"{k} {v}" for k, v in counts.most_common(12))
            more = f" (+{len(counts) - 12} more)" if len(counts) > 12 else ""
            lines.append(f"  {alias}: {len(counts)} languages: {top}{more}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        job = "" if self.job_id is None else f"{self.job_id} {self.status}"
        rows: list[tuple[str, str]] = [
            ("job", job),
            ("rows", f"{self.rows} in {self.partitions} partitions"),
            (
                "this run",
                f"{self.committed} partitions done, {self.skipped} already done, {self.dead} dead",
            ),
            ("errors", _counts(str(self.errors), self.error_categories)),
        ]
        if named := failed_lines(self.failed, self.errors):
            rows.append((named[0].rstrip(":"), "; ".join(line.strip() for line in named[1:])))
        rows += [
            (alias, _counts(f"{len(counts)} languages", counts))
            for alias, counts in self.languages.items()
        ]
        if self.fidelity is not None:
            rows.append(("half precision", "; ".join(fidelity_lines(self.fidelity))))
        rows += [
            ("time", self.time_text()),
            ("output", self.out),
            ("job database", self.db or "none kept"),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        state = "ok" if self.ok else html.escape(self.status or "not finished")
        return f"<table><caption>lidframe run: {state}</caption>{body}</table>"


def failed_lines(failed: list[tuple[str, str, str]], errors: int) -> list[str]:
    """The failed rows named, one line each (the file too where the error does not name it), and
    how many more there are."""
    if not failed:
        return []
    head = (
        f"rows with an error (the first {len(failed)} of {errors}):"
        if errors > len(failed)
        else "rows with an error:"
    )
    lines = [head]
    for row_id, audio, error in failed:
        where = "" if audio in error else f" ({audio})"
        lines.append(f"  {row_id}{where}: {error}")
    return lines


def _counts(head: str, counts: Counter[str], top: int = 12) -> str:
    """``head``, then the ``top`` most common of ``counts``, and how many more there are."""
    shown = ", ".join(f"{k} {v}" for k, v in counts.most_common(top))
    more = f" (+{len(counts) - top} more)" if len(counts) > top else ""
    return f"{head}: {shown}{more}" if shown else head


def summarize(store: JobStore, job_id: str, out: str, multi_model: bool) -> RunSummary:
    """The job's summary as its database has it (this run's counts and time are set by the run)."""
    totals = store.summary(job_id, multi_model=multi_model)
    states = store.states(job_id)
    job_row = store.job(job_id) or {}
    return RunSummary(
        out=out,
        partitions=int(job_row.get("n_partitions") or 0),
        rows=totals["rows"],
        errors=sum(totals["error_categories"].values()),
        error_categories=totals["error_categories"],
        languages=totals["languages"],
        job_id=job_id,
        status=job_row.get("status"),
        dead=states.get("dead", 0),
        failed=store.failed_rows(job_id, FAILED_SHOWN) if totals["error_categories"] else [],
        timing=store.status(job_id).timing(),
    )
