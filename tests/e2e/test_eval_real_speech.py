"""``lidframe eval`` and ``lidframe report`` of a real job on real recordings (Debian's asterisk
prompts: two speakers in three languages, and the packages' digital silence and tones labelled
``und``), with real whisper-base weights: the silence is scored as no speech, not as a language,
and the manifest's speaker, which the results do not keep, is joined back by id for ``--by``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import lidframe
from lidframe.testing import real_speech_corpus

SILENCE = ["en_US_f_Allison/silence/1.wav", "fr_CA_f_June/silence/2.wav"]
TONES = ["en_US_f_Allison/beep.wav", "fr_CA_f_June/descending-2tone.wav"]


def _manifest(tmp_path):
    corpus = pd.read_parquet(real_speech_corpus(tmp_path / "corpus.parquet", sources=("asterisk",)))
    prompts = corpus[(corpus["kind"] == "prompt") & corpus["seconds"].between(1.5, 3.0)]
    silent = corpus[corpus["id"].str.endswith(tuple(SILENCE + TONES))]
    rows = pd.concat(
        [*(prompts[prompts["label"] == lang].head(3) for lang in ("en", "fr", "es")), silent]
    )
    path = tmp_path / "manifest.parquet"
    rows.to_parquet(path, index=False)
    return path, rows.set_index("id")


@pytest.mark.slow
def test_real_silence_is_no_speech_and_accuracy_is_given_per_speaker(tmp_path):
    manifest, rows = _manifest(tmp_path)
    assert len(rows) == 13 and (rows["label"] == "und").sum() == 4
    out = tmp_path / "out"
    summary = lidframe.run(manifest, out, ["whisper-base"], workers=1, progress=False)
    assert summary.ok
    results = pd.read_parquet(out).set_index("id").loc[rows.index]
    # the results keep the manifest's own columns, not its speaker: --by reads the job's manifest
    assert "speaker" not in results.columns and "kind" not in results.columns

    proc = subprocess.run(
        [sys.executable, "-m", "lidframe.cli", "eval", str(out), "--by", "speaker,kind"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    said = results["whisper_base_lang"]
    silent = (rows["label"] == "und").to_numpy()
    # digital silence has no speech: voice activity finds none and the answer is und
    assert (said.loc[rows.index.str.endswith(tuple(SILENCE))] == "und").all()
    tp = int(((said == "und") & silent).sum())
    fp = int(((said == "und") & ~silent).sum())
    fn = int(((said != "und") & silent).sum())
    assert tp >= 2 and tp + fn == 4
    assert "13 labelled rows of 13; 4 of them labelled und (no speech)" in proc.stdout
    detection = proc.stdout.split("as a detection task", 1)[1].split("\n\n", 1)[0]
    line = next(ln for ln in detection.splitlines() if ln.startswith("whisper_base "))
    assert line.split()[:5] == ["whisper_base", "4", str(tp), str(fp), str(fn)]
    # accuracy is over the 9 prompts only, and per speaker over each one's prompts
    speech = ~silent
    right = (said == rows["label"]).to_numpy()
    ev = lidframe.evaluate(out, by=["speaker", "kind"])
    w = ev["whisper_base"]
    assert w.scored == 9 and w.accuracy == pytest.approx(right[speech].mean())
    table = ev.by["speaker"]
    assert list(table.index) == ["Allison Smith", "June Wallack", "none"]
    assert table["rows"].tolist() == [6, 3, 4] and table["scored"].tolist() == [6, 3, 0]
    for speaker in ("Allison Smith", "June Wallack"):
        mine = (rows["speaker"] == speaker).to_numpy()
        assert table.loc[speaker, "whisper_base accuracy"] == pytest.approx(right[mine].mean())
        assert table.loc[speaker, "und_rate"] == np.mean(said[mine] == "und")
    assert np.isnan(table.loc["none", "whisper_base accuracy"])
    assert table.loc["none", "und_rate"] == pytest.approx(tp / 4)
    assert "by speaker (3 groups):" in proc.stdout and "by kind (2 groups):" in proc.stdout

    saved = json.loads((out / "_lidframe_evaluations" / "latest.json").read_text())
    assert saved["no_language"] == 4
    assert saved["no_speech_detection"]["whisper_base"]["tp"] == tp
    assert saved["by"]["speaker"]["none"]["scored"] == 0
    from lidframe.store import open_store

    with open_store(f"sqlite:///{out}/_lidframe.sqlite") as store:
        (row,) = store.evaluations("latest")
    assert row["record"]["no_speech_detection"]["whisper_base"]["recall"] == pytest.approx(tp / 4)
    assert row["record"]["by"]["speaker"]["June Wallack"]["rows"] == 3

    report = tmp_path / "report.html"
    command = ["report", str(out), "--html", str(report), "--by", "speaker"]
    proc = subprocess.run(
        [sys.executable, "-m", "lidframe.cli", *command],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    page = report.read_text(encoding="utf-8")
    assert '<h2 id="no-speech">No speech (label <code>und</code>)</h2>' in page
    assert "<h3>By speaker</h3>" in page and "June Wallack" in page
