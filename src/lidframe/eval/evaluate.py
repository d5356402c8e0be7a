"""``lidframe.evaluate``: how right a run's answers are, per model and for the consensus.

Input: a run's results (its Parquet folder, or a pandas or cuDF frame with the same columns; a cuDF
one is copied to the host, where codes are mapped and calibration computed) and ground truth, either
the results' own ``label`` column (a manifest with labels) or a labelled manifest joined by ``id``.
Each *source* (every model, and the consensus when there is one) is scored on the labelled rows:

* rows with an ``error`` are counted apart (they are not wrong answers, they are no answers);
* rows answered ``und`` for no speech (:mod:`~lidframe.eval.speech_stats`) are answers, and wrong
  ones on labelled speech: misses in accuracy and in their language's recall; their share (the
  no-speech rate) and the audio and speech seconds are given when the results have the speech
  columns;
* rows whose label the model cannot output (outside its label set, when the set is known) are
  counted apart as ``unsupported``, not as errors of the model;
* the rest give accuracy, macro-F1, per-language precision/recall/F1/support, the most frequent
  confusions, the long tail and the weakest languages, calibration of the answer's probability
  (ECE, Brier, reliability table), the confidently wrong rows, and the accuracy/coverage curve.

All codes go through the same canonical codes and :class:`~lidframe.languages.LanguageEquivalence` as
the models and the consensus (``nb`` and ``no`` are one language by default).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lidframe.errors import ConfigError
from lidframe.eval import display, metrics, speech_stats
from lidframe.languages import DEFAULT_EQUIVALENCE, LanguageEquivalence, canonical

__all__ = ["Evaluation", "SourceEvaluation", "evaluate", "recorded_label_sets"]

CONSENSUS = "consensus"


@dataclass
class SourceEvaluation:
    """The scores of one model (or of the consensus) on the labelled rows; shows as one line of
    text, and as HTML in Jupyter."""

    name: str
    labelled: int
    errors: int
    unsupported: int
    scored: int
    accuracy: float
    macro_f1: float
    ece: float
    brier: float
    per_language: pd.DataFrame
    confusions: pd.DataFrame
    reliability: pd.DataFrame
    coverage: pd.DataFrame
    confidently_wrong: pd.DataFrame
    long_tail: pd.DataFrame
    weakest: pd.DataFrame
    # One row per scored row: id, truth, predicted, confidence, correct (for paired comparisons).
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    # Scored rows answered ``und`` for no speech (misses); None when the results do not say.
    no_speech: int | None = None

    def threshold_for(self, target_accuracy: float) -> dict[str, float] | None:
        """The confidence threshold that keeps the most rows at ``target_accuracy`` or better."""
        return metrics.threshold_for_accuracy(self.coverage, target_accuracy)

    def __str__(self) -> str:
        return display.source_text(self)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return display.source_html(self)

    def summary(self) -> dict[str, Any]:
        return {
            "labelled": self.labelled,
            "errors": self.errors,
            "unsupported": self.unsupported,
            "scored": self.scored,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "ece": self.ece,
            "brier": self.brier,
            "confidently_wrong": len(self.confidently_wrong),
            "languages": int((self.per_language["support"] > 0).sum()),
            **speech_stats.no_speech_summary(self.no_speech, self.scored),
        }


@dataclass
class Evaluation:
    """Every source's scores, and how the models agree; shows as text, and as HTML in Jupyter
    (:mod:`lidframe.eval.display`)."""

    sources: dict[str, SourceEvaluation]
    agreement: pd.DataFrame
    rows: int
    labelled: int
    settings: dict[str, Any] = field(default_factory=dict)
    # speech_stats.speech_overview and speech_by_language: None / empty without speech columns.
    speech: dict[str, Any] | None = None
    speech_by_language: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __getitem__(self, name: str) -> SourceEvaluation:
        return self.sources[name]

    def summary(self) -> pd.DataFrame:
        """One row per source: counts, accuracy, macro-F1, ECE, Brier, confidently wrong."""
        table = pd.DataFrame([s.summary() for s in self.sources.values()])
        table.index = pd.Index(list(self.sources), name="source")
        return table

    def record(self) -> dict[str, Any]:
        """A JSON-able record: settings, and per source the summary and the per-language table."""

        def clean(x: Any) -> Any:
            return None if isinstance(x, float) and math.isnan(x) else x

        return {
            "rows": self.rows,
            "labelled": self.labelled,
            "settings": self.settings,
            "sources": {
                name: {
                    "summary": {k: clean(v) for k, v in s.summary().items()},
                    "per_language": {
                        lang: {k: clean(v) for k, v in row.items()}
                        for lang, row in s.per_language.to_dict("index").items()
                    },
                }
                for name, s in self.sources.items()
            },
            "agreement": {
                str(k): {c: clean(v) for c, v in row.items()}
                for k, row in self.agreement.to_dict("index").items()
            },
            "speech": speech_stats.speech_record(self.speech, self.speech_by_language, clean),
        }

    def per_language(self) -> pd.DataFrame:
        """Per-language tables of every source side by side (columns: source, metric)."""
        return pd.concat(
            {
                n: s.per_language[["support", "precision", "recall", "f1"]]
                for n, s in self.sources.items()
            },
            axis=1,
        )

    def __str__(self) -> str:
        return display.evaluation_text(self)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        main = self.sources.get(CONSENSUS) or next(iter(self.sources.values()))
        return display.evaluation_html(self, main)


def recorded_label_sets(results: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """The models' label sets a run recorded with its results (read by ``read_results``), by alias.

    Every run writes them into its parts' metadata; results from elsewhere have none, and then every
    label counts as one the model could answer.
    """
    from lidframe.sinks.parquet import LABELS_ATTR

    return dict(results.attrs.get(LABELS_ATTR) or {})


def _read_results(
    results: str | os.PathLike[str] | pd.DataFrame, options: Mapping[str, Any]
) -> pd.DataFrame:
    from lidframe.backend import is_cudf, to_pandas

    if is_cudf(results):
        return to_pandas(results)  # language codes and calibration are host work
    if isinstance(results, pd.DataFrame):
        return results
    from lidframe.sinks.parquet import read_results

    return read_results(os.fspath(results), options)


def _read_labels(
    labels: str | os.PathLike[str] | pd.DataFrame, options: Mapping[str, Any]
) -> pd.Series:
    """``id -> canonical label`` from a labelled manifest (any format :func:`read_manifest` reads)."""
    if isinstance(labels, pd.DataFrame):
        frame = labels
    else:
        import dask

        from lidframe.manifest import read_manifest

        with dask.config.set(scheduler="synchronous"):
            frame = read_manifest(
                labels, partition_rows=1 << 30, storage_options=options, backend="pandas"
            ).compute()
    if "label" not in frame.columns or "id" not in frame.columns:
        raise ConfigError(
            f"labels {labels if not isinstance(labels, pd.DataFrame) else ''}: need 'id' and 'label' columns"
        )
    return frame.set_index("id")["label"]


def _keys(values: Iterable[Any], equivalence: LanguageEquivalence) -> np.ndarray:
    out: list[str | None] = []
    for v in values:
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        else:
            out.append(equivalence.key(canonical(str(v))) if v != "und" else "und")
    return np.asarray(out, dtype=object)


def evaluate(
    results: str | os.PathLike[str] | pd.DataFrame,
    labels: str | os.PathLike[str] | pd.DataFrame | None = None,
    *,
    models: Sequence[str] | None = None,
    label_sets: Mapping[str, Iterable[str]] | None = None,
    equivalence: LanguageEquivalence = DEFAULT_EQUIVALENCE,
    confident: float = 0.9,
    tail_support: int | None = None,
    bins: int = 10,
    storage_options: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Score a run's results against ground truth; see the module docstring.

    ``models``: aliases (or names) to score, default every ``*_lang`` column; the consensus is added
    when the results have one. ``label_sets``: per alias, the codes the model can answer (default:
    the label sets the run recorded in its results' metadata). ``confident``: the probability at
    or above which a wrong answer is "confidently wrong". ``tail_support``: languages with fewer
    labelled rows are the long tail (default: the bottom quartile of support).
    """
    from lidframe.columns import column_alias

    options = dict(storage_options or {})
    df = _read_results(results, options)
    recorded = recorded_label_sets(df)
    df = df.reset_index(drop=True)
    if labels is not None:
        truth = _read_labels(labels, options)
        df = df.drop(columns=["label"], errors="ignore")
        df["label"] = df["id"].map(truth)
    if "label" not in df.columns:
        raise ConfigError(
            "no ground truth: the results have no 'label' column; pass labels=MANIFEST"
        )
    aliases = (
        [column_alias(m) for m in models]
        if models is not None
        else [c.removesuffix("_lang") for c in df.columns if c.endswith("_lang")]
    )
    for alias in aliases:
        if f"{alias}_lang" not in df.columns:
            raise ConfigError(f"no column {alias}_lang in the results (models: {aliases})")
    truth_keys = _keys(df["label"], equivalence)
    labelled = np.array([k is not None for k in truth_keys])
    errors = df["error"].notna().to_numpy() if "error" in df.columns else np.zeros(len(df), bool)
    no_speech = speech_stats.no_speech_rows(df, aliases, errors)
    counted = no_speech if speech_stats.vad_ran(df) else None
    sets: dict[str, Iterable[str]] = {**recorded, **dict(label_sets or {})}

    sources: dict[str, SourceEvaluation] = {}
    for alias in aliases:
        supported_set = sets.get(alias)
        if supported_set is None:
            supported = np.ones(len(df), bool)
        else:
            keys = {equivalence.key(canonical(c)) for c in supported_set}
            supported = np.array([k is None or k in keys for k in truth_keys], dtype=bool)
        sources[alias] = _score(
            alias, df, truth_keys, labelled, errors, supported,
            _keys(df[f"{alias}_lang"], equivalence),
            df[f"{alias}_prob"].to_numpy(dtype=float) if f"{alias}_prob" in df else np.full(len(df), np.nan),
            confident, tail_support, bins, counted,
        )  # fmt: skip
    if "lang" in df.columns and "consensus_prob" in df.columns:
        sources[CONSENSUS] = _score(
            CONSENSUS, df, truth_keys, labelled, errors, np.ones(len(df), bool),
            _keys(df["lang"], equivalence), df["consensus_prob"].to_numpy(dtype=float),
            confident, tail_support, bins, counted,
        )  # fmt: skip
    # No-speech rows are left out: every model answers ``und`` there without having listened.
    agreement = _agreement(df, aliases, truth_keys, labelled & ~errors & ~no_speech, equivalence)
    return Evaluation(
        sources=sources,
        agreement=agreement,
        rows=len(df),
        labelled=int(labelled.sum()),
        settings={"confident": confident, "tail_support": tail_support, "bins": bins},
        speech=speech_stats.speech_overview(df, errors, no_speech),
        speech_by_language=speech_stats.speech_by_language(
            df, truth_keys, labelled, errors, no_speech
        ),
    )


