""":class:`Reviews`: one job's review loop, as a page (or a notebook) drives it.

Every call is one transaction of the job database (:class:`lidframe.store.reviews.ReviewStore`):
an answer is committed as it is given, so a restarted server loses nothing, and a new
:class:`Reviews` on the same database carries on where the last one stopped.

Verdicts: ``label`` (with a language code, canonicalised; ``und`` means no speech), ``no_speech``
(stored as label ``und``), ``unsure`` (stored, no label) and ``skip``. A skip stores nothing: the
row goes to the back of its queue, free for anyone (the skipping reviewer gets it again only once
the rest of the queue is taken).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from lidframe.errors import ConfigError, LidframeError
from lidframe.languages import NO_LANGUAGE, label_code
from lidframe.review._queues import QueueKind, queue_kind
from lidframe.store.reviews import Claimed, ReviewStore

__all__ = [
    "VERDICTS",
    "Item",
    "ModelAnswer",
    "Progress",
    "Reviews",
    "check_reviewer",
    "lidframe_version",
    "stored_verdict",
]

# What a reviewer can answer (see the module docstring).
VERDICTS = ("label", "unsure", "no_speech", "skip")
# Answers over which a reviewer's pace is measured.
_RECENT = 20


def lidframe_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("lidframe")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class ModelAnswer:
    """One model's answer for the row, as its page shows it."""

    model: str  # the column alias (whisper_base)
    lang: str | None
    prob: float | None
    # The three most probable languages: ((lang, prob), ...).
    top3: tuple[tuple[str, float], ...]
    # A long file's windows: ({start, end, lang, prob}, ...); empty when heard in one window.
    windows: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Item:
    """A row leased to a reviewer: everything its page needs, and the lease."""

    row: int  # the manifest position (the results' key); answer with it
    id: str  # the manifest id
    audio: str
    offset: float | None
    duration: float | None
    queue: str
    second: bool  # a second reviewer's copy (agreement)
    leased_until: float  # epoch seconds on the database clock
    models: tuple[ModelAnswer, ...]
    # The consensus (several models): language, support and margin (2 p - 1); None with one model.
    consensus: tuple[str | None, float | None, float | None] | None
    speech_seconds: float | None
    sample_rate: int | None
    code_switch: bool | None


@dataclass(frozen=True)
class Progress:
    """A reviewer's progress in a queue (or all queues)."""

    done: int  # their answers (not withdrawn)
    left: int  # rows of the queue(s) not done yet, by anyone
    pace: float | None  # answers per minute over their last 20 answers (None: fewer than two)


