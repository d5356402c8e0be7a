"""The report's sections as HTML: the run, the predicted languages, the summary, no speech as a
detection task, the speech, the ``by`` tables, the wrong rows (with audio players) and one section
per source.

Tables show their index as an ordinary first column (no pandas index-name header row), floats with
three decimals and NaN as a dash; every text from the data is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from lidframe.eval._run_info import model_rows, run_rows
from lidframe.eval.report import _plots as plots

if TYPE_CHECKING:
    from lidframe.eval._evaluate import Evaluation, SourceEvaluation
    from lidframe.eval.report._audio import Players

__all__ = [
    "CALIBRATION_NOTE",
    "calibration",
    "CONFIDENTLY_WRONG_SHOWN",
    "DOMAIN_NOTE",
    "WRONG_SHOWN",
    "by",
    "distribution",
    "failed",
    "FAILED_SHOWN",
    "no_speech",
    "run",
    "settings_text",
    "source",
    "speech",
    "summary",
    "table",
    "wrong",
]

CONFIDENTLY_WRONG_SHOWN = 50
# Wrong rows listed (each with a player); the rest are counted, so a huge run stays a page.
WRONG_SHOWN = 500
# Rows with an error listed (id, file, error); the rest are counted.
FAILED_SHOWN = 500
DASH = "\u2013"  # shown for NaN and unknown answers

CALIBRATION_NOTE = (
    "ECE (expected calibration error): how far the answers' probabilities are from how often they "
    "are right, averaged over probability bins (0: an answer given at 0.8 is right 80% of the "
    "time). Brier: the mean squared gap between the probability and 1 if right, 0 if wrong. Lower "
    "is better for both."
)
DOMAIN_NOTE = (
    "Accuracy depends on the audio domain (recording conditions, speakers, read or spontaneous "
    "speech, clip length): these figures hold for these rows. Synthetic or unusual speech can "
    "score far below natural recordings in the same languages."
)


def table(frame: pd.DataFrame, *, scroll: bool = False) -> str:
    """``frame`` as an escaped HTML table: its index (when it is not a plain row number) as the
    first column, floats to 3 decimals, NaN as a dash."""
    if frame.empty:
        return '<p class="note">No rows.</p>'
    shown = frame
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
        shown = frame.reset_index(names=[n or "" for n in frame.index.names])
    shown = shown.copy()
    shown.columns = [str(c) for c in shown.columns]
    body = shown.to_html(
        float_format="{:.3f}".format, na_rep=DASH, escape=True, border=0, index=False
    )
    return f'<div class="scroll">{body}</div>' if scroll else body


def _pct(x: float) -> str:
    return DASH if math.isnan(x) else f"{100 * x:.1f}%"


def _num(x: float) -> str:
    return DASH if math.isnan(x) else f"{x:.3f}"


def _pairs(rows: list[tuple[str, str]]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(k)}</th><td class=left>{html.escape(v)}</td></tr>" for k, v in rows
    )
    return f"<table>{cells}</table>"


def settings_text(settings: Mapping[str, Any]) -> str:
    """The evaluation's settings in words."""
    tail = settings.get("tail_support")
    return (
        f"confidently wrong: probability \u2265 {settings.get('confident', 0.9)}; long tail: "
        + (
            f"languages with fewer than {tail} labelled rows"
            if tail is not None
            else "the bottom quartile of labelled rows per language"
        )
        + f"; calibration: {settings.get('bins', 10)} equal-width probability bins"
    )


def run(ev: Evaluation, written: str) -> str:
    """What produced the results: job, version, date, rows and rows/s, and each model."""
    models = pd.DataFrame(model_rows(ev.run))
    return "\n".join(
        [
            '<h2 id="run">Run</h2>',
            _pairs([*run_rows(ev.run), ("report written", written)]),
            "<h3>Models</h3>",
            table(models) if not models.empty else '<p class="note">No model columns.</p>',
        ]
    )


def behaviour(ev: Evaluation) -> str:
    """What the models said over the job's partitions and per worker, from the behaviour stored
    with the job (empty without a job database that has it)."""
    partitions, workers = ev.run.get("partitions"), ev.run.get("workers")
    if partitions is None or partitions.empty:
        return ""
    return "\n".join(
        [
            '<h2 id="behaviour">Behaviour over the job</h2>',
            '<p class="note">What the job\'s answer was, partition by partition as the job '
            "stored it (the language shares over the rows answered with a language).</p>",
            plots.img(plots.behaviour(partitions), "the answer over the job's partitions"),
            _expected_accuracy(partitions),
            "<h3>Per worker</h3>",
            table(workers),
        ]
    )


