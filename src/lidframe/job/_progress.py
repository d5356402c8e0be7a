"""The job's progress bar: a widget in Jupyter when ipywidgets is there, else text, never a warning.

tqdm chooses the kind itself (``tqdm.autonotebook``: a widget in a Jupyter kernel, text in a
terminal, IPython console or Qt console). In a kernel without ipywidgets it falls back to text, but
first warns ``TqdmWarning: IProgress not found``: the warning is left out here, the text bar is
what lidframe means to show then (``pip install 'lidframe[notebook]'`` for the widget). The
choice is made once per process (on the first bar), like tqdm's own.

In a Jupyter kernel the bar has a small table under it, :class:`LiveTable`: what the models said so
far (the answer's language mix, agreement, ``und`` and row-error rates, the expected accuracy and,
with labels, the measured one), updated in place as partitions commit. It is IPython's own display
machinery (``display(..., display_id=True)``, then ``update``): every Jupyter front end renders it,
and it needs no widget library (ipywidgets is optional for the bar). Outside a kernel there is no
table: a terminal keeps the bar's one line.
"""

from __future__ import annotations

import functools
import html
import os
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lidframe.store import Behaviour

__all__ = [
    "LiveTable",
    "bar_class",
    "behaviour_table",
    "in_jupyter_kernel",
    "progress_bar",
    "set_total",
]

# Seconds between two updates of the live table (the last state is always shown).
TABLE_EVERY_S = 0.5


@functools.cache
def bar_class() -> type[Any]:
    """tqdm's bar class for this process (``tqdm.notebook.tqdm`` or ``tqdm.std.tqdm``)."""
    from tqdm import TqdmWarning

    with warnings.catch_warnings():
        # IProgress not found (a kernel without ipywidgets), and the notebook bar's experimental
        # warning that tqdm.auto hides too.
        warnings.simplefilter("ignore", TqdmWarning)
        from tqdm.autonotebook import tqdm
    return tqdm


def progress_bar(**options: Any) -> Any:
    """A bar of :func:`bar_class` with tqdm's ``options`` (``total``, ``unit``, ``disable``, ...)."""
    return bar_class()(**options)


def set_total(bar: Any, total: int | None) -> None:
    """Set the bar's total once it is known, without starting it again (a widget's end too)."""
    if bar.total == total:
        return
    bar.total = total
    container = getattr(bar, "container", None)  # the widget of tqdm.notebook's bar
    if container is not None and total is not None and not bar.disable:
        _, widget, _ = container.children
        widget.max, widget.bar_style = total, ""
    bar.refresh()


def in_jupyter_kernel() -> bool:
    """Whether this process is a Jupyter kernel with a front end that renders HTML: tqdm's own
    test (``tqdm.autonotebook``: ipykernel's shell loaded, not a Qt console or Spyder)."""
    if "ipykernel.zmqshell" not in sys.modules:
        return False
    if any(name == "QT_API" or name.startswith("SPYDER") for name in os.environ):
        return False
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    name = type(shell).__name__.lower()
    return shell is not None and "qt" not in name and "spyder" not in name


def behaviour_table(behaviour: Behaviour, caption: str) -> str:
    """What the models said so far as a small HTML table (one statistic a row) under ``caption``."""
    a = behaviour.answer
    rows: list[tuple[str, str]] = [("rows", f"{a.rows:,}")]
    if a.rows:
        shares = list(a.shares().items())[:5]
        rows.append(("languages", ", ".join(f"{lang} {share:.0%}" for lang, share in shares)))
        if len(behaviour.models) > 1 and a.agreement is not None:
            rows.append(("agreement", f"{a.agreement:.1%}"))
        rows += [("und", f"{a.und / a.rows:.1%}"), ("row errors", f"{a.errors / a.rows:.1%}")]
        if a.expected_accuracy is not None:
            rows.append(("expected accuracy", f"{a.expected_accuracy:.3f}"))
        if a.accuracy is not None:
            rows.append(
                ("measured accuracy", f"{a.accuracy:.3f} ({a.labels['labelled']:,} labelled)")
            )
    body = "".join(
        f'<tr><th style="text-align:left">{html.escape(name)}</th>'
        f'<td style="text-align:left">{html.escape(value)}</td></tr>'
        for name, value in rows
    )
    return f"<table><caption>{html.escape(caption)}</caption>{body}</table>"


class LiveTable:
    """The job's behaviour so far, shown once in a Jupyter cell and updated in place
    (:func:`behaviour_table`; the text form is the bar's line)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._handle: Any = None
        self._shown = 0.0

    @classmethod
    def for_this_process(cls, job_id: str, enabled: bool = True) -> LiveTable | None:
        """A table when ``enabled`` (progress is shown) and this process is a Jupyter kernel."""
        return cls(job_id) if enabled and in_jupyter_kernel() else None

    def show(self, behaviour: Behaviour, done: int, total: int | None, now: bool = False) -> None:
        """Show (first call) or update the table; at most every :data:`TABLE_EVERY_S` seconds
        unless ``now`` (the last state)."""
        moment = time.monotonic()
        if self._handle is not None and not now and moment - self._shown < TABLE_EVERY_S:
            return
        self._shown = moment
        of = "" if total is None else f" of {total:,}"
        caption = f"lidframe {self.job_id}: {done:,}{of} partitions"
        bundle = {
            "text/html": behaviour_table(behaviour, caption),
            "text/plain": f"{caption}, {behaviour.answer.rows:,} rows: {behaviour.line()}",
        }
        from IPython.display import display

        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
