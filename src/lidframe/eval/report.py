"""One self-contained HTML report of an :class:`~lidframe.eval.evaluate.Evaluation`.

:func:`render_report` gives a single HTML file with no external resource (no script, no web font, no
style sheet or image from elsewhere): the summary table, the speech section (no-speech rate, audio
and speech seconds, overall and per labelled language; only when the results have the speech
columns) and the agreement table, then per source the
per-language table, a confusion heat map, a reliability diagram, the accuracy/coverage curve with the
threshold for a target accuracy, the weakest languages and the confidently wrong rows. Plots are
drawn by matplotlib's Agg canvas (never pyplot, so no global state and no display is needed) and
embedded as ``data:image/png;base64`` images. Every text from the data is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lidframe.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from lidframe.eval.evaluate import Evaluation, SourceEvaluation

__all__ = ["check_report_path", "default_report_path", "render_report", "write_report"]

HEATMAP_LANGUAGES = 20
CONFIDENTLY_WRONG_SHOWN = 50
CURVE_POINTS = 2000
DASH = "\u2013"  # shown for NaN

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
th,td{border:1px solid #ddd;padding:2px 8px;text-align:right}th{background:#f4f4f4}
.scroll{max-height:26em;overflow:auto;display:inline-block}
.plots{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
.note{color:#666}nav a{margin-right:1em}img{max-width:100%}
"""


def render_report(
    evaluation: Evaluation,
    path: str | os.PathLike[str] | None = None,
    *,
    title: str = "lidframe evaluation",
    target_accuracy: float = 0.95,
    storage_options: Mapping[str, Any] | None = None,
) -> str:
    """The HTML report of ``evaluation``; also written to ``path`` (any fsspec URL) when given.

    ``target_accuracy``: the accuracy whose confidence threshold is marked on each coverage curve.
    ``storage_options``: passed to fsspec for ``path`` (e.g. S3 credentials and endpoint).
    """
    names = list(evaluation.sources)
    nav = " ".join(f'<a href="#source-{i}">{html.escape(name)}</a>' for i, name in enumerate(names))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{evaluation.labelled} labelled rows of {evaluation.rows}; '
        f"settings: {html.escape(_settings(evaluation.settings))}</p>",
        f"<nav>{nav}</nav>",
        "<h2>Summary</h2>",
        _table(evaluation.summary()) if names else '<p class="note">No sources.</p>',
        _speech(evaluation),
        "<h2>Agreement</h2>",
        _table(evaluation.agreement)
        if not evaluation.agreement.empty
        else '<p class="note">Fewer than two models: no agreement table.</p>',
    ]
    for i, (name, source) in enumerate(evaluation.sources.items()):
        parts.append(f'<section id="source-{i}">{_source(name, source, target_accuracy)}</section>')
    parts.append("</body></html>\n")
    text = "\n".join(parts)
    if path is not None:
        import fsspec

        with fsspec.open(
            os.fspath(path), "w", encoding="utf-8", **dict(storage_options or {})
        ) as f:
            f.write(text)
    return text


def default_report_path(results: str | os.PathLike[str]) -> str:
    """Where the report of a results folder goes by default: ``RESULTS-report.html`` beside it."""
    return os.fspath(results).rstrip("/") + "-report.html"


def check_report_path(path: str | os.PathLike[str], results: str | os.PathLike[str]) -> None:
    """Refuse a report written inside the results folder (unless its name starts with ``_`` or
    ``.``): the folder holds only Parquet parts and ``_`` state, so any Parquet reader opens it."""
    import posixpath

    path, results = os.fspath(path), os.fspath(results)

    def norm(p: str) -> str:
        return posixpath.normpath(p) if "://" in p else os.path.abspath(p)

    folder = norm(results.rstrip("/"))
    parent, name = posixpath.split(norm(path))
    if parent == folder and not name.startswith(("_", ".")):
        raise ConfigError(
            f"--html {path} would put a file inside the results folder {results}, which then no "
            "longer reads as Parquet; write it beside the folder (the default) or name it _*.html"
        )


