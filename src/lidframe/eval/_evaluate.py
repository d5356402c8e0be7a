"""``lidframe.evaluate``: how right a run's answers are, per model and for the consensus.

Input: a run's results (its Parquet folder, or a pandas or cuDF frame with the same columns; a cuDF
one is copied to the host, where codes are mapped and calibration computed) and ground truth, either
the results' own ``label`` column (a manifest with labels) or a labelled manifest joined by ``id``.
Each *source* (every model, and the consensus when there is one) is scored on the labelled rows:

* rows with an ``error`` are counted apart (they are not wrong answers, they are no answers);
* rows answered ``und`` for no speech (:mod:`~lidframe.eval._speech_stats`) are answers, and wrong
  ones on labelled speech: misses in accuracy and in their language's recall; their share (the
  no-speech rate) and the audio and speech seconds are given when the results have the speech
  columns;
* rows whose label the model cannot output (outside its label set, when the set is known) are
  counted apart as ``unsupported``, not as errors of the model;
* rows labelled ``und`` (or ``zxx``: no language, e.g. silence or tones) are no language: left out
  of every language figure, they are scored as a no-speech detection task instead (precision and
  recall of the ``und`` answers, :mod:`~lidframe.eval._detection`);
* the rest give accuracy, macro-F1, per-language precision/recall/F1/support, the most frequent
  confusions, the long tail and the weakest languages, calibration of the answer's probability
  (ECE, Brier, reliability table), the confidently wrong rows, and the accuracy/coverage curve.

With ``by`` columns (a speaker, a source, a sample rate: the results' own columns, or the
manifest's joined by ``id``, :mod:`~lidframe.eval._by_columns`), the rows, scored rows, each
source's accuracy and the ``und`` rate per value of each column (:mod:`~lidframe.eval._groups`).

Over every row, labelled or not, it also keeps what each source answered
(:mod:`~lidframe.eval._answers`: the predicted-language distribution, and every wrong row with its
audio and clip window) and what produced the results (:mod:`~lidframe.eval._run_info`). Results
without ground truth are not an error: their evaluation has no labelled row, no scores, and a note
saying so; the distribution is then what there is to look at.

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
from lidframe.eval import _answers as answers
from lidframe.eval import _display as display
from lidframe.eval import _groups as groups
from lidframe.eval import _metrics as metrics
from lidframe.eval import _speech_stats as speech_stats
from lidframe.eval._by_columns import by_columns
from lidframe.eval._calibration_check import (
    CalibrationCheck,
    applied_calibration,
    calibration_check,
)
from lidframe.eval._detection import NoSpeechDetection, detect_no_speech, detection_table
from lidframe.eval._inputs import keys as _keys
from lidframe.eval._inputs import read_labels as _read_labels
from lidframe.eval._inputs import recorded_label_sets, shown_names
from lidframe.eval._inputs import results_frame as _results_frame
from lidframe.eval._reviewed import fill_reviewed, reviewed_labels
from lidframe.eval._run_info import run_info
from lidframe.languages import DEFAULT_EQUIVALENCE, NO_LANGUAGE, LanguageEquivalence, canonical

__all__ = ["Evaluation", "SourceEvaluation", "evaluate", "recorded_label_sets"]

CONSENSUS = "consensus"


@dataclass
class SourceEvaluation:
    """The scores of one model (or of the consensus) on the rows labelled with a language
    (``labelled``: those rows; rows labelled ``und`` are scored in ``detection``); shows as one
    line of text, and as HTML in Jupyter."""

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
    # Rows labelled ``und`` against the ``und`` answers (None: made without the labels).
    detection: NoSpeechDetection | None = None

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
    (:mod:`lidframe.eval._display`). ``labelled`` counts every labelled row, ``no_language`` those
    labelled ``und`` (scored as no-speech detection, not in the language figures)."""

    sources: dict[str, SourceEvaluation]
    agreement: pd.DataFrame
    rows: int
    labelled: int
    settings: dict[str, Any] = field(default_factory=dict)
    # Rows with an ``error`` (no answer), labelled or not.
    errors: int = 0
    # speech_stats.speech_overview and speech_by_language: None / empty without speech columns.
    speech: dict[str, Any] | None = None
    speech_by_language: pd.DataFrame = field(default_factory=pd.DataFrame)
    # answers.distribution: rows per answered language, per source (every row without an error).
    distribution: pd.DataFrame = field(default_factory=pd.DataFrame)
    # answers.wrong_rows: every scored row some source got wrong, with its audio and clip window.
    wrong: pd.DataFrame = field(default_factory=pd.DataFrame)
    # Every row with an error (no answer, so not scored), in the results' order: id, audio, error.
    failed: pd.DataFrame = field(default_factory=pd.DataFrame)
    # run_info.run_info: job, models, version, date, rows/s (None where unknown).
    run: dict[str, Any] = field(default_factory=dict)
    # One line each, for the reader: e.g. why there are no scores (no ground truth).
    notes: list[str] = field(default_factory=list)
    # Labelled rows whose label is ``und`` (no speech).
    no_language: int = 0
    # By column (``by=``): one table per column, indexed by its values (groups.group_table).
    by: dict[str, pd.DataFrame] = field(default_factory=dict)
    # The consensus before and after a calibration given or applied by the run (None: neither).
    calibration: CalibrationCheck | None = None
    # Where the labels came from when some are reviewed labels (lidframe.review) of rows the
    # manifest left unlabelled: {"manifest": n, "reviewed": m}; empty otherwise.
    label_sources: dict[str, int] = field(default_factory=dict)

    @property
    def main(self) -> str:
        """The source a report leads with: the consensus when there is one, else the first."""
        return CONSENSUS if CONSENSUS in self.sources else next(iter(self.sources), "")

    def __getitem__(self, name: str) -> SourceEvaluation:
        return self.sources[name]

    def summary(self) -> pd.DataFrame:
        """One row per source: counts, accuracy, macro-F1, ECE, Brier, confidently wrong."""
        table = pd.DataFrame([s.summary() for s in self.sources.values()])
        table.index = pd.Index(list(self.sources), name="source")
        return table

    def no_speech_detection(self) -> pd.DataFrame:
        """One row per source: rows labelled ``und`` (and of them with an error), tp, fp, fn,
        precision and recall of the ``und`` answers (:mod:`~lidframe.eval._detection`)."""
        found = {n: s.detection for n, s in self.sources.items() if s.detection is not None}
        return detection_table(found)

    def record(self) -> dict[str, Any]:
        """A JSON-able record: settings, per source the summary and the per-language table, the
        no-speech detection and the ``by`` tables."""

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
            "no_language": self.no_language,
            "no_speech_detection": {
                name: {k: clean(v) for k, v in s.detection.summary().items()}
                for name, s in self.sources.items()
                if s.detection is not None
            },
            "by": {
                column: {
                    str(g): {k: clean(v) for k, v in row.items()}
                    for g, row in table.to_dict("index").items()
                }
                for column, table in self.by.items()
            },
            **({"calibration": self.calibration.summary()} if self.calibration is not None else {}),
            **({"label_sources": dict(self.label_sources)} if self.label_sources else {}),
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
        return display.evaluation_html(self, self.sources[self.main])


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
    db: str | None = None,
    by: str | Sequence[str] | None = None,
    calibration: Any = None,
) -> Evaluation:
    """Score a run's results against ground truth; see the module docstring.

    ``models``: aliases (or names) to score, default every ``*_lang`` column; the consensus is added
    when the results have one. ``label_sets``: per alias, the codes the model can answer (default:
    the label sets the run recorded in its results' metadata). ``confident``: the probability at
    or above which a wrong answer is "confidently wrong". ``tail_support``: languages with fewer
    labelled rows are the long tail (default: the bottom quartile of support). ``db``: the job
    database to read the job's time and rows/s from (default: the embedded one of a local results
    folder, when there is one). Without ground truth (no ``label`` column and no ``labels``) the
    evaluation has no labelled row and a note saying so. ``by``: columns to score by, each apart
    (a list, or names separated by commas): the results' own, else the labels manifest's or the
    job's manifest's, joined by ``id``; a column found nowhere raises :class:`ConfigError` naming
    the columns there are. ``calibration``: a :class:`~lidframe.Calibration` or its file, whose
    consensus before and after is checked on the labelled rows (default: the one the run applied,
    from its provenance, when it had one; :mod:`~lidframe.eval._calibration_check`).

    Rows still without a label take the job's reviewed label when it has one
    (:mod:`~lidframe.eval._reviewed`, from the same job database as ``db``);
    ``Evaluation.label_sources`` then counts the labels from the manifest and from review.
    """
    from lidframe.columns import column_alias

    options = dict(storage_options or {})
    df = _results_frame(results, options)
    recorded = recorded_label_sets(df)
    attrs = dict(df.attrs)
    df = df.reset_index(drop=True)
    notes = []
    if labels is not None:
        truth = _read_labels(labels, options)
        df = df.drop(columns=["label"], errors="ignore")
        df["label"] = df["id"].map(truth)
    aliases = (
        [column_alias(m) for m in models]
        if models is not None
        else [c.removesuffix("_lang") for c in df.columns if c.endswith("_lang")]
    )
    for alias in aliases:
        if f"{alias}_lang" not in df.columns:
            raise ConfigError(f"no column {alias}_lang in the results (models: {aliases})")
    run = run_info(results, aliases, len(df), db=db, storage_options=options, attrs=attrs)
    unlabelled = "label" not in df.columns
    if unlabelled:
        df["label"] = None
    given_labels = int(df["label"].notna().sum())
    reviewed = fill_reviewed(df, reviewed_labels(results, run["job_id"], db))
    if unlabelled and not reviewed:
        notes.append(
            "No ground truth: the results have no 'label' column and no labels were given "
            "(labels=MANIFEST, --labels): the predicted languages only, no accuracy."
        )
    # Languages show as the codes the data holds, merges named (scores compare keys either way).
    names, merged = shown_names(
        [df[c] for c in ("label", *(f"{a}_lang" for a in aliases), "lang") if c in df.columns],
        equivalence,
    )
    notes += [merged] if merged else []
    truth_keys = _keys(df["label"], equivalence, names)
    labelled = np.array([k is not None for k in truth_keys], dtype=bool)
    # Rows with a language label: the rows of every language figure (und is no language).
    languages = labelled & (truth_keys != NO_LANGUAGE)
    grouped = by_columns(df, by, results=results, labels=labels, db=db, options=options)
    if not labelled.any() and not notes:
        notes.append("No labelled row: every label is empty; the predicted languages only.")
    errors = df["error"].notna().to_numpy() if "error" in df.columns else np.zeros(len(df), bool)
    no_speech = speech_stats.no_speech_rows(df, aliases, errors)
    counted = no_speech if speech_stats.vad_ran(df) else None
    sets: dict[str, Iterable[str]] = {**recorded, **dict(label_sets or {})}

    given: dict[str, answers.Answers] = {}
    for alias in aliases:
        supported_set = sets.get(alias)
        if supported_set is None:
            supported = np.ones(len(df), bool)
        else:
            keys = {names.get(k, k) for k in (equivalence.key(canonical(c)) for c in supported_set)}
            supported = np.array([k is None or k in keys for k in truth_keys], dtype=bool)
        prob = f"{alias}_prob"
        given[alias] = answers.Answers(
            _keys(df[f"{alias}_lang"], equivalence, names),
            df[prob].to_numpy(dtype=float) if prob in df else np.full(len(df), np.nan),
            languages & ~errors & supported,
        )
    if "lang" in df.columns and "consensus_prob" in df.columns:
        given[CONSENSUS] = answers.Answers(
            _keys(df["lang"], equivalence, names),
            df["consensus_prob"].to_numpy(dtype=float),
            languages & ~errors,
        )
    sources = {
        name: _score(
            name, df, truth_keys, languages, errors, a.scored, a.predicted, a.confidence,
            confident, tail_support, bins, counted,
        )
        for name, a in given.items()
    }  # fmt: skip
    for name, a in given.items():
        sources[name].detection = detect_no_speech(truth_keys, a.predicted, labelled, errors)
    # No-speech rows are left out: every model answers ``und`` there without having listened.
    agreement = _agreement(
        df, aliases, truth_keys, languages & ~errors & ~no_speech, equivalence, names
    )
    main = CONSENSUS if CONSENSUS in given else next(iter(given), "")
    check = None
    if languages.any():
        check, note = _check_calibration(
            results, df, truth_keys, languages & ~errors, calibration, options, attrs,
            equivalence, sets, bins, names,
        )  # fmt: skip
        notes += [note] if note else []
    by_tables = {}
    for column in grouped.columns:
        values, note = groups.group_values(grouped[column])
        notes += [note] if note else []
        by_tables[column] = groups.group_table(values, truth_keys, languages, errors, given, main)
    return Evaluation(
        sources=sources,
        agreement=agreement,
        rows=len(df),
        labelled=int(labelled.sum()),
        settings={"confident": confident, "tail_support": tail_support, "bins": bins},
        errors=int(errors.sum()),
        speech=speech_stats.speech_overview(df, errors, no_speech),
        speech_by_language=speech_stats.speech_by_language(
            df, truth_keys, languages, errors, no_speech
        ),
        distribution=answers.distribution(given, truth_keys, errors),
        wrong=answers.wrong_rows(df, truth_keys, given, main, labelled & ~errors),
        failed=df.loc[errors, [c for c in ("id", "audio", "error") if c in df.columns]],
        run=run,
        label_sources={"manifest": given_labels, "reviewed": reviewed} if reviewed else {},
        notes=notes,
        no_language=int((labelled & ~languages).sum()),
        by=by_tables,
        calibration=check,
    )


