"""Queue kinds: which rows of a job a queue holds, as SQL criteria over the job's answers.

Each kind is a small frozen dataclass with a ``kind`` name, its settings (one comment each), and
``where`` (a SQL condition over :func:`lidframe.store.reviews.answer_view`'s columns: the job's
answer ``lang``/``prob``/``margin``, ``agree``, ``code_switch``, ``speech_seconds``) and ``rank``
(which rows first when a queue is built with a limit; None: a seeded random sample). Rows with an
error never enter a queue: they have no answer to check. :func:`queue_kind` makes one by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import sqlalchemy as sa

from lidframe.errors import ConfigError
from lidframe.languages import NO_LANGUAGE, canonical

__all__ = [
    "QUEUE_KINDS",
    "CodeSwitch",
    "Disagreement",
    "Language",
    "LowMargin",
    "QueueKind",
    "RandomSample",
    "UndNearThreshold",
    "queue_kind",
]


class QueueKind:
    """Base of the kinds: no ranking, not stratified, settings from the dataclass fields."""

    kind: ClassVar[str]
    stratified: ClassVar[bool] = False

    def where(self, view: Any, job: Mapping[str, Any]) -> sa.ColumnElement[bool]:
        raise NotImplementedError

    def rank(self, view: Any) -> sa.ColumnElement[Any] | None:
        return None

    def params(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}  # type: ignore[call-overload]

    @property
    def default_name(self) -> str:
        return self.kind


@dataclass(frozen=True)
class Disagreement(QueueKind):
    """Rows whose models' top-1 languages differ (needs two models or more)."""

    kind: ClassVar[str] = "disagreement"

    def where(self, view: Any, job: Mapping[str, Any]) -> sa.ColumnElement[bool]:
        if len(job["models"]) < 2:
            raise ConfigError(
                f"--queue disagreement: job {job['job_id']} ran one model "
                f"({job['models'][0]}): nothing to disagree; try low_margin"
            )
        return view.agree == sa.false()


@dataclass(frozen=True)
class LowMargin(QueueKind):
    """Rows answered with a language by a narrow margin, narrowest first.

    The margin is the answer's probability minus the runner-up's: with one model, its top-1 minus
    its top-2 probability; with several, the consensus support minus the rest (``2 p - 1``), as
    the consensus stores only its own support.
    """

    kind: ClassVar[str] = "low_margin"
    # Rows whose margin is below this.
    max_margin: float = 0.2

    def __post_init__(self) -> None:
        if not -1.0 <= self.max_margin <= 1.0:
            raise ConfigError(f"--max-margin must be in [-1, 1], got {self.max_margin}")

    def where(self, view: Any, job: Mapping[str, Any]) -> sa.ColumnElement[bool]:
        return sa.and_(view.lang != NO_LANGUAGE, view.margin < self.max_margin)

    def rank(self, view: Any) -> sa.ColumnElement[Any] | None:
        return view.margin


@dataclass(frozen=True)
class CodeSwitch(QueueKind):
    """Long files whose confident windows disagree on the language (``code_switch``)."""

    kind: ClassVar[str] = "code_switch"

    def where(self, view: Any, job: Mapping[str, Any]) -> sa.ColumnElement[bool]:
        return view.code_switch == sa.true()


@dataclass(frozen=True)
class UndNearThreshold(QueueKind):
    """Rows near the no-speech threshold: answered ``und`` although some speech was found, or
    answered a language on less than ``--min-speech`` + ``band`` seconds of speech; closest to
    the threshold first. The threshold is the job's own ``min_speech`` setting."""

    kind: ClassVar[str] = "und_near"
    # Seconds of speech above the job's least speech within which a language answer is "near".
    band: float = 0.5

    def __post_init__(self) -> None:
        if not self.band >= 0:
            raise ConfigError(f"--band must be 0 or more seconds, got {self.band}")

    def where(self, view: Any, job: Mapping[str, Any]) -> sa.ColumnElement[bool]:
        least = _min_speech(job)
        return sa.or_(
            sa.and_(view.lang == NO_LANGUAGE, view.speech_seconds > 0),
            sa.and_(view.lang != NO_LANGUAGE, view.speech_seconds < least + self.band),
        )

    def rank(self, view: Any) -> sa.ColumnElement[Any] | None:
        return view.speech_seconds


@dataclass(frozen=True)
class Language(QueueKind):
    """Rows the job answered with one language."""

    kind: ClassVar[str] = "language"
    # The language (any tag lidframe.languages reads; stored canonical).
    language: str = ""

    def __post_init__(self) -> None:
        if not self.language:
            raise ConfigError("--queue language needs --language CODE (e.g. --language fr)")
        code = NO_LANGUAGE if self.language.strip().lower() == NO_LANGUAGE else None
        object.__setattr__(self, "language", code or canonical(self.language))

    def where(self, view: Any, job: Mapping[str, Any]) -> sa.ColumnElement[bool]:
        return view.lang == self.language

    @property
    def default_name(self) -> str:
        return f"language-{self.language}"


@dataclass(frozen=True)
class RandomSample(QueueKind):
    """A random sample of the job's answered rows, stratified by predicted language: with a limit,
    each language gets its share of it (rounded up, so at least one row). Its reviews estimate the
    whole job's accuracy (:func:`lidframe.review.estimate_accuracy`)."""

    kind: ClassVar[str] = "random"
    stratified: ClassVar[bool] = True

    def where(self, view: Any, job: Mapping[str, Any]) -> sa.ColumnElement[bool]:
        return view.lang.is_not(None)


QUEUE_KINDS: dict[str, type[QueueKind]] = {
    k.kind: k
    for k in (Disagreement, LowMargin, CodeSwitch, UndNearThreshold, Language, RandomSample)
}


def queue_kind(name: str, **settings: Any) -> QueueKind:
    """The queue kind ``name`` with ``settings`` (None values left at their defaults); a
    :class:`ConfigError` names the valid kinds, or the settings a kind takes."""
    cls = QUEUE_KINDS.get(name)
    if cls is None:
        raise ConfigError(f"unknown review queue {name!r}; choose one of {', '.join(QUEUE_KINDS)}")
    given = {k: v for k, v in settings.items() if v is not None}
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    extra = sorted(set(given) - fields)
    if extra:
        takes = ", ".join(sorted(fields)) or "no settings"
        raise ConfigError(
            f"review queue {name} does not take {', '.join(extra)} (it takes {takes})"
        )
    return cls(**given)


def _min_speech(job: Mapping[str, Any]) -> float:
    """The job's least speech (``--min-speech``), its default for a job that recorded none."""
    speech = (job.get("config") or {}).get("speech") or {}
    value = speech.get("min_speech")
    if value is None:
        from lidframe.speech import SpeechConfig

        value = SpeechConfig().min_speech
    return float(value)