def write_report(
    results: str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
    *,
    labels: str | os.PathLike[str] | None = None,
    models: Sequence[str] | None = None,
    title: str | None = None,
    target_accuracy: float = 0.95,
    storage_options: Mapping[str, Any] | None = None,
) -> str:
    """Evaluate a results folder and write its HTML report; returns one line naming the file, the
    labelled rows and each source's accuracy.

    ``path``: the HTML file (default :func:`default_report_path`), checked by
    :func:`check_report_path` before any work. ``title``: default ``lidframe evaluation: RESULTS``.
    ``labels``, ``models`` and ``storage_options`` (for reading) as in
    :func:`~lidframe.eval.evaluate.evaluate`.
    """
    from lidframe.eval.evaluate import evaluate

    results = os.fspath(results)
    path = default_report_path(results) if path is None else os.fspath(path)
    check_report_path(path, results)
    ev = evaluate(results, labels=labels, models=models, storage_options=storage_options)
    render_report(
        ev,
        path,
        title=title or f"lidframe evaluation: {results}",
        target_accuracy=target_accuracy,
    )
    summary = ", ".join(f"{name} {s.accuracy:.1%}" for name, s in ev.sources.items())
    return f"report: {path} ({ev.labelled} labelled rows; accuracy {summary})"


def _settings(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items()) or "none"


def _table(frame: pd.DataFrame, *, scroll: bool = False, index: bool = True) -> str:
    """``frame`` as an escaped HTML table, floats to 3 decimals, NaN as a dash."""
    if frame.empty:
        return '<p class="note">None.</p>'
    body = frame.to_html(
        float_format="{:.3f}".format, na_rep=DASH, escape=True, border=0, index=index
    )
    return f'<div class="scroll">{body}</div>' if scroll else body


def _pct(x: float) -> str:
    return DASH if math.isnan(x) else f"{100 * x:.1f}%"


def _num(x: float) -> str:
    return DASH if math.isnan(x) else f"{x:.3f}"


def _speech(ev: Evaluation) -> str:
    """The speech section: nothing when the results have no speech columns."""
    from lidframe.eval.speech_stats import speech_text

    if ev.speech is None:
        return ""
    note = (
        "A row with less speech than <code>--min-speech</code> is answered <code>und</code> "
        "(no speech): on labelled rows a miss, counted in accuracy and recall; left out of the "
        "agreement table."
    )
    return "\n".join(
        [
            "<h2>Speech</h2>",
            f"<p>{html.escape(speech_text(ev.speech))}</p>",
            f'<p class="note">{note}</p>',
            "<h3>Speech per labelled language</h3>",
            _table(ev.speech_by_language, scroll=True),
        ]
    )


def _source(name: str, s: SourceEvaluation, target: float) -> str:
    esc = html.escape(name)
    no_speech = "" if s.no_speech is None else f", {s.no_speech} no speech (misses)"
    head = (
        f"<h2>{esc}</h2><p>{s.scored} scored of {s.labelled} labelled rows "
        f"({s.errors} errors, {s.unsupported} unsupported{no_speech}); "
        f"accuracy {_pct(s.accuracy)}, "
        f"macro-F1 {_num(s.macro_f1)}, ECE {_num(s.ece)}, Brier {_num(s.brier)}</p>"
    )
    best = s.threshold_for(target) if s.scored else None
    if best is None:
        threshold = f"No confidence threshold reaches {_pct(target)} accuracy."
    else:
        threshold = (
            f"For {_pct(target)} accuracy keep answers with confidence ≥ {best['threshold']:.3f}: "
            f"coverage {_pct(best['coverage'])} ({int(best['rows'])} rows), "
            f"accuracy {_pct(best['accuracy'])}."
        )
    plots = [
        _img(
            _heatmap(s),
            f"{name}: confusion heat map of the (up to) {HEATMAP_LANGUAGES} most frequent "
            "true languages, rows normalised to the share of each true language",
        ),
        _img(_reliability(s), f"{name}: reliability diagram, accuracy against confidence per bin"),
        _img(
            _coverage(s, target, best),
            f"{name}: accuracy against coverage as the confidence "
            f"threshold rises; the threshold for {_pct(target)} accuracy is marked",
        ),
    ]
    shown = s.confidently_wrong.head(CONFIDENTLY_WRONG_SHOWN)
    return "\n".join(
        [
            head,
            f"<p>{html.escape(threshold)}</p>",
            f'<div class="plots">{"".join(plots)}</div>',
            f"<h3>{esc}: per language</h3>",
            _table(s.per_language, scroll=True),
            f"<h3>{esc}: weakest languages</h3>",
            _table(s.weakest),
            f"<h3>{esc}: confidently wrong ({len(shown)} of {len(s.confidently_wrong)})</h3>",
            _table(shown, scroll=True, index=False),
        ]
    )


