"""An evaluation as readable text: what ``lidframe eval`` prints, and a notebook can print too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lidframe.eval.evaluate import Evaluation
from lidframe.eval.speech_stats import worst_no_speech

__all__ = ["evaluation_text", "stored_text"]


def evaluation_text(ev: Evaluation, target_accuracy: float = 0.95) -> str:
    """The summary table (with the no-speech and speech-seconds line, and the languages most often
    without speech, when the results have the speech columns), then per source the confidence
    threshold that reaches ``target_accuracy``, its five weakest languages and its three most
    frequent confusions, then the agreement table (when there are several models)."""
    lines = [str(ev)]
    if worst := worst_no_speech(ev.speech_by_language):
        lines.append(f"no speech most often in: {worst}")
    for name, source in ev.sources.items():
        pick = source.threshold_for(target_accuracy)
        if pick is None:
            threshold = f"no threshold reaches {target_accuracy:.0%} accuracy"
        else:
            threshold = (
                f"threshold {pick['threshold']:.3f} keeps {pick['coverage']:.0%} of rows at "
                f"{pick['accuracy']:.1%} accuracy"
            )
        weakest = ", ".join(
            f"{row.lang} {row.f1:.2f} (n={row.support})"
            for row in source.weakest.head(5).reset_index().itertuples()
        )
        top = source.confusions.head(3)
        confused = ", ".join(f"{r.true}->{r.predicted} {r.rows}" for r in top.itertuples())
        lines += ["", f"{name}: {threshold}", f"  weakest: {weakest}"]
        if confused:
            lines.append(f"  most confused: {confused}")
    if not ev.agreement.empty:
        lines += ["", ev.agreement.to_string(float_format=lambda x: f"{x:.3f}")]
    return "\n".join(lines)


def stored_text(saved: Mapping[str, Any]) -> str:
    """Where :func:`~lidframe.eval.records.save_evaluation` stored a record (its return value)."""
    where = str(saved["saved_to"])
    if saved["eval_id"] is not None:
        where += f" and evaluation {saved['eval_id']} of the job database"
    return f"stored in {where}"
