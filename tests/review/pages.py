"""For the listening page's tests: a finished job whose rows name real recordings (Debian's
asterisk prompts and a recording of monkeys, from examples/demo/real/), a real page server in its
own process (``python -m lidframe.cli review ...``), and a real headless Chromium through
Playwright, pointed at the system browser (no browser download)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

REAL = Path(__file__).resolve().parents[2] / "examples" / "demo" / "real"
CHROMIUM = shutil.which("chromium")
# One line on stdout: "lidframe review: job J, QUEUE, reviewer R: http://127.0.0.1:PORT/?token=T"
URL = re.compile(r"(http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]+)")


def audio_files(folder: Path) -> dict[str, Path]:
    """Real recordings in ``folder``: the demo's FLAC prompts as they are, and ``long.wav``, 24 s
    of 16-bit PCM at 8 kHz made of several prompts and the monkeys, so a window deep in a file
    needs a range request to reach."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in ("en-real-000", "en-real-001", "es-real-000", "es-real-001", "fr-real-000",
                 "fr-real-001", "und-real-000"):  # fmt: skip
        files[name] = Path(shutil.copy(REAL / f"{name}.flac", folder / f"{name}.flac"))
    parts = [sf.read(REAL / f"{name}.flac", dtype="float32")[0] for name in (
        "en-real-002", "es-real-002", "und-real-000")]  # fmt: skip
    pad = np.zeros(8000 * 24, dtype="float32")
    joined = np.concatenate(parts)[: len(pad)]
    pad[: len(joined)] = joined
    files["long"] = folder / "long.wav"
    sf.write(files["long"], pad, 8000, subtype="PCM_16")
    return files


# (file, offset, duration, the two models' top 3, windows of a long file)
_ROWS: list[tuple[str, float | None, float | None, list[list[tuple[str, float]]], list[Any]]] = [
    ("en-real-000", None, None, [[("en", 0.91), ("de", 0.05), ("nl", 0.02)],
                                 [("en", 0.88), ("cy", 0.06), ("ga", 0.03)]], []),
    ("es-real-000", 0.5, 2.0, [[("es", 0.62), ("pt", 0.30), ("gl", 0.04)],
                               [("pt", 0.55), ("es", 0.41), ("it", 0.02)]], []),
    ("long", 12.0, 3.0, [[("fr", 0.51), ("ca", 0.22), ("es", 0.11)],
                         [("fr", 0.47), ("es", 0.31), ("it", 0.12)]], []),
    ("long", None, None, [[("es", 0.71), ("it", 0.12), ("pt", 0.08)],
                          [("es", 0.66), ("gl", 0.20), ("pt", 0.07)]],
     [{"start": 8.0, "end": 11.0, "lang": "es", "prob": 0.8},
      {"start": 16.0, "end": 19.0, "lang": "und", "prob": 0.6}]),
    ("fr-real-000", None, None, [[("fr", 0.95), ("en", 0.02), ("de", 0.01)],
                                 [("fr", 0.93), ("ca", 0.03), ("oc", 0.02)]], []),
    ("und-real-000", 2.0, 4.0, [[("und", 0.70), ("sw", 0.10), ("zu", 0.05)],
                                [("ha", 0.33), ("und", 0.31), ("yo", 0.12)]], []),
    ("en-real-001", 1.0, 3.0, [[("en", 0.81), ("sco", 0.10), ("de", 0.03)],
                               [("en", 0.79), ("nl", 0.09), ("af", 0.04)]], []),
    ("es-real-001", None, None, [[("es", 0.90), ("ca", 0.04), ("pt", 0.03)],
                                 [("es", 0.86), ("pt", 0.08), ("it", 0.03)]], []),
    ("fr-real-001", 0.25, 4.0, [[("fr", 0.58), ("it", 0.25), ("ro", 0.08)],
                                [("it", 0.49), ("fr", 0.44), ("ro", 0.03)]], []),
]  # fmt: skip


def page_frame(files: Mapping[str, str]) -> pd.DataFrame:
    """A finished two-model job's rows over ``files`` (name -> URI): :data:`_ROWS`."""
    records: list[dict[str, Any]] = []
    for i, (name, offset, duration, tops, windows) in enumerate(_ROWS):
        record: dict[str, Any] = {
            "id": f"{name}-{i}",
            "audio": files[name],
            "offset": np.nan if offset is None else offset,
            "duration": np.nan if duration is None else duration,
            "error": None,
            "sample_rate": 8000,
            "audio_seconds": 24.0 if name == "long" else 4.0,
            "speech_seconds": 2.5,
            "code_switch": False,
        }
        for m, top in enumerate(tops, start=1):
            record[f"m{m}_lang"] = top[0][0]
            record[f"m{m}_prob"] = top[0][1]
            record[f"m{m}_topk"] = [{"lang": lang, "prob": p} for lang, p in top]
            record[f"m{m}_windows"] = windows or None
        agree = tops[0][0][0] == tops[1][0][0]
        record.update(
            lang=tops[0][0][0],
            agree=agree,
            n_agree=2 if agree else 1,
            consensus_prob=(tops[0][0][1] + tops[1][0][1]) / 2,
            consensus_method="majority[2/2]",
        )
        records.append(record)
    frame = pd.DataFrame(records)
    frame["sample_rate"] = frame["sample_rate"].astype("Int32")
    frame["code_switch"] = frame["code_switch"].astype("boolean")
    for c in ("audio_seconds", "speech_seconds", "m1_prob", "m2_prob", "consensus_prob"):
        frame[c] = frame[c].astype("float32")
    for c in ("m1_lang", "m2_lang", "lang", "consensus_method"):
        frame[c] = frame[c].astype("string")
    frame["n_agree"] = frame["n_agree"].astype("int16")
    return frame


def row_windows() -> list[tuple[float, float | None]]:
    """Where the player must start (and stop) for each row of :data:`_ROWS`."""
    found = []
    for _name, offset, duration, _tops, windows in _ROWS:
        if offset is not None:
            found.append((offset, None if duration is None else offset + duration))
        elif windows:
            found.append((windows[0]["start"], windows[0]["end"]))
        else:
            found.append((0.0, None))
    return found


@dataclass
class PageServer:
    """``lidframe review RESULTS ...`` in a process of its own."""

    process: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.url.split("?", 1)[0]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def start_server(
    db_url: str, job: str, queue: str, reviewer: str, options: Sequence[str] = ()
) -> PageServer:
    """A page server for ``queue`` of ``job``, started as a user would; returns once its URL is
    printed."""
    command = [
        sys.executable, "-m", "lidframe.cli", "review", "/data/out", "--db", db_url,
        "--job", job, "--queue", queue, "--reviewer", reviewer, *options,
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    lines: list[str] = []
    found: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = URL.search(line)
            if match and not found:
                found.append(match.group(1))

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 60
    while not found:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the review server did not start: {''.join(lines)}")
        time.sleep(0.05)
    return PageServer(process, found[0], lines)
