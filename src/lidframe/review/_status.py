"""``lidframe review status``: counts by queue and reviewer, agreement, and the estimated accuracy."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from lidframe.languages import DEFAULT_EQUIVALENCE
from lidframe.review._agreement import (
    AccuracyEstimate,
    cohen_kappa,
    estimate_accuracy,
    review_pairs,
    row_labels,
)
from lidframe.store.reviews import ReviewStore

__all__ = ["QueueCounts", "ReviewStatus", "review_status"]


@dataclass(frozen=True)
class QueueCounts:
    """One queue's rows by state (first reviews, then second-reviewer copies)."""

    queue: str
    kind: str
    rows: int
    done: int
    leased: int
    second_rows: int
    second_done: int


@dataclass(frozen=True)
class ReviewStatus:
    """A job's review state (``str()`` is what ``lidframe review status`` prints)."""

    job_id: str
    queues: list[QueueCounts]
    # reviewer -> verdict -> answers (withdrawn ones left out)
    reviewers: dict[str, Counter[str]]
    withdrawn: int
    # Cohen's kappa between first and second reviewers, over `pairs` rows both labelled.
    kappa: float | None
    pairs: int
    # Per random-sample queue: the job's accuracy estimated from its reviews (None: none yet).
    accuracy: dict[str, AccuracyEstimate | None] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"reviews of job {self.job_id}"]
        if not self.queues:
            lines.append("  no review queue yet: build one with `lidframe review queue`")
        for q in self.queues:
            lines.append(
                f"  queue {q.queue} ({q.kind}): {q.done}/{q.rows} rows answered, {q.leased} "
                f"being reviewed; second reviews {q.second_done}/{q.second_rows}"
            )
        for reviewer, verdicts in sorted(self.reviewers.items()):
            counts = ", ".join(f"{v} {n}" for v, n in sorted(verdicts.items()))
            lines.append(f"  reviewer {reviewer}: {sum(verdicts.values())} answers ({counts})")
        if self.withdrawn:
            lines.append(f"  withdrawn answers (undo): {self.withdrawn}")
        if self.kappa is None:
            lines.append("  agreement: no row labelled by a first and a second reviewer yet")
        else:
            lines.append(
                f"  agreement: Cohen's kappa {self.kappa:.3f} over {self.pairs} rows labelled by "
                "a first and a second reviewer"
            )
        for queue, estimate in self.accuracy.items():
            if estimate is None:
                lines.append(f"  accuracy (queue {queue}): no reviewed row yet")
            else:
                lines.append(f"  job accuracy estimated from queue {queue}: {estimate}")
        return "\n".join(lines)


def review_status(store: ReviewStore, job_id: str, confidence: float = 0.95) -> ReviewStatus:
    """The review state of ``job_id`` (see :class:`ReviewStatus`)."""
    queues = store.queues(job_id)
    counts: dict[tuple[str, bool, str], int] = {
        (q, s, st): n for q, s, st, n in store.item_counts(job_id)
    }
    table = []
    for q in queues:
        name = str(q["queue"])

        def n(second: bool, state: str | None = None, name: str = name) -> int:
            return sum(
                v for (qq, s, st), v in counts.items()
                if qq == name and s == second and (state is None or st == state)
            )  # fmt: skip

        table.append(
            QueueCounts(
                queue=name,
                kind=str(q["kind"]),
                rows=n(False),
                done=n(False, "done"),
                leased=n(False, "leased"),
                second_rows=n(True),
                second_done=n(True, "done"),
            )
        )
    everything = store.answers(job_id, withdrawn=True)
    answers = [a for a in everything if a["withdrawn_at"] is None]
    reviewers: dict[str, Counter[str]] = {}
    for a in answers:
        reviewers.setdefault(str(a["reviewer"]), Counter())[str(a["verdict"])] += 1
    pairs = review_pairs(answers)
    accuracy: dict[str, AccuracyEstimate | None] = {}
    # The sample's rows are scored by row, whichever queue their answer came through: a sampled
    # row answered first in a targeted queue (a disagreement, say) is settled there and must still
    # count here, or the estimate would leave out the rows most likely wrong; it counts once the
    # queue's random order reaches it (ReviewStore.answered_strata), not before.
    labelled = row_labels(a for a in answers if not a["second"])
    for q in queues:
        if q["kind"] != "random":
            continue
        strata = store.answered_strata(job_id, str(q["queue"]))
        reviewed = [
            (stratum, DEFAULT_EQUIVALENCE.same(str(labelled[row]["label"]), stratum))
            for row, stratum in strata.items()
            if row in labelled
        ]
        accuracy[str(q["queue"])] = estimate_accuracy(q["strata"] or {}, reviewed, confidence)
    return ReviewStatus(
        job_id=job_id,
        queues=table,
        reviewers=reviewers,
        withdrawn=len(everything) - len(answers),
        kappa=cohen_kappa(pairs),
        pairs=len(pairs),
        accuracy=accuracy,
    )