class Reviews:
    """The review loop of one job: build queues, hand out rows, take answers (see the module).

    ``db``: a job database URL, an engine, or a :class:`~lidframe.store.JobStore`;
    ``lease_s``: how long a reviewer holds a row before anyone else may take it.
    """

    def __init__(self, db: str | Engine | Any, job_id: str, *, lease_s: float = 120.0) -> None:
        if not lease_s > 0:
            raise ConfigError(f"lease_s must be positive, got {lease_s}")
        self._owned = None
        if isinstance(db, str):
            from lidframe.store import open_store

            self._owned = open_store(db)
            engine = self._owned.engine
        else:
            engine = db if isinstance(db, Engine) else db.engine
        self.store = ReviewStore(engine)
        self.job_id = job_id
        self.lease_s = lease_s
        self._job: dict[str, Any] | None = None

    @classmethod
    def for_results(
        cls,
        results: str | os.PathLike[str],
        *,
        db: str | None = None,
        job: str | None = None,
        lease_s: float = 120.0,
    ) -> Reviews:
        """The reviews of the job that wrote ``results`` (its database found as ``lidframe
        status`` finds it: ``db``, else ``$LIDFRAME_DB``, else the folder's embedded one)."""
        from lidframe.job import find_job_database
        from lidframe.store import open_store

        where = os.fspath(results)
        url = find_job_database(db, where)
        store = open_store(url)
        try:
            if job is None:
                found = store.job_for_out(where if "://" in where else os.path.abspath(where))
                if found is None:
                    raise LidframeError(f"no job wrote {where} in the job database {store.url}")
                job = str(found["job_id"])
            elif store.job(job) is None:
                raise LidframeError(f"no job {job!r} in the job database {store.url}")
        except BaseException:
            store.close()
            raise
        reviews = cls(store, job, lease_s=lease_s)
        reviews._owned = store
        return reviews

    def __enter__(self) -> Reviews:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()

    @property
    def job(self) -> dict[str, Any]:
        if self._job is None:
            from lidframe.store.jobs import JobStore

            found = JobStore(self.store.engine).job(self.job_id)
            if found is None:
                raise LidframeError(f"no job {self.job_id!r} in the job database {self.store.url}")
            self._job = found
        return self._job

    # -- queues -----------------------------------------------------------------------------------

    def build(
        self,
        queue: str | QueueKind,
        *,
        name: str | None = None,
        limit: int | None = None,
        second_share: float = 0.05,
        seed: int = 0,
        **settings: Any,
    ) -> int:
        """Build (or extend) a queue of ``queue``'s rows (a kind name with its ``settings``, or a
        :class:`QueueKind`), named ``name`` (default: the kind, ``language-xx`` for a language);
        ``limit`` rows at most; ``second_share`` of them also go to a second reviewer. Returns how
        many rows were added (building again with the same settings adds none)."""
        kind = queue if isinstance(queue, QueueKind) else queue_kind(queue, **settings)
        if limit is not None and limit < 1:
            raise ConfigError(f"--limit must be 1 or more, got {limit}")
        if not 0.0 <= second_share <= 1.0:
            raise ConfigError(f"--second-share must be in [0, 1], got {second_share}")
        if seed < 0:
            raise ConfigError(f"--seed must be 0 or more, got {seed}")
        self.job  # noqa: B018 - a missing job fails here, with its name
        return self.store.build_queue(
            self.job_id,
            name or kind.default_name,
            kind,
            limit=limit,
            second_share=second_share,
            seed=seed,
        )

    def queues(self) -> list[str]:
        return [str(q["queue"]) for q in self.store.queues(self.job_id)]

    # -- the loop ---------------------------------------------------------------------------------

    def next(
        self, reviewer: str, queue: str | None = None, lease_s: float | None = None
    ) -> Item | None:
        """The row ``reviewer`` should see now: the one they hold (a reloaded page), else the next
        free row of ``queue`` (default: every queue, by name); None when none is left for them."""
        queues = self._queues(queue)
        claimed = self.store.claim(
            self.job_id,
            check_reviewer(reviewer),
            queues,
            self.lease_s if lease_s is None else lease_s,
        )
        return None if claimed is None else self._item(claimed)

    def answer(self, reviewer: str, row: int, verdict: str, label: str | None = None) -> int | None:
        """Commit ``reviewer``'s answer to the row they hold; returns its id (None for a skip).
        Raises :class:`~lidframe.store.reviews.ItemLost` when the row is no longer theirs."""
        verdict, code = stored_verdict(verdict, label, row)
        return self.store.answer(
            self.job_id,
            check_reviewer(reviewer),
            int(row),
            verdict=verdict,
            label=code,
            version=lidframe_version(),
            shown=_shown,
        )

    def undo(self, reviewer: str) -> Item | None:
        """Withdraw ``reviewer``'s last answer (kept, marked withdrawn) and give its row back to
        them; returns it (None when there is nothing to undo, or the answer was imported)."""
        undone = self.store.undo(self.job_id, check_reviewer(reviewer), self.lease_s)
        if undone is None or undone[1] is None:
            return None
        return self._item(undone[1])

    def release(self, reviewer: str) -> int:
        """Hand back the row ``reviewer`` holds (they stopped for now)."""
        return self.store.release(self.job_id, check_reviewer(reviewer))

    def progress(self, reviewer: str, queue: str | None = None) -> Progress:
        done, left, times = self.store.progress(
            self.job_id, check_reviewer(reviewer), self._queues(queue), _RECENT
        )
        pace = None
        if len(times) >= 2 and max(times) > min(times):
            pace = (len(times) - 1) / (max(times) - min(times)) * 60.0
        return Progress(done, left, pace)

    def status(self, confidence: float = 0.95) -> Any:
        """Counts by queue and reviewer, agreement and the estimated accuracy
        (:class:`~lidframe.review.ReviewStatus`)."""
        from lidframe.review._status import review_status

        return review_status(self.store, self.job_id, confidence)

    # -- helpers ----------------------------------------------------------------------------------

    def _queues(self, queue: str | None) -> list[str]:
        known = self.queues()
        if queue is None:
            return known
        if queue not in known:
            raise ConfigError(
                f"no review queue {queue!r} in job {self.job_id} (queues: "
                f"{', '.join(known) or 'none yet: build one with `lidframe review queue`'})"
            )
        return [queue]

    def _item(self, claimed: Claimed) -> Item:
        r = claimed.result
        models = tuple(
            ModelAnswer(
                model=str(p["model"]),
                lang=p["lang"],
                prob=None if p["prob"] is None else float(p["prob"]),
                top3=tuple((str(t["lang"]), float(t["prob"])) for t in (p["topk"] or [])[:3]),
                windows=tuple(p["windows"] or ()),
            )
            for p in claimed.predictions
        )
        consensus = None
        if len(self.job["models"]) > 1:
            prob = r["consensus_prob"]
            margin = None if prob is None else 2 * float(prob) - 1
            consensus = (r["lang"], None if prob is None else float(prob), margin)
        return Item(
            row=claimed.row,
            id=str(r["row_id"]),
            audio=str(r["audio"]),
            offset=_number(r["offset"]),
            duration=_number(r["duration"]),
            queue=claimed.queue,
            second=claimed.second,
            leased_until=claimed.leased_until,
            models=models,
            consensus=consensus,
            speech_seconds=_number(r["speech_seconds"]),
            sample_rate=None if r["sample_rate"] is None else int(r["sample_rate"]),
            code_switch=None if r["code_switch"] is None else bool(r["code_switch"]),
        )


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if value != value else value  # NaN: not given


