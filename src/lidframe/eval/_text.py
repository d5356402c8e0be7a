"""An evaluation as readable text: what ``lidframe eval`` prints, and a notebook can print too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lidframe.eval._detection import detection_text
from lidframe.eval._evaluate import Evaluation, SourceEvaluation
from lidframe.eval._speech_stats import speech_text, worst_no_speech

__all__ = [
    "GROUPS_SHOWN",
    "answered_text",
    "failed_text",
    "language_accuracy_text",
    "by_text",
    "evaluation_text",
    "stored_text",
    "unlabelled_text",
]

# Groups of a ``by`` table printed (the record and the report keep every one).
GROUPS_SHOWN = 50
# Rows with an error printed (the report lists more, the results hold every one).
FAILED_SHOWN = 5
# Languages whose accuracy is printed, lowest first (the report and the record have every one).
LANGUAGES_SHOWN = 12


def evaluation_text(ev: Evaluation, target_accuracy: float = 0.95) -> str:
    """The summary table (with the no-speech and speech-seconds line, and the languages most often
    without speech, when the results have the speech columns), the no-speech detection table (when
    some row is labelled ``und``) and the ``by`` tables, then per source the confidence
    threshold that reaches ``target_accuracy``, its accuracy per language (lowest first) and its
    three most frequent confusions, then the agreement table (when there are several models)."""
    if not ev.labelled:
        return unlabelled_text(ev)
    lines = [str(ev), *failed_text(ev)]
    if ev.label_sources:
        lines.append(label_sources_text(ev.label_sources))
    if ev.calibration is not None:
        lines.append(calibration_text(ev.calibration.summary()))
    if worst := worst_no_speech(ev.speech_by_language):
        lines.append(f"no speech most often in: {worst}")
    found = {n: s.detection for n, s in ev.sources.items() if s.detection is not None}
    if detected := detection_text(found):
        lines += ["", detected]
    if ev.by:
        lines += ["", by_text(ev)]
    for name, source in ev.sources.items():
        pick = source.threshold_for(target_accuracy)
        if pick is None:
            threshold = f"no threshold reaches {target_accuracy:.0%} accuracy"
        else:
            threshold = (
                f"threshold {pick['threshold']:.3f} keeps {pick['coverage']:.0%} of rows at "
                f"{pick['accuracy']:.1%} accuracy"
            )
        top = source.confusions.head(3)
        confused = ", ".join(f"{r.true}->{r.predicted} {r.rows}" for r in top.itertuples())
        lines += ["", f"{name}: {threshold}", f"  {language_accuracy_text(source)}"]
        if confused:
            lines.append(f"  most confused: {confused}")
    if not ev.agreement.empty:
        lines += ["", ev.agreement.to_string(float_format=lambda x: f"{x:.3f}")]
    return "\n".join(lines)


def language_accuracy_text(source: SourceEvaluation, shown: int = LANGUAGES_SHOWN) -> str:
    """Accuracy per true language (its rows answered right, of its rows), lowest first: the
    first ``shown``, and how many more languages there are (each at 100% when the shown are)."""
    table = source.per_language
    table = table[table["support"] > 0]
    if table.empty:
        return "accuracy per language: no scored row"
    accuracy = table["correct"] / table["support"]
    order = accuracy.sort_values(kind="stable").index
    head = order[:shown]
    text = ", ".join(
        f"{lang} {accuracy[lang]:.0%} ({int(table.loc[lang, 'correct'])}/"
        f"{int(table.loc[lang, 'support'])})"
        for lang in head
    )
    more = len(order) - len(head)
    if more:
        text += f", and {more} more languages" + (
            " at 100%" if accuracy[order[shown - 1]] == 1.0 else ", up to 100%"
        )
    return f"accuracy per language, lowest first (rows right/rows): {text}"


def failed_text(ev: Evaluation, shown: int = FAILED_SHOWN) -> list[str]:
    """The first ``shown`` rows with an error, one line each (the error names the file), and how
    many more there are."""
    if ev.failed.empty:
        return []
    more = len(ev.failed) - shown
    lines = [
        f"rows with an error, not scored{f' (the first {shown} of {len(ev.failed)})' if more > 0 else ''}:"
    ]
    for record in ev.failed.head(shown).to_dict("records"):
        error, audio = str(record.get("error")), str(record.get("audio"))
        where = "" if audio in error else f" ({audio})"
        lines.append(f"  {record.get('id')}{where}: {error}")
    return lines


def answered_text(ev: Evaluation, source: str, top: int = 10) -> str:
    """The ``top`` languages ``source`` answered most, with their rows and share."""
    column = f"{source} rows"
    if column not in ev.distribution.columns:
        return ""
    answered = ev.distribution[ev.distribution[column] > 0]
    table = answered.sort_values(column, ascending=False, kind="stable").head(top)
    more = len(answered) - len(table)
    shares = table[f"{source} share"]
    text = ", ".join(f"{lang} {int(n)} ({shares[lang]:.1%})" for lang, n in table[column].items())
    return text + (f", and {more} more" if more > 0 else "")


def label_sources_text(sources: Mapping[str, int]) -> str:
    """E.g. ``labels: 120 from the manifest, 35 reviewed``."""
    return f"labels: {sources['manifest']} from the manifest, {sources['reviewed']} reviewed"


def calibration_text(summary: Mapping[str, Any]) -> str:
    """The consensus before and after a calibration, in one line (the report draws it)."""
    before, after = summary["before"], summary["after"]
    return (
        f"calibration ({summary['origin']}): consensus accuracy {before['accuracy']:.1%} -> "
        f"{after['accuracy']:.1%}, ECE {before['ece']:.3f} -> {after['ece']:.3f}, "
        f"Brier {before['brier']:.3f} -> {after['brier']:.3f}"
    )


def unlabelled_text(ev: Evaluation) -> str:
    """Results without ground truth: why there are no scores, the rows, the speech line and each
    source's most answered languages."""
    lines = [*ev.notes, f"{ev.rows} rows, {ev.errors} with an error (no answer)", *failed_text(ev)]
    if ev.speech:
        lines.append(speech_text(ev.speech))
    lines += [f"{name} answered: {answered_text(ev, name)}" for name in ev.sources]
    if ev.by:
        lines += ["", by_text(ev)]
    return "\n".join(lines)


def by_text(ev: Evaluation, shown: int = GROUPS_SHOWN) -> str:
    """Each ``by`` table (its first ``shown`` groups, and how many more there are)."""
    blocks = []
    for column, table in ev.by.items():
        text = table.head(shown).to_string(float_format=lambda x: f"{x:.3f}", na_rep="n/a")
        more = len(table) - shown
        tail = (
            f"\n... and {more} more groups (in the stored record and the report)"
            if more > 0
            else ""
        )
        s = "s" if len(table) != 1 else ""
        blocks.append(f"by {column} ({len(table)} group{s}):\n{text}{tail}")
    return "\n\n".join(blocks)


def stored_text(saved: Mapping[str, Any]) -> str:
    """Where :func:`~lidframe.eval._records.save_evaluation` stored a record (its return value)."""
    where = str(saved["saved_to"])
    if saved["eval_id"] is not None:
        where += f" and evaluation {saved['eval_id']} of the job database"
    return f"stored in {where}"
