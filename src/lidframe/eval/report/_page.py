"""The page: :func:`render_report` assembles the sections into one HTML file, :func:`write_report`
evaluates results and writes it."""

from __future__ import annotations

import datetime
import html
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lidframe.errors import ConfigError
from lidframe.eval._display import labelled_text
from lidframe.eval.report import _sections as sections
from lidframe.eval.report._audio import Players

if TYPE_CHECKING:
    from lidframe.eval._evaluate import Evaluation

__all__ = ["check_report_path", "default_report_path", "render_report", "write_report"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
th,td{border:1px solid #ddd;padding:2px 8px;text-align:right}th{background:#f4f4f4}
td.left{text-align:left}td.bad{background:#f9d6d2}.uri{font-family:monospace;font-size:12px}
audio{height:2.2em;width:260px}
.scroll{max-height:26em;overflow:auto;display:inline-block}.wide{max-height:60em}
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
    embed_audio: bool = False,
    embed_max_seconds: float = 10.0,
    audio_storage_options: Mapping[str, Any] | None = None,
) -> str:
    """The HTML report of ``evaluation``; also written to ``path`` (any fsspec URL) when given.

    ``target_accuracy``: the accuracy whose confidence threshold is marked on each coverage curve
    (and, with a calibration, the precision whose threshold of the calibrated probability is).
    ``storage_options``: passed to fsspec for ``path`` (e.g. S3 credentials and endpoint).
    Wrong rows' players link to their audio files, relative to ``path``'s folder when it is local
    (absolute ``file://`` otherwise); ``embed_audio``: embed each clip window instead (its first
    ``embed_max_seconds``, as 16 kHz WAV; ``audio_storage_options`` to read remote audio), so the
    page plays without its audio folder (see :mod:`lidframe.eval.report._audio`).
    """
    where = None if path is None else os.fspath(path)
    folder = None
    if where is not None and ("://" not in where or where.startswith("file://")):
        folder = os.path.dirname(os.path.abspath(where.removeprefix("file://")))
    if embed_audio and not embed_max_seconds > 0:
        raise ConfigError(f"embed_max_seconds must be positive, got {embed_max_seconds!r}")
    players = Players(
        folder,
        embed=embed_audio,
        max_seconds=embed_max_seconds,
        storage_options=audio_storage_options,
    )
    ev = evaluation
    scored = ev.labelled > 0
    names = list(ev.sources) if scored else []
    links = [("run", "Run"), ("languages", "Predicted languages")]
    if scored:
        links += [("summary", "Summary"), ("no-speech", "No speech")]
    if scored and ev.calibration is not None:
        links.append(("calibration", "Calibration"))
    if ev.by:
        links.append(("by", "By column"))
    if scored:
        links.append(("wrong", "Wrong rows"))
    if ev.errors:
        links.append(("failed", "Rows with an error"))
    links += [(f"source-{i}", name) for i, name in enumerate(names)]
    nav = " ".join(f'<a href="#{key}">{html.escape(text)}</a>' for key, text in links)
    written = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{html.escape(labelled_text(ev))}; '
        f"{html.escape(sections.settings_text(ev.settings))}</p>",
        *(f"<p><strong>{html.escape(note)}</strong></p>" for note in ev.notes),
        f"<nav>{nav}</nav>",
        sections.run(ev, written),
        sections.distribution(ev),
        sections.behaviour(ev),
    ]
    if scored:
        parts += [
            sections.summary(ev),
            sections.calibration(ev, target_accuracy),
            sections.no_speech(ev),
            sections.speech(ev),
            sections.by(ev),
            "<h2>Agreement</h2>",
        ]
        parts.append(
            sections.table(ev.agreement)
            if not ev.agreement.empty
            else '<p class="note">Fewer than two models: no agreement table.</p>'
        )
        parts.append(sections.wrong(ev, players))
        parts.append(sections.failed(ev))
        for i, (name, source) in enumerate(ev.sources.items()):
            parts.append(
                f'<section id="source-{i}">{sections.source(name, source, target_accuracy)}'
                "</section>"
            )
    else:
        parts += [sections.speech(ev), sections.by(ev), sections.failed(ev)]
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
    embed_audio: bool = False,
    embed_max_seconds: float = 10.0,
    by: str | Sequence[str] | None = None,
    calibration: Any = None,
) -> str:
    """Evaluate a results folder and write its HTML report; returns one line naming the file, the
    labelled rows and each source's accuracy (or that there is no ground truth).

    ``path``: the HTML file (default :func:`default_report_path`), checked by
    :func:`check_report_path` before any work. ``title``: default ``lidframe evaluation: RESULTS``.
    ``labels``, ``models``, ``by``, ``calibration`` and ``storage_options`` (for reading results
    and audio) as in :func:`~lidframe.eval._evaluate.evaluate`; ``embed_audio`` and
    ``embed_max_seconds`` as in :func:`render_report`.
    """
    from lidframe.eval._evaluate import evaluate

    results = os.fspath(results)
    path = default_report_path(results) if path is None else os.fspath(path)
    check_report_path(path, results)
    ev = evaluate(
        results,
        labels=labels,
        models=models,
        storage_options=storage_options,
        by=by,
        calibration=calibration,
    )
    render_report(
        ev,
        path,
        title=title or f"lidframe evaluation: {results}",
        target_accuracy=target_accuracy,
        embed_audio=embed_audio,
        embed_max_seconds=embed_max_seconds,
        audio_storage_options=storage_options,
    )
    failed = f"; {_rows(ev.errors)} with an error, not scored" if ev.errors else ""
    if not ev.labelled:
        return f"report: {path} ({ev.rows} rows, no labelled row: predicted languages only{failed})"
    summary = ", ".join(
        f"{name} {s.accuracy:.1%} of {_rows(s.scored)} scored" for name, s in ev.sources.items()
    )
    return f"report: {path} ({ev.labelled} labelled rows; accuracy {summary}{failed})"


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"