def _img(fig: Figure | None, alt: str) -> str:
    if fig is None:
        return f'<p class="note">No plot ({html.escape(alt)}): nothing to plot.</p>'
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # attaches the Agg canvas to the figure: no pyplot, no GUI backend
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}">'


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _heatmap(s: SourceEvaluation) -> Figure | None:
    rows = s.rows
    if rows.empty or "truth" not in rows.columns:
        return None
    langs = [str(x) for x in s.per_language.index[s.per_language["support"] > 0]]
    langs = langs[:HEATMAP_LANGUAGES]
    truth, predicted = rows["truth"].astype(str), rows["predicted"].astype(str)
    keep = truth.isin(langs).to_numpy()
    # ``und`` (no speech, or no consensus) gets its own column when answered
    und = ["und"] if "und" not in langs and (predicted[keep] == "und").any() else []
    shown = [*langs, *und, "other"]
    columns = predicted.where(predicted.isin(shown), "other")[keep]
    counts = pd.crosstab(truth[keep], columns).reindex(index=langs, columns=shown, fill_value=0)
    share = counts.to_numpy(dtype=float) / np.maximum(
        counts.to_numpy().sum(axis=1, keepdims=True), 1
    )
    fig = _figure(7.5, 6.5)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(shown)), shown, rotation=90, fontsize=8)
    ax.set_yticks(range(len(langs)), langs, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{s.name}: confusions (share of true language)", fontsize=10)
    for (r, c), v in np.ndenumerate(share):
        if v >= 0.01:
            color = "white" if v > 0.6 else "black"
            ax.text(c, r, f"{100 * v:.0f}", ha="center", va="center", fontsize=6, color=color)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def _reliability(s: SourceEvaluation) -> Figure | None:
    table = s.reliability[s.reliability["rows"] > 0]
    if table.empty:
        return None
    fig = _figure(4.8, 4.6)
    ax = fig.add_subplot()
    width = table["bin_high"] - table["bin_low"]
    centres = (table["bin_low"] + table["bin_high"]) / 2
    ax.bar(centres, table["accuracy"], width=width * 0.9, color="#4c72b0", label="accuracy")
    ax.plot(table["confidence"], table["accuracy"], "o", color="#dd8452", label="mean confidence")
    ax.plot([0, 1], [0, 1], "--", color="#888", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{s.name}: reliability (ECE {s.ece:.3f})", fontsize=10)
    fig.legend(fontsize=8, loc="outside lower center", ncols=3)
    return fig


def _coverage(s: SourceEvaluation, target: float, best: dict[str, float] | None) -> Figure | None:
    curve = s.coverage[s.coverage["rows"] > 0].sort_values("coverage")
    if curve.empty:
        return None
    if len(curve) > CURVE_POINTS:  # one point per distinct confidence: thin out for the plot
        curve = curve.iloc[np.linspace(0, len(curve) - 1, CURVE_POINTS).astype(int)]
    fig = _figure(4.8, 4.6)
    ax = fig.add_subplot()
    ax.plot(curve["coverage"], curve["accuracy"], color="#4c72b0", linewidth=1.5)
    ax.axhline(target, linestyle="--", color="#888", linewidth=1, label=f"target {_pct(target)}")
    if best is not None:
        ax.plot(
            [best["coverage"]],
            [best["accuracy"]],
            "o",
            color="#c44e52",
            zorder=3,
            label=f"threshold {best['threshold']:.3f} (coverage {_pct(best['coverage'])})",
        )
        ax.axvline(best["coverage"], linestyle=":", color="#c44e52", linewidth=1)
    low = float(np.nanmin(curve["accuracy"].to_numpy(dtype=float)))
    ax.set_xlim(0, 1.02)
    ax.set_ylim(max(0.0, min(low, target) - 0.05), 1.01)
    ax.set_xlabel("coverage (share of rows kept)")
    ax.set_ylabel("accuracy of kept rows")
    ax.set_title(f"{s.name}: accuracy vs coverage", fontsize=10)
    fig.legend(fontsize=8, loc="outside lower center", ncols=2)
    return fig