def _expected_accuracy(partitions: pd.DataFrame) -> str:
    """The accuracy the answer's probabilities promised against the measured one, over the job's
    partitions (empty when the manifest had no labels)."""
    figure = plots.expected_accuracy(partitions)
    if figure is None:
        return ""
    labelled, answered = int(partitions["labelled"].sum()), int(partitions["answered"].sum())
    expected = partitions["prob_sum"].sum() / answered if answered else float("nan")
    measured = partitions["correct"].sum() / labelled
    return "\n".join(
        [
            "<h3>Expected against measured accuracy</h3>",
            f"<p>Over the job: expected {expected:.3f} (the mean probability of the answer over "
            f"the {answered} rows answered with a language: the accuracy to expect when the "
            f"probabilities are calibrated), measured {measured:.3f} on the {labelled} rows with "
            "a label and an answer (the manifest's labels, as the job stored them; "
            "<code>und</code> answers count as wrong unless labelled so). A gap that opens "
            "partway marks where the probabilities stopped meaning what they say.</p>",
            plots.img(figure, "expected against measured accuracy over the job's partitions"),
        ]
    )


def distribution(ev: Evaluation) -> str:
    """Rows per answered language, per source (a chart of the main source, and the table)."""
    table_ = ev.distribution
    parts = [
        '<h2 id="languages">Predicted languages</h2>',
        f"<p>Rows per answered language over the {ev.rows - ev.errors} rows without an error "
        f"({ev.errors} rows with an error have no answer).{_und_note(ev)}</p>",
    ]
    if ev.main:
        parts.append(
            plots.img(
                plots.distribution(table_, ev.main),
                f"{ev.main}: bar chart of the rows per answered language",
            )
        )
    parts.append(table(table_, scroll=True))
    return "\n".join(parts)


def _und_note(ev: Evaluation) -> str:
    vad = bool(ev.speech and "no_speech" in ev.speech)
    consensus = "consensus" in ev.sources
    if not (vad or consensus):
        return ""
    why = [
        *(["no speech"] if vad else []),
        *(["(consensus) the models disagree"] if consensus else []),
    ]
    return f" <code>und</code>: {', or '.join(why)}."


def summary(ev: Evaluation) -> str:
    return "\n".join(
        [
            '<h2 id="summary">Summary</h2>',
            table(ev.summary()) if ev.sources else '<p class="note">No sources.</p>',
            f'<p class="note">{html.escape(CALIBRATION_NOTE)}</p>',
            f'<p class="note">{html.escape(DOMAIN_NOTE)}</p>',
        ]
    )


def calibration(ev: Evaluation, target: float) -> str:
    """The consensus before and after a calibration (given, or applied by the run): figures, the
    reliability diagram of both, and accuracy against coverage above each threshold of the
    calibrated probability with the threshold for ``target`` precision; nothing without one."""
    check = ev.calibration
    if check is None:
        return ""
    cal = check.calibration
    final = "no final map" if cal.final is None else f"final map: {cal.final.describe()}"
    figures = pd.DataFrame(
        [check.before, check.after],
        index=pd.Index(["before (policy alone)", "after (calibrated)"], name="consensus"),
    )
    best = check.threshold_for(target)
    if best is None:
        pick = f"No threshold of the calibrated probability reaches {_pct(target)} precision."
    else:
        pick = (
            f"For {_pct(target)} precision keep rows whose calibrated probability is \u2265 "
            f"{best['threshold']:.3f}: {_pct(best['coverage'])} of the rows ({int(best['rows'])}), "
            f"accuracy {_pct(best['accuracy'])}."
        )
    held = (cal.report.get("heldout") or {}).get("stages", {}).get("final")
    fitted = (
        f" At fitting, on {cal.rows} labelled rows held out by folds: ECE {_num(held['ece'])}, "
        f"accuracy {_pct(held['accuracy'])}."
        if held
        else ""
    )
    return "\n".join(
        [
            '<h2 id="calibration">Calibration</h2>',
            f"<p>The consensus recomputed from the models' top-k answers on the {check.rows} "
            f"scored rows, with the calibration ({html.escape(check.origin)}; policy "
            f"{html.escape(cal.policy)}, per-model temperatures and weights, "
            f"{html.escape(final)}) and without it (the policy alone).{html.escape(fitted)}</p>",
            table(figures),
            f"<p>{html.escape(pick)}</p>",
            '<div class="plots">'
            + plots.img(
                plots.calibrated_reliability(check),
                "consensus: reliability diagram before and after calibration, accuracy against "
                "mean probability per bin",
            )
            + plots.img(
                plots.thresholds(check, target),
                "consensus: share of rows kept and their accuracy above each threshold of the "
                f"calibrated probability; the threshold for {_pct(target)} precision is marked",
            )
            + "</div>",
            f'<p class="note">{html.escape(CALIBRATION_NOTE)}</p>',
        ]
    )


