"""How evaluation results show: text for ``print``/``repr`` and HTML for Jupyter (``_repr_html_``).

Kept apart from :mod:`lidframe.eval._evaluate` (which computes them) so that neither outgrows its
job; the objects are typed ``Any`` here, as importing that module back would be a cycle. Figures
show with three decimals; the tables are the objects' own (``summary()``, ``per_language``,
``agreement``), so what is shown is what the code reads.
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

from lidframe.eval import _speech_stats as speech_stats

__all__ = ["evaluation_html", "evaluation_text", "labelled_text", "source_html", "source_text"]

_FIGURES = ("accuracy", "macro_f1", "ece", "brier", "no_speech_rate")


def _three(x: Any) -> str:
    return "\u2013" if isinstance(x, float) and math.isnan(x) else f"{x:.3f}"


def _table_html(table: pd.DataFrame) -> str:
    return table.to_html(float_format=_three)


def labelled_text(evaluation: Any) -> str:
    """The headline: labelled rows of all rows, and how many were labelled ``und`` (no speech)."""
    text = f"{evaluation.labelled} labelled rows of {evaluation.rows}"
    if evaluation.no_language:
        text += (
            f"; {evaluation.no_language} of them labelled und (no speech): scored as no-speech "
            "detection, left out of language accuracy"
        )
    if evaluation.errors:
        n = evaluation.errors
        text += f"; {n} {'row' if n == 1 else 'rows'} with an error (no answer), not scored"
    return text


def evaluation_text(evaluation: Any) -> str:
    """The labelled rows, the speech line and one row of figures per source."""
    table = evaluation.summary()
    for column in _FIGURES:
        if column in table.columns:
            table[column] = table[column].map(_three)
    speech = f"\n{speech_stats.speech_text(evaluation.speech)}" if evaluation.speech else ""
    notes = "".join(f"{note}\n" for note in evaluation.notes)
    bins = evaluation.settings.get("bins", 10)
    legend = (
        f"\n(accuracy over scored rows; ece and brier of each source's own probability, "
        f"{{alias}}_prob or consensus_prob, in {bins} bins)"
    )
    return f"{notes}{labelled_text(evaluation)}{speech}\n{table.to_string()}{legend}"


def evaluation_html(evaluation: Any, main: Any) -> str:
    """Sources' figures, the no-speech detection (rows labelled ``und``), the ``by`` tables, how
    the models agree, and ``main``'s per-language table."""
    parts = [
        f"<h4>lidframe evaluation: {html.escape(labelled_text(evaluation))}</h4>",
        *(f"<p>{html.escape(note)}</p>" for note in evaluation.notes),
    ]
    if evaluation.speech:
        parts.append(f"<p>{html.escape(speech_stats.speech_text(evaluation.speech))}</p>")
    parts.append(_table_html(evaluation.summary()))
    if evaluation.no_language:
        detection = evaluation.no_speech_detection()
        parts.append("<h5>no speech (label und): detection</h5>" + _table_html(detection))
    for column, table in evaluation.by.items():
        parts.append(f"<h5>by {html.escape(column)}</h5>" + _table_html(table))
    if not evaluation.agreement.empty:
        parts.append("<h5>agreement</h5>" + _table_html(evaluation.agreement))
    parts.append(f"<h5>{html.escape(main.name)}: per language</h5>")
    parts.append(_table_html(main.per_language))
    return "\n".join(parts)


def source_text(source: Any) -> str:
    """One line: the source's counts and figures."""
    figures = ", ".join(
        f"{k} {_three(v)}" if k in _FIGURES else f"{k} {v}" for k, v in source.summary().items()
    )
    return f"{source.name}: {figures}"


def source_html(source: Any) -> str:
    """The source's figures, per-language table, most frequent confusions and weakest languages."""
    summary = pd.DataFrame([source.summary()], index=pd.Index([source.name], name="source"))
    parts = [f"<h4>lidframe evaluation of {html.escape(source.name)}</h4>", _table_html(summary)]
    for title, table in (
        ("per language", source.per_language),
        ("most frequent confusions", source.confusions),
        ("weakest languages (lowest F1)", source.weakest),
    ):
        if not table.empty:
            parts.append(f"<h5>{title}</h5>" + _table_html(table))
    return "\n".join(parts)
