"""A first look in a notebook: ``lidframe.identify(ddf).head()`` says what it waits for, and works
on a few rows, not on a whole partition.

Each case runs in a fresh interpreter (a process that has loaded no model yet, as a new notebook
kernel is), with a small model family of its own that counts the clips it is given: how much work
``head()`` did is read from that count, not from a clock.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lidframe.manifest import FIRST_PARTITION_ROWS

pytestmark = pytest.mark.timeout(180)

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import dask
    import numpy as np
    import pandas as pd
    import lidframe
    from lidframe.models import LidModel, register_family
    from lidframe.testing import write_wav

    folder, rows, verbose, first = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
    # clips the model was given: a line each in a file (the job carries the family to where the
    # partitions run by value, so a list here would not see them)
    seen = f"{folder}/clips-seen"

    class Counting(LidModel):
        labels = ("en", "de")

        def forward(self, batch):
            import torch

            with open(seen, "a") as f:
                f.write("clip\\n" * len(batch.lengths))
            return torch.tensor([[0.75, 0.25]] * len(batch.lengths))

    register_family("counting", Counting)
    rng = np.random.default_rng(0)
    entries = []
    for i in range(rows):
        write_wav(f"{folder}/c{i}.wav", 0.3 * np.sign(rng.standard_normal(4000)), 16_000)
        entries.append({"id": f"c{i:02d}", "audio": f"{folder}/c{i}.wav"})
    pd.DataFrame(entries).to_csv(f"{folder}/m.csv", index=False)

    options = {} if first == "default" else {"first_partition_rows": None}
    ddf = lidframe.read_manifest(f"{folder}/m.csv", partition_rows=64, **options)
    out = lidframe.identify(
        ddf, ["counting:x"], speech=lidframe.SpeechConfig(vad=False), verbose=verbose
    )
    count = lambda: len(open(seen).readlines()) if os.path.exists(seen) else 0
    with dask.config.set(scheduler="synchronous"):
        head = out.head()
        after_head = count()
        second = out.head(3)  # the model is loaded now: nothing more is said
    print(json.dumps({
        "head": len(head), "langs": sorted(set(head["counting_x_lang"])),
        "clips": after_head, "second": len(second),
    }))
""")


def _first_look(tmp_path: Path, *, rows: int, verbose: bool, first: str = "default"):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(rows), "1" if verbose else "0", first],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1]), proc.stderr


def test_head_says_it_loads_the_model_and_runs_only_the_small_first_partition(tmp_path):
    got, err = _first_look(tmp_path, rows=40, verbose=True)
    assert got["head"] == 5 and got["langs"] == ["en"] and got["second"] == 3
    assert got["clips"] == FIRST_PARTITION_ROWS  # not the 40 rows of a planned partition
    lines = [line for line in err.splitlines() if line.startswith("lidframe:")]
    assert len(lines) == 2, err  # once: the second head() found the model loaded
    assert lines[0].startswith("lidframe: loading counting:x (cpu, float32) in process ")
    assert lines[0].endswith(" ...")
    assert lines[1].startswith("lidframe: counting:x loaded in ") and lines[1].endswith(" s")


def test_quiet_when_asked_and_a_whole_partition_without_the_small_first_one(tmp_path):
    got, err = _first_look(tmp_path, rows=40, verbose=False, first="none")
    assert got["head"] == 5
    assert got["clips"] == 40  # what head() cost before: the whole first planned partition
    assert "lidframe:" not in err, err