def _score(
    name: str,
    df: pd.DataFrame,
    truth: np.ndarray,
    labelled: np.ndarray,
    errors: np.ndarray,
    supported: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    confident: float,
    tail_support: int | None,
    bins: int,
    no_speech: np.ndarray | None,
) -> SourceEvaluation:
    """Scores of one source; ``no_speech``: the rows answered ``und`` for no speech, when known."""
    scored = labelled & ~errors & supported
    t = truth[scored]
    p = np.asarray([x if x is not None else "und" for x in predicted[scored]], dtype=object)
    conf = confidence[scored]
    correct = t == p
    table = metrics.per_language(t, p)
    if no_speech is not None:
        table["no_speech"] = speech_stats.no_speech_by_language(t, no_speech[scored], table.index)
    wrong = scored.copy()
    wrong[scored] = (~correct) & (np.nan_to_num(conf, nan=-1.0) >= confident)
    columns = [c for c in ("id", "audio", "label") if c in df.columns]
    confidently_wrong = df.loc[wrong, columns].copy()
    confidently_wrong["predicted"] = predicted[wrong]
    confidently_wrong["confidence"] = confidence[wrong]
    confidently_wrong = confidently_wrong.sort_values("confidence", ascending=False)
    return SourceEvaluation(
        name=name,
        labelled=int(labelled.sum()),
        errors=int((labelled & errors).sum()),
        unsupported=int((labelled & ~errors & ~supported).sum()),
        scored=int(scored.sum()),
        accuracy=metrics.accuracy(t, p),
        macro_f1=metrics.macro_f1(table),
        ece=metrics.expected_calibration_error(conf, correct, bins),
        brier=metrics.brier_score(conf, correct),
        per_language=table,
        confusions=metrics.confusions(t, p),
        reliability=metrics.reliability(conf, correct, bins),
        coverage=metrics.coverage_curve(conf, correct),
        confidently_wrong=confidently_wrong.reset_index(drop=True),
        long_tail=metrics.long_tail(table, tail_support),
        weakest=metrics.weakest(table, 10),
        rows=pd.DataFrame(
            {
                "id": df.loc[scored, "id"].to_numpy()
                if "id" in df.columns
                else np.flatnonzero(scored),
                "truth": t,
                "predicted": p,
                "confidence": conf,
                "correct": correct,
            }
        ),
        no_speech=None if no_speech is None else int((scored & no_speech).sum()),
    )


