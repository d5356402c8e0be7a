"""The report: one self-contained HTML file of an :class:`~lidframe.eval.Evaluation`.

:func:`render_report` gives a single HTML file with no script, web font or style sheet from
elsewhere, with:

* the **run**: job, models with source and weights digest, lidframe version, dates, rows and rows/s
  ("unknown" where the results do not say);
* the **predicted languages**: rows per answered language and source (``und`` included), a chart
  and a table; for results without ground truth this, the run and the speech are the report;
* the **behaviour over the job** (when its job database has it, :mod:`lidframe.store.behaviour`):
  the answer's language shares, agreement, ``und`` rate and mean probability partition by
  partition, and a table per worker;
* with ground truth: the **summary** (with what ECE and Brier mean, and that accuracy depends on
  the audio domain), the **calibration** (with a calibration given or applied by the run: the
  consensus's reliability diagram before and after it, and accuracy against coverage above each
  threshold of the calibrated probability, the threshold for the target precision marked or "not
  reached"), **no speech** (rows labelled ``und`` as a detection task: precision, recall,
  tp, fp, fn), the **speech** section (no-speech rate, audio and speech seconds; only with the
  speech columns), the **by column** tables (with ``by=``: rows, scored rows, accuracy per source
  and und rate per speaker, source...; also without ground truth), the **agreement** table,
  **every wrong row** (up to ``WRONG_SHOWN``, then a count; rows labelled ``und`` answered with
  a language too) with an audio player of its clip window (linked by default, embedded on
  request), and per source its per-language table, confusion heat map and table (answers outside
  the true languages each in a column of their own), reliability diagram, accuracy/coverage curve
  with the threshold for a target accuracy, weakest languages and confidently wrong rows.

Plots are drawn by matplotlib's Agg canvas (never pyplot, so no global state and no display is
needed) and embedded as ``data:image/png;base64`` images. Every text from the data is HTML-escaped.
Modules, each importing only those above it: ``_plots`` (the figures), ``_audio`` (the players of
wrong rows' clip windows), ``_sections`` (each section's HTML), ``_page`` (the page).
"""

from lidframe.eval.report._page import (
    check_report_path,
    default_report_path,
    render_report,
    write_report,
)

__all__ = ["check_report_path", "default_report_path", "render_report", "write_report"]
