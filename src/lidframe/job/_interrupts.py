"""Ctrl-C and SIGTERM that stop a job even when Python loses the exception they raise.

A signal handler raises in whatever Python code the main thread runs at that moment. When that is a
garbage-collection callback (Dask registers one), a finaliser or a weakref callback, Python prints
"Exception ignored in ..." and carries on: the job would run to its end and exit 0. So the handler
also records the interrupt here, and the job's loop (:func:`raise_pending`, called every pass of
:func:`lidframe.job._driver.run_partitions`, and by the command before it returns) raises it again
where it cannot be lost; the "Exception ignored" report of such an interrupt is left out.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lidframe.errors import JobInterrupted

__all__ = ["interrupts_that_stick", "raise_pending"]

_pending: list[int] = []


def raise_pending() -> None:
    """Raise :class:`JobInterrupted` if an interrupt was signalled (once)."""
    if _pending:
        status = _pending.pop()
        _pending.clear()
        raise JobInterrupted("terminated" if status == 143 else "interrupted", exit_status=status)


@contextmanager
def interrupts_that_stick() -> Iterator[None]:
    """While inside: SIGINT (exit status 130) and SIGTERM (143: batch schedulers, ``kill``) raise
    :class:`JobInterrupted` and are remembered for :func:`raise_pending`. Outside the main thread
    nothing changes."""

    def handler(signum: int, frame: Any) -> None:
        status = 143 if signum == signal.SIGTERM else 130
        _pending[:] = [status]
        raise JobInterrupted("terminated" if status == 143 else "interrupted", exit_status=status)

    unraisable = sys.unraisablehook

    def quiet(info: Any) -> None:
        """Python's "Exception ignored in ..." report, but not for an interrupt: that one is
        remembered and raised again by raise_pending."""
        if not isinstance(info.exc_value, JobInterrupted):
            unraisable(info)

    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    sys.unraisablehook = quiet
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
        sys.unraisablehook = unraisable
        _pending.clear()