def no_speech(ev: Evaluation) -> str:
    """Rows labelled ``und`` against the ``und`` answers: precision, recall and their counts."""
    head = '<h2 id="no-speech">No speech (label <code>und</code>)</h2>'
    if not ev.no_language:
        return (
            f'{head}<p class="note">No row is labelled <code>und</code>: no-speech precision and '
            "recall are n/a. Speech rows answered <code>und</code> are misses in accuracy.</p>"
        )
    return "\n".join(
        [
            head,
            f"<p>{ev.no_language} rows are labelled <code>und</code> (no language: silence, tones, "
            "music): they are left out of accuracy, macro-F1 and calibration, and scored here as "
            "a detection task, positive = <code>und</code>. tp: labelled and answered "
            "<code>und</code>; fp: speech answered <code>und</code> (also a miss in accuracy); "
            "fn: labelled <code>und</code>, answered a language; rows with an error are not "
            "scored.</p>",
            table(ev.no_speech_detection()),
        ]
    )


def by(ev: Evaluation) -> str:
    """One table per ``by`` column: rows, scored rows, each source's accuracy and the und rate."""
    if not ev.by:
        return ""
    parts = [
        '<h2 id="by">By column</h2>',
        f'<p class="note">Per value of each column: its rows, the scored rows (a language label '
        f"and no error), each source's accuracy on them, and the share of its rows without an "
        f"error that {html.escape(ev.main)} answered <code>und</code>.</p>",
    ]
    for column, frame in ev.by.items():
        parts += [f"<h3>By {html.escape(column)}</h3>", table(frame, scroll=True)]
    return "\n".join(parts)


def speech(ev: Evaluation) -> str:
    """The speech section: nothing when the results have no speech columns."""
    from lidframe.eval._speech_stats import speech_text

    if ev.speech is None:
        return ""
    note = (
        "A row with less speech than <code>--min-speech</code> is answered <code>und</code> "
        "(no speech): on labelled rows a miss, counted in accuracy and recall; left out of the "
        "agreement table."
    )
    parts = ["<h2>Speech</h2>", f"<p>{html.escape(speech_text(ev.speech))}</p>"]
    if ev.labelled:
        parts += [
            f'<p class="note">{note}</p>',
            "<h3>Speech per labelled language</h3>",
            table(ev.speech_by_language, scroll=True),
        ]
    return "\n".join(parts)


def _window(start: float, end: float) -> str:
    if math.isfinite(end) and end > start:
        return f"{start:.2f}\u2013{end:.2f} s"
    return f"from {start:.2f} s" if start > 0 else "whole file"


def _answer(lang: Any, prob: Any, wrong: bool) -> str:
    if lang is None or (isinstance(lang, float) and math.isnan(lang)):
        return f"<td>{DASH}</td>"
    p = "" if prob is None or math.isnan(float(prob)) else f" {float(prob):.3f}"
    cls = ' class="bad"' if wrong else ""
    return f"<td{cls}>{html.escape(str(lang))}{p}</td>"


def wrong(ev: Evaluation, players: Players, limit: int = WRONG_SHOWN) -> str:
    """Every wrong row (the first ``limit``), each with its clip's player and every answer."""
    rows = ev.wrong
    head = '<h2 id="wrong">Wrong rows</h2>'
    if rows.empty:
        return f'{head}<p class="note">No wrong row.</p>'
    names = list(ev.sources)
    shown = rows.head(limit)
    more = len(rows) - len(shown)
    lines = [
        head,
        f"<p>{len(rows)} labelled rows answered wrong by at least one source (a wrong answer is "
        f"red); the rows {html.escape(ev.main)} got wrong come first, most confident first.</p>",
    ]
    if more:
        lines.append(
            f"<p><strong>{more} more wrong rows are not listed</strong> (the first {len(shown)} "
            "are; <code>evaluate(...).wrong</code> holds every one).</p>"
        )
    header = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    lines.append(
        '<div class="scroll wide"><table><tr><th>#</th><th>id</th><th>audio</th>'
        f"<th>window</th><th>true</th>{header}</tr>"
    )
    for i, record in enumerate(shown.to_dict("records"), start=1):
        bad = set(str(record["wrong in"]).split(", "))
        answers = "".join(
            _answer(record[n], record[f"{n} prob"], n in bad) for n in names if n in record
        )
        lines.append(
            f"<tr><td>{i}</td><td class=left>{html.escape(str(record['id']))}</td>"
            f"<td class=left>{players.cell(str(record['audio']), record['start'], record['end'])}"
            f"</td><td>{_window(record['start'], record['end'])}</td>"
            f"<td>{html.escape(str(record['true']))}</td>{answers}</tr>"
        )
    lines.append("</table></div>")
    return "\n".join(lines)