def _check_calibration(
    results: Any,
    df: pd.DataFrame,
    truth: np.ndarray,
    scored: np.ndarray,
    calibration: Any,
    options: Mapping[str, Any],
    attrs: Mapping[str, Any],
    equivalence: LanguageEquivalence,
    label_sets: Mapping[str, Iterable[str]],
    bins: int,
    names: Mapping[str, str],
) -> tuple[CalibrationCheck | None, str | None]:
    """The calibration given, else the one the run applied (None, None: neither)."""
    if calibration is not None:
        origin = (
            f"given: {os.fspath(calibration)}"
            if isinstance(calibration, str | os.PathLike)
            else "given"
        )
    else:
        calibration = applied_calibration(results, options, attrs)
        origin = "applied by the run"
    if calibration is None:
        return None, None
    return calibration_check(
        df, truth, scored, calibration, origin, equivalence, label_sets, bins, names
    )


def _score(
    name: str,
    df: pd.DataFrame,
    truth: np.ndarray,
    labelled: np.ndarray,
    errors: np.ndarray,
    scored: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    confident: float,
    tail_support: int | None,
    bins: int,
    no_speech: np.ndarray | None,
) -> SourceEvaluation:
    """Scores of one source on its ``scored`` rows (labelled, no error, label in its set);
    ``no_speech``: the rows answered ``und`` for no speech, when known."""
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
        unsupported=int((labelled & ~errors & ~scored).sum()),
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
    names: Mapping[str, str],
) -> pd.DataFrame:
    """When the models agree, how often they are right; when they disagree, who is right how often
    (``truth`` as :func:`~lidframe.eval._inputs.keys` gives it with ``names``)."""
    if len(aliases) < 2:
        return pd.DataFrame()
    said = {a: _keys(df[f"{a}_lang"], equivalence, names) for a in aliases}
    answered = usable & np.all([np.array([x is not None for x in v]) for v in said.values()], 0)
    first = said[aliases[0]]
    agree = answered & np.all([said[a] == first for a in aliases[1:]], axis=0)
    disagree = answered & ~agree
    rows = []
    for mask in (agree, disagree):
        row: dict[str, Any] = {
            "rows": int(mask.sum()),
            "share": float(mask.sum() / max(answered.sum(), 1)),
        }
        for a in aliases:
            row[f"{a} right"] = (
                float(np.mean(said[a][mask] == truth[mask])) if mask.any() else float("nan")
            )
        right_any = (
            np.any([said[a][mask] == truth[mask] for a in aliases], axis=0)
            if mask.any()
            else np.array([])
        )
        row["none right"] = float(1 - right_any.mean()) if mask.any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).set_index(pd.Index(["models agree", "models disagree"], name="when"))