def _agreement(
    df: pd.DataFrame,
    aliases: Sequence[str],
    truth: np.ndarray,
    usable: np.ndarray,
    equivalence: LanguageEquivalence,
) -> pd.DataFrame:
    """When the models agree, how often they are right; when they disagree, who is right how often."""
    if len(aliases) < 2:
        return pd.DataFrame()
    answers = {a: _keys(df[f"{a}_lang"], equivalence) for a in aliases}
    answered = usable & np.all([np.array([x is not None for x in v]) for v in answers.values()], 0)
    first = answers[aliases[0]]
    agree = answered & np.all([answers[a] == first for a in aliases[1:]], axis=0)
    disagree = answered & ~agree
    rows = []
    for mask in (agree, disagree):
        row: dict[str, Any] = {
            "rows": int(mask.sum()),
            "share": float(mask.sum() / max(answered.sum(), 1)),
        }
        for a in aliases:
            row[f"{a} right"] = (
                float(np.mean(answers[a][mask] == truth[mask])) if mask.any() else float("nan")
            )
        right_any = (
            np.any([answers[a][mask] == truth[mask] for a in aliases], axis=0)
            if mask.any()
            else np.array([])
        )
        row["none right"] = float(1 - right_any.mean()) if mask.any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).set_index(pd.Index(["models agree", "models disagree"], name="when"))