def failed(ev: Evaluation, limit: int = FAILED_SHOWN) -> str:
    """Every row with an error (the first ``limit``): its id, file and error; such a row has no
    answer, so it is in no figure of the report."""
    rows = ev.failed
    head = '<h2 id="failed">Rows with an error</h2>'
    if rows.empty:
        return f'{head}<p class="note">No row has an error.</p>'
    shown = rows.head(limit)
    more = len(rows) - len(shown)
    lines = [
        head,
        f"<p>{len(rows)} rows have an error and no answer: they are not scored (in no accuracy "
        "above). The error says why and names the file.</p>",
    ]
    if more:
        lines.append(
            f"<p><strong>{more} more rows with an error are not listed</strong> (the first "
            f"{len(shown)} are; <code>evaluate(...).failed</code> holds every one).</p>"
        )
    lines.append('<div class="scroll wide"><table><tr><th>#</th><th>id</th><th>error</th></tr>')
    for i, record in enumerate(shown.to_dict("records"), start=1):
        lines.append(
            f"<tr><td>{i}</td><td class=left>{html.escape(str(record.get('id')))}</td>"
            f"<td class=left>{html.escape(str(record.get('error')))}</td></tr>"
        )
    lines.append("</table></div>")
    return "\n".join(lines)


def source(name: str, s: SourceEvaluation, target: float) -> str:
    """One source: figures, threshold, plots, confusion table, per-language, weakest, confidently
    wrong rows."""
    esc = html.escape(name)
    no_speech = "" if s.no_speech is None else f", {s.no_speech} no speech (misses)"
    head = (
        f"<h2>{esc}</h2><p>{s.scored} scored of {s.labelled} labelled rows "
        f"({s.errors} errors, {s.unsupported} unsupported{no_speech}); "
        f"accuracy {_pct(s.accuracy)}, "
        f"macro-F1 {_num(s.macro_f1)}, ECE {_num(s.ece)}, Brier {_num(s.brier)}</p>"
        f'<p class="note">{html.escape(CALIBRATION_NOTE)}</p>'
    )
    best = s.threshold_for(target) if s.scored else None
    if best is None:
        threshold = f"No confidence threshold reaches {_pct(target)} accuracy."
    else:
        threshold = (
            f"For {_pct(target)} accuracy keep answers with confidence \u2265 "
            f"{best['threshold']:.3f}: coverage {_pct(best['coverage'])} ({int(best['rows'])} "
            f"rows), accuracy {_pct(best['accuracy'])}."
        )
    figures = [
        plots.img(
            plots.heatmap(s),
            f"{name}: confusion heat map of the (up to) {plots.HEATMAP_LANGUAGES} most frequent "
            "true languages, rows normalised to the share of each true language",
        ),
        plots.img(
            plots.reliability(s),
            f"{name}: reliability diagram, accuracy against confidence per bin",
        ),
        plots.img(
            plots.coverage(s, target, best),
            f"{name}: accuracy against coverage as the confidence "
            f"threshold rises; the threshold for {_pct(target)} accuracy is marked",
        ),
    ]
    confusion = plots.heatmap_table(s)
    langs = len(confusion.index)
    outside = [str(c) for c in confusion.columns[langs:]]
    shown = s.confidently_wrong.head(CONFIDENTLY_WRONG_SHOWN)
    return "\n".join(
        [
            head,
            f"<p>{html.escape(threshold)}</p>",
            f'<div class="plots">{"".join(figures)}</div>',
            f"<h3>{esc}: confusions</h3>",
            f'<p class="note">Rows: true language; columns: the answer. After the {langs} true '
            f"languages shown, the answers outside them, each by its code"
            + (f" ({html.escape(', '.join(outside))})" if outside else "")
            + ".</p>",
            table(confusion.rename_axis("true \u2193 answer \u2192"), scroll=True),
            f"<h3>{esc}: per language</h3>",
            table(s.per_language, scroll=True),
            f"<h3>{esc}: weakest languages (lowest F1)</h3>",
            table(s.weakest),
            f"<h3>{esc}: confidently wrong ({len(shown)} of {len(s.confidently_wrong)})</h3>",
            table(shown, scroll=True),
        ]
    )
