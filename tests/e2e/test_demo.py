"""The README's demo command, run twice in a fresh copy of the files it uses.

The second run resumes the finished job (no new work) and every step still succeeds: the results
folder holds only Parquet parts and ``_``-prefixed state, so the report (written beside it) and the
evaluation never trip over each other, and any Parquet reader opens the folder as it is.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from tests.fixtures.paths import ROOT


def _demo_commands() -> list[list[str]]:
    """The ``lidframe`` commands of scripts/demo.sh (the setup step is what the test run did)."""
    commands = []
    for line in (ROOT / "scripts" / "demo.sh").read_text().splitlines():
        if line.startswith(".venv/bin/lidframe "):
            args = shlex.split(line.removeprefix(".venv/bin/lidframe ").replace('"$@"', ""))
            commands.append([sys.executable, "-m", "lidframe.cli", *args])
    assert [c[3] for c in commands] == ["run", "eval", "report"], commands
    return commands


def _quick_start_commands() -> list[list[str]]:
    """The README's quick start after its set-up lines (``python3 -m venv``, ``pip install``: what
    the test run did), in order: ``lidframe ...`` as ``python -m lidframe.cli ...``, ``python -c``
    with this interpreter."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["lidframe"]:
            commands.append([sys.executable, "-m", "lidframe.cli", *words[1:]])
        elif words[:1] == ["python"]:
            commands.append([sys.executable, *words[1:]])
    assert [c[3] if c[1] == "-m" else c[1] for c in commands] == [
        "run", "status", "-c", "eval", "report"
    ], commands  # fmt: skip
    return commands


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_demo_runs_twice_in_a_fresh_copy_then_the_readme_quick_start_in_order(tmp_path):
    shutil.copytree(ROOT / "examples" / "demo", tmp_path / "examples" / "demo")
    commands = _demo_commands()
    outputs = []
    for attempt in (1, 2):
        for cmd in commands:
            proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, (attempt, cmd, proc.stdout, proc.stderr)
            outputs.append(proc.stdout)
        results = pd.read_parquet(tmp_path / "demo-results")  # the folder, as any reader opens it
        assert len(results) == 61 and results["error"].isna().all()
    first_run, second_run = outputs[0], outputs[3]
    assert "4 partitions done by this run, 0 already done" in first_run
    assert "0 partitions done by this run, 4 already done" in second_run
    assert re.search(r"report: demo-report\.html \(61 labelled rows", outputs[5])
    assert (tmp_path / "demo-report.html").stat().st_size > 10_000
    # a report is never written into the results folder: refused there, beside it by default
    cli = [sys.executable, "-m", "lidframe.cli", "report", "demo-results"]
    inside = subprocess.run(
        [*cli, "--html", "demo-results/report.html"], cwd=tmp_path, capture_output=True, text=True
    )
    assert inside.returncode == 2 and inside.stderr.count("\n") == 1, inside.stderr
    assert inside.stderr.startswith("lidframe: error: --html demo-results/report.html")
    default = subprocess.run(cli, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert default.returncode == 0, default.stderr
    assert (tmp_path / "demo-results-report.html").is_file()
    listing = sorted(p.name for p in (tmp_path / "demo-results").iterdir())
    assert all(n.startswith("_") or re.fullmatch(r"part-\d{5}\.parquet", n) for n in listing)

    # the README's quick start, line by line in the order written, after the demo: each works,
    # and its run resumes the demo's job (the same command) instead of being refused
    quick = []
    for cmd in _quick_start_commands():
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (cmd, proc.stdout, proc.stderr)
        quick.append(proc.stdout)
    assert "0 partitions done by this run, 4 already done" in quick[0]
    assert "finished" in quick[1] and "rows done 61/61" in quick[1]
    assert "whisper_base_lang" in quick[2] and "en-000" in quick[2]
    assert "61 labelled rows of 61" in quick[3]
    assert re.search(r"report: demo-report\.html \(61 labelled rows", quick[4])


def test_the_readme_quick_start_runs_the_demos_own_job():
    """After ``bash scripts/demo.sh`` the quick start's ``lidframe run`` resumes the demo's job
    instead of being refused as another job in its folder: the two lines have the same arguments."""
    quick, demo = _quick_start_commands()[0], _demo_commands()[0]
    assert quick == demo, (quick, demo)
