"""The job's progress bar: a widget in Jupyter when ipywidgets is there, else text, never a warning.

tqdm chooses the kind itself (``tqdm.autonotebook``: a widget in a Jupyter kernel, text in a
terminal, IPython console or Qt console). In a kernel without ipywidgets it falls back to text, but
first warns ``TqdmWarning: IProgress not found``: the warning is left out here, the text bar is
what lidframe means to show then (``pip install 'lidframe[notebook]'`` for the widget). The
choice is made once per process (on the first bar), like tqdm's own.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

__all__ = ["bar_class", "progress_bar", "set_total"]


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