def check_reviewer(name: str) -> str:
    text = str(name).strip()
    if not text or len(text) > 200:
        raise ConfigError(f"a reviewer is named by 1 to 200 characters, got {name!r}")
    return text


def stored_verdict(verdict: str, label: str | None, row: int) -> tuple[str, str | None]:
    """The stored verdict and label (see the module docstring)."""
    if verdict not in VERDICTS:
        raise ConfigError(
            f"row {row}: unknown verdict {verdict!r}; choose one of {', '.join(VERDICTS)}"
        )
    if verdict == "label":
        if not label:
            raise ConfigError(f"row {row}: the verdict 'label' needs a language code")
        try:
            code = label_code(label)
        except ConfigError as exc:
            raise ConfigError(f"row {row}: {exc}") from exc
        return ("no_speech", NO_LANGUAGE) if code == NO_LANGUAGE else ("label", code)
    if label:
        raise ConfigError(f"row {row}: the verdict {verdict!r} takes no label (got {label!r})")
    return verdict, NO_LANGUAGE if verdict == "no_speech" else None


def _shown(result: Mapping[str, Any], found: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the models said about the row when it was answered: each model's top 3, and the
    consensus with several models."""
    shown: dict[str, Any] = {
        "models": {
            str(p["model"]): {
                "lang": p["lang"],
                "prob": p["prob"],
                "top3": [{"lang": t["lang"], "prob": t["prob"]} for t in (p["topk"] or [])[:3]],
            }
            for p in found
        },
        "consensus": None,
    }
    if result.get("consensus_method") is not None or result.get("lang") is not None:
        shown["consensus"] = {
            "lang": result.get("lang"),
            "prob": result.get("consensus_prob"),
            "agree": result.get("agree"),
            "method": result.get("consensus_method"),
        }
    return shown
