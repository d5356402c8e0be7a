"""What a partition's models said, summarised on the worker in a fixed size, and stored with its rows.

A partition's :class:`~lidframe.store.results.PartitionRows` carry a :class:`Behaviour`: per model
(its column alias) and for the job's answer (:data:`ANSWER`: the consensus with several models, else
the only model) one :class:`Stats`: rows, rows answered with a language, ``und`` answers, rows
without an answer by error category, the languages answered, a histogram of top-1 probabilities in
:data:`PROB_BINS` fixed bins; for the answer also the models' agreement, a histogram of the answer's
margin, ``code_switch`` rows and seconds of speech. Its size depends on the models and their label
sets, never on the partition's size (a language is one counter however many rows answered it).

It is made from the rows themselves, after :func:`~lidframe.store.results.frame_rows` on the worker,
so it says exactly what the stored rows say; when the store marks rows as ``duplicate_id`` errors it
is made again from the marked rows. :mod:`lidframe.store.behaviour_rows` stores it in the
transaction that writes the rows, and sums it back by SQL, never reading a result row.

The margin is the answer's probability minus the runner-up's, as the review queues define it: with
one model its top-1 minus its top-2 probability, with several ``2 p - 1`` of the consensus support.
This module imports no driver-side code: workers take it with :mod:`lidframe.store.results`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lidframe.store.schema import predictions, results

__all__ = [
    "ANSWER",
    "MARGIN_BINS",
    "PROB_BINS",
    "Behaviour",
    "Stats",
    "summarise",
]

# The key of the job's answer among the models' aliases (no alias has a ``*``).
ANSWER = "*"
# Bins of the top-1 probability histogram, even over [0, 1]; of the margin histogram, over [-1, 1].
PROB_BINS = 10
MARGIN_BINS = 10
NO_SPEECH = "und"
DUPLICATE_ID = "duplicate_id"
# The kinds of lidframe_behaviour_counts (lang, error) and of lidframe_behaviour_totals (all).
LANG, ERROR, LABEL, STAT, PROB, MARGIN = "lang", "error", "label", "stat", "prob", "margin"
COUNTERS = (LANG, ERROR, LABEL)

_R = {c.name: i for i, c in enumerate(results.columns)}
_P = {c.name: i for i, c in enumerate(predictions.columns)}
# Scalar columns of lidframe_behaviour, in Stats' field names.
SCALARS = (
    "rows",
    "answered",
    "und",
    "errors",
    "agree",
    "code_switch",
    "speech_seconds",
    "prob_sum",
)
PROB_COLUMNS = tuple(f"prob_{i}" for i in range(PROB_BINS))
MARGIN_COLUMNS = tuple(f"margin_{i}" for i in range(MARGIN_BINS))


@dataclass
class Stats:
    """What one model (or the job's answer) said over some rows; ``+=`` adds another's."""

    rows: int = 0
    # Rows answered with a language (``und`` and unanswered rows not counted).
    answered: int = 0
    # Rows answered ``und`` (no speech), errors not among them.
    und: int = 0
    # Rows with an error and no language answered (by category in ``error_categories``).
    errors: int = 0
    # The answer only: rows with an answer (a language or und: models that disagree make the
    # consensus und) on which every answering model agreed (several models).
    agree: int = 0
    # The answer only: rows whose long file's windows disagree on the language.
    code_switch: int = 0
    # The answer only: seconds of speech heard.
    speech_seconds: float = 0.0
    # Sum of the top-1 probabilities of the rows answered with a language; over ``answered``, the
    # expected accuracy when the probabilities are calibrated.
    prob_sum: float = 0.0
    # Rows answered with a language per bin of top-1 probability (``PROB_BINS`` over [0, 1]).
    prob: list[int] = field(default_factory=lambda: [0] * PROB_BINS)
    # The answer only: rows answered with a language per bin of margin (``MARGIN_BINS``, [-1, 1]).
    margin: list[int] = field(default_factory=lambda: [0] * MARGIN_BINS)
    # Rows per language answered (``und`` not among them).
    langs: Counter[str] = field(default_factory=Counter)
    # Rows without an answer per error category.
    error_categories: Counter[str] = field(default_factory=Counter)
    # The answer only, when the manifest has labels: ``labelled`` (rows with a label and an
    # answer) and ``correct`` (those answered their label).
    labels: Counter[str] = field(default_factory=Counter)

    def __iadd__(self, other: Stats) -> Stats:
        for name in SCALARS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.prob = [a + b for a, b in zip(self.prob, other.prob, strict=True)]
        self.margin = [a + b for a, b in zip(self.margin, other.margin, strict=True)]
        for kind in COUNTERS:
            self.counter(kind).update(other.counter(kind))
        return self

    def minus(self, other: Stats) -> Stats:
        """These stats less ``other``'s (a part of them): a new :class:`Stats`."""
        out = Stats(**{name: getattr(self, name) - getattr(other, name) for name in SCALARS})
        out.prob = [a - b for a, b in zip(self.prob, other.prob, strict=True)]
        out.margin = [a - b for a, b in zip(self.margin, other.margin, strict=True)]
        for kind in COUNTERS:
            counter = out.counter(kind)
            counter.update(self.counter(kind))
            counter.subtract(other.counter(kind))
            for key in [k for k, n in counter.items() if n <= 0]:
                del counter[key]
        return out

    def counter(self, kind: str) -> Counter[str]:
        """The counter of a kind of ``lidframe_behaviour_counts``: ``lang``, ``error``, ``label``."""
        return {LANG: self.langs, ERROR: self.error_categories, LABEL: self.labels}[kind]

    @property
    def accuracy(self) -> float | None:
        """Share of the labelled rows with an answer that were answered their label."""
        n = self.labels["labelled"]
        return self.labels["correct"] / n if n else None

    def rate(self, count: int) -> float | None:
        """``count`` over the rows (None for no rows)."""
        return count / self.rows if self.rows else None

    @property
    def heard(self) -> int:
        """Rows with an answer, a language or ``und``."""
        return self.answered + self.und

    @property
    def agreement(self) -> float | None:
        """Share of the rows with an answer (a language or ``und``) on which the models agreed."""
        return self.agree / self.heard if self.heard else None

    @property
    def expected_accuracy(self) -> float | None:
        """Mean top-1 probability of the rows answered with a language: the accuracy to expect
        when the probabilities are calibrated (confidence-based performance estimation)."""
        return self.prob_sum / self.answered if self.answered else None

    def mix(self, top: int = 3) -> str:
        """The ``top`` languages' shares of the rows answered with a language: ``en 52%, de 31%,
        fr 9% (+2)``."""
        shares = list(self.shares().items())
        if not shares:
            return "no language yet"
        text = ", ".join(f"{lang} {share:.0%}" for lang, share in shares[:top])
        return text + (f" (+{len(shares) - top})" if len(shares) > top else "")

    def shares(self) -> dict[str, float]:
        """Each language's share of the rows answered with a language, largest first (ties in
        code order)."""
        total = sum(self.langs.values())
        order = sorted(self.langs.items(), key=lambda item: (-item[1], item[0]))
        return {k: n / total for k, n in order} if total else {}


@dataclass
class Behaviour:
    """One :class:`Stats` per model alias and for :data:`ANSWER`; who made it, for a partition."""

    stats: dict[str, Stats] = field(default_factory=dict)
    # The Dask worker (its address) and the host that ran the partition (None once summed).
    worker: str | None = None
    host: str | None = None

    def __iadd__(self, other: Behaviour) -> Behaviour:
        for key, stats in other.stats.items():
            self.stats.setdefault(key, Stats()).__iadd__(stats)
        return self

    def minus(self, other: Behaviour) -> Behaviour:
        """This behaviour less ``other``'s (a part of it, e.g. one worker's of the fleet's)."""
        return Behaviour(
            {k: s.minus(other.stats[k]) if k in other.stats else s for k, s in self.stats.items()}
        )

    @property
    def answer(self) -> Stats:
        return self.stats.get(ANSWER) or Stats()

    @property
    def models(self) -> list[str]:
        return [k for k in self.stats if k != ANSWER]

    def line(self) -> str:
        """One line for a progress bar: the answer's language mix, agreement (several models),
        ``und`` and row-error rates."""
        a = self.answer
        if not a.rows:
            return "no rows yet"
        parts = [a.mix()]
        if len(self.models) > 1 and a.agreement is not None:
            parts.append(f"agree {a.agreement:.0%}")
        parts += [f"und {a.und / a.rows:.1%}", f"errors {a.errors / a.rows:.1%}"]
        return " | ".join(parts)

    def lines(self) -> list[str]:
        """What the models said, for ``lidframe status``: the answer, then each model."""
        a = self.answer
        if not a.rows:
            return ["  behaviour: no partition stored yet"]
        errors = ", ".join(f"{k} {n}" for k, n in a.error_categories.most_common(4))
        out = [
            f"  answers ({a.rows} rows): {a.mix(5)}; und {a.und / a.rows:.1%}, "
            f"row errors {a.errors / a.rows:.1%}{f' ({errors})' if errors else ''}"
        ]
        several = len(self.models) > 1
        if several and a.agreement is not None:
            out.append(f"  agreement {a.agreement:.1%} of the rows with an answer")
        if a.expected_accuracy is not None:
            kind = "consensus probability" if several else "top-1 probability"
            measured = (
                ""
                if a.accuracy is None
                else f"; accuracy {a.accuracy:.3f} on {a.labels['labelled']} labelled rows"
            )
            out.append(
                f"  mean {kind} {a.expected_accuracy:.3f} (the expected accuracy if calibrated)"
                + measured
            )
        for model in self.models if several else ():
            s = self.stats[model]
            mean = f", mean top-1 {s.expected_accuracy:.2f}" if s.expected_accuracy else ""
            und = s.und / s.rows if s.rows else 0.0
            out.append(f"  {model}: {s.mix()}; und {und:.1%}{mean}")
        return out


def summarise(
    rows: Any, aliases: Sequence[str], *, worker: str | None, host: str | None
) -> Behaviour:
    """The :class:`Behaviour` of a partition's :class:`~lidframe.store.results.PartitionRows`.

    ``aliases``: the models' column aliases in the job's order. With one model the answer is that
    model's; with several it is the consensus columns of the rows.
    """
    answer = Stats()
    per_model = {alias: Stats() for alias in aliases}
    found = {(p[_P["row_id"]], p[_P["model"]]): p for p in rows.predictions}
    several = len(aliases) > 1
    for r in rows.results:
        category = r[_R["error_category"]]
        answer.rows += 1
        answer.speech_seconds += _number(r[_R["speech_seconds"]])
        answer.code_switch += r[_R["code_switch"]] is True
        heard: list[tuple[Any, Any, Any]] = []  # (lang, prob, topk) of each model
        for alias in aliases:
            p = None if category == DUPLICATE_ID else found.get((r[_R["row_id"]], alias))
            lang, prob, topk = (None, None, None) if p is None else (
                p[_P["lang"]], p[_P["prob"]], p[_P["topk"]]
            )  # fmt: skip
            heard.append((lang, prob, topk))
            _count(per_model[alias], lang, prob, None, category)
        if several:
            lang, prob = r[_R["lang"]], r[_R["consensus_prob"]]
            margin = None if prob is None else 2 * float(prob) - 1
        else:
            lang, prob, topk = heard[0] if heard else (None, None, None)
            margin = _topk_margin(topk, prob)
        heard_answer = _count(answer, lang, prob, margin, category)
        if heard_answer and several:
            answer.agree += r[_R["agree"]] is True
        label = r[_R["label"]]
        if heard_answer and label is not None:
            answer.labels["labelled"] += 1
            answer.labels["correct"] += lang == label
    for stats in per_model.values():
        stats.rows = answer.rows
    return Behaviour({**per_model, ANSWER: answer}, worker=worker, host=host)


def _count(stats: Stats, lang: Any, prob: Any, margin: float | None, category: Any) -> bool:
    """Count one row's answer; True when it has one (a language or ``und``). A row with an error
    and no language (none, or the consensus's ``und`` for rows no model answered) counts as its
    error, not ``und``."""
    if lang is None or (lang == NO_SPEECH and category is not None):
        if category is not None:
            stats.errors += 1
            stats.error_categories[str(category)] += 1
        return False
    if lang == NO_SPEECH:
        stats.und += 1
        return True
    stats.answered += 1
    stats.langs[str(lang)] += 1
    p = _number(prob)
    stats.prob_sum += p
    stats.prob[_bin(p, 0.0, PROB_BINS)] += 1
    if margin is not None:
        stats.margin[_bin(margin, -1.0, MARGIN_BINS)] += 1
    return True


def _number(value: Any) -> float:
    return (
        0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    )


def _bin(value: float, low: float, bins: int) -> int:
    """The bin of ``value`` among ``bins`` even bins over ``[low, 1]`` (the ends included)."""
    return min(bins - 1, max(0, int((value - low) / (1.0 - low) * bins)))


def _topk_margin(topk: Any, prob: Any) -> float | None:
    if prob is None:
        return None
    probs = sorted((_number(item.get("prob")) for item in topk or ()), reverse=True)
    return float(prob) - (probs[1] if len(probs) > 1 else 0.0)
