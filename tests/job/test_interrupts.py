"""An interrupt whose exception Python loses (raised inside a finaliser or a garbage-collection
callback, where Python only prints "Exception ignored") still stops the job: a real process, a
real signal."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from lidframe.errors import JobInterrupted
    from lidframe.job._interrupts import interrupts_that_stick, raise_pending

    class Finalised:
        def __del__(self):
            os.kill(os.getpid(), signal.{name})
            time.sleep(0.2)  # the handler runs here, inside the finaliser: its exception is lost

    with interrupts_that_stick():
        Finalised()  # dropped at once
        print("lost, carried on", flush=True)
        try:
            raise_pending()
        except JobInterrupted as exc:
            print(f"raised again: {{exc}} {{exc.exit_status}}", flush=True)
        raise_pending()  # once only
        print("then nothing pending", flush=True)
    """
)


@pytest.mark.parametrize(("name", "status", "word"), [("SIGTERM", 143, "terminated"),
                                                      ("SIGINT", 130, "interrupted")])  # fmt: skip
def test_an_interrupt_lost_in_a_finaliser_is_raised_again_quietly(name, status, word):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(name=name)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "lost, carried on",
        f"raised again: {word} {status}",
        "then nothing pending",
    ]
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
