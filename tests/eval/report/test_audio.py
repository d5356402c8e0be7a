"""The report as something to act on: the predicted-language distribution (with and without ground
truth), every wrong row with a player of its clip (linked relative to the report, or embedded), the
answers outside the true languages by code, the run's metadata, ECE and Brier in words, nothing of
Python's internals in the page; and (slow) a real headless Chromium that loads every player."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import lidframe
from lidframe.eval.report import render_report
from lidframe.eval.report._sections import CALIBRATION_NOTE, DOMAIN_NOTE, WRONG_SHOWN
from lidframe.testing.files import sine, write_wav
from tests.fixtures.browser import CHROMIUM
from tests.fixtures.browser import chromium as _chromium
from tests.fixtures.eval_data import results_frame, with_no_speech

AUDIO = re.compile(r'<audio controls preload="metadata" src="([^"]*)"></audio>')
# What Python's objects look like when they leak into a page.
LEAKS = [
    r"\bNone\b", r"\bnan\b", r"\bNaN\b", r"\w+=None", r"<NA>", r"Evaluation\(", r"dtype:",
    r"\bUnnamed\b", r"<th></th>", r"object at 0x", r"\{'", r"\[\]",
]  # fmt: skip


OUTSIDERS = ["ar", "bg", "ca", "cy", "da", "el", "eu", "fa", "fi", "ga", "gl"]


def _leaks(text: str) -> list[str]:
    page = re.sub(r'src="data:[^"]*"', "", text)  # base64 can hold any letters
    return [p for p in LEAKS if re.search(p, page)]


# Clips written as real WAV files: name, file seconds, offset, duration (None: the whole file).
CLIPS = [
    ("plain.wav", 2.0, None, None),
    ("windowed.wav", 5.0, 1.0, 2.5),
    ("a b#1.wav", 3.5, None, None),  # a name that needs percent-encoding in a link
]
S3_AUDIO = "s3://bucket/remote.wav"


def _audio_results(tmp_path: Path) -> pd.DataFrame:
    """Results of two models and their consensus over real WAV files (and one s3:// row); every
    audio row is wrong for whisper_base, one right row, and one labelled ``sv`` answered ``no``."""
    folder = tmp_path / "audio"
    folder.mkdir()
    rows = []
    for i, (name, seconds, offset, duration) in enumerate(CLIPS):
        write_wav(folder / name, sine(seconds, freq=300.0 + 100 * i))
        decoded = duration if duration is not None else seconds
        rows.append((f"clip{i}", str(folder / name), offset, duration, decoded))
    rows.append(("remote", S3_AUDIO, None, None, 4.0))
    rows.append(("right", str(folder / "plain.wav"), None, None, 2.0))
    df = pd.DataFrame(rows, columns=["id", "audio", "offset", "duration", "audio_seconds"])
    df["speech_seconds"] = (df["audio_seconds"] * 0.8).astype("float32")
    df["audio_seconds"] = df["audio_seconds"].astype("float32")
    df["error"] = None
    df["label"] = ["en", "de", "sv", "fr", "en"]
    df["whisper_base_lang"] = ["de", "en", "no", "es", "en"]
    df["whisper_base_prob"] = [0.91, 0.62, 0.88, 0.55, 0.97]
    df["ecapa_lang"] = ["en", "en", "no", "fr", "en"]
    df["ecapa_prob"] = [0.70, 0.81, 0.93, 0.66, 0.99]
    df["lang"] = ["und", "en", "no", "und", "en"]
    df["consensus_prob"] = [0.5, 0.72, 0.91, 0.5, 0.98]
    return df


def _wav_seconds(uri: str) -> float:
    data = base64.b64decode(uri.removeprefix("data:audio/wav;base64,"), validate=True)
    info = sf.info(io.BytesIO(data))
    assert info.samplerate == 16_000 and info.channels == 1
    return info.frames / info.samplerate


def test_every_wrong_row_has_a_player_linked_relative_to_the_report(tmp_path):
    ev = lidframe.evaluate(_audio_results(tmp_path))
    # the consensus's wrong rows, most confident first (all four here)
    assert list(ev.wrong["id"]) == ["clip2", "clip1", "clip0", "remote"]
    (tmp_path / "reports").mkdir()
    text = render_report(ev, tmp_path / "reports" / "r.html")
    # one player per wrong row on a file a browser reads; the s3:// row is text, with a reason
    assert len(AUDIO.findall(text)) == len(ev.wrong) - 1
    assert "s3://bucket/remote.wav" in text and "a browser cannot read s3:// audio" in text
    assert AUDIO.findall(text) == [
        "../audio/a%20b%231.wav#t=0,3.5",  # the whole file, as decoded (audio_seconds)
        "../audio/windowed.wav#t=1,3.5",  # offset 1, duration 2.5
        "../audio/plain.wav#t=0,2",
    ]
    # per row: id, window, truth, and every source's answer and probability (wrong ones red)
    assert "<td>1.00\u20133.50 s</td>" in text and "<td>0.00\u20132.00 s</td>" in text
    assert '<td class="bad">de 0.910</td><td>en 0.700</td><td class="bad">und 0.500</td>' in text
    assert "4 labelled rows answered wrong by at least one source" in text

    # without a folder of its own (not written, or written elsewhere): absolute file:// URIs
    unwritten = AUDIO.findall(render_report(ev))
    assert unwritten[1] == (tmp_path / "audio" / "windowed.wav").as_uri() + "#t=1,3.5"


def test_embedded_clips_are_their_windows_capped_and_travel_alone(tmp_path):
    ev = lidframe.evaluate(_audio_results(tmp_path))
    text = render_report(ev, tmp_path / "r.html", embed_audio=True, embed_max_seconds=3.0)
    sources = AUDIO.findall(text)
    assert len(sources) == 3 and all(s.startswith("data:audio/wav;base64,") for s in sources)
    # a 3.5 s file capped at 3 s, the 2.5 s window of a 5 s file, a whole 2 s file
    assert [round(_wav_seconds(s), 3) for s in sources] == [3.0, 2.5, 2.0]
    assert "first 3 s of the clip" in text
    # the clip is the window, not the file's start: the 1 s offset of a 400 Hz tone starts mid-wave
    window = sf.read(io.BytesIO(base64.b64decode(sources[1].split(",", 1)[1])))[0]
    expected = sine(5.0, freq=400.0)[16_000 : 16_000 + 40_000]
    assert np.abs(window - expected).max() < 1e-3
    with pytest.raises(lidframe.ConfigError, match="embed_max_seconds"):
        render_report(ev, embed_audio=True, embed_max_seconds=0)


def test_wrong_rows_are_capped_with_a_count_of_the_rest():
    ev = lidframe.evaluate(results_frame(n=2000, seed=5), confident=0.8)
    assert len(ev.wrong) > WRONG_SHOWN
    text = render_report(ev)
    assert len(AUDIO.findall(text)) == WRONG_SHOWN
    assert f"{len(ev.wrong) - WRONG_SHOWN} more wrong rows are not listed" in text


def test_answers_outside_the_true_languages_each_have_a_column(tmp_path):
    df = _audio_results(tmp_path)
    text = render_report(lidframe.evaluate(df, models=["whisper_base"]))
    # the confusion table: sv answered no, en answered de; es and no are outside the truth
    assert "the answers outside them, each by its code (es, no)." in text
    header = re.search(r"<th>true \u2193 answer \u2192</th>((?:\s*<th>[^<]*</th>)*)", text)
    assert header and re.findall(r"<th>([^<]*)</th>", header.group(1)) == [
        "en", "de", "fr", "sv", "es", "no"
    ]  # fmt: skip
    assert re.search(r"<td>sv</td>(\s*<td>0</td>){5}\s*<td>1</td>", text)

    # beyond the 8 outsider columns, the rest in one "other (k languages)" column
    many = results_frame(300, seed=3)
    many["whisper_base_lang"] = np.where(
        many.index % 3 == 0, [f"x{i % 11}" for i in many.index], many["whisper_base_lang"]
    )
    many["whisper_base_lang"] = many["whisper_base_lang"].replace(
        {f"x{i}": c for i, c in enumerate(OUTSIDERS)}
    )
    text = render_report(lidframe.evaluate(many, models=["whisper_base"]))
    assert "other (5 languages)" in text  # ar..gl (11), la and cs: 13 outsiders, 8 shown


def test_run_metadata_calibration_words_and_no_leaked_internals(tmp_path):
    df = with_no_speech(results_frame())
    text = render_report(lidframe.evaluate(df, confident=0.8))
    assert text.count("<td class=left>unknown</td>") >= 6  # job, version, dates, rows/s...
    assert "<td class=left>300</td>" in text  # rows evaluated
    assert (
        text.count(html.escape(CALIBRATION_NOTE)) == 1 + 3
    )  # beside the summary and each source's figures
    assert html.escape(DOMAIN_NOTE) in text and "tail_support" not in text
    assert not _leaks(text), _leaks(text)

    # a frame that carries its provenance, as a results folder's parts do
    df.attrs["lidframe_provenance"] = {
        "job_id": "job-1234",
        "lidframe_version": "9.8.7",
        "created": "2026-01-02T03:04:05+00:00",
        "models": {
            "whisper_base": {
                "name": "whisper-base", "family": "whisper", "source": "packaged:whisper-base",
                "dtype": "float32", "weights": "sha256:" + "ab" * 32,
            }
        },
    }  # fmt: skip
    text = render_report(lidframe.evaluate(df))
    for shown in ("job-1234", "9.8.7", "2026-01-02T03:04:05+00:00"):
        assert f"<td class=left>{shown}</td>" in text
    for shown in ("packaged:whisper-base", f"sha256:{'ab' * 32}", "ecapa"):
        assert f"<td>{shown}</td>" in text  # the models table
    assert not _leaks(text), _leaks(text)


def test_a_report_without_ground_truth_shows_the_answers(tmp_path):
    df = with_no_speech(results_frame()).drop(columns=["label"])
    ev = lidframe.evaluate(df)
    assert ev.labelled == 0 and ev.wrong.empty and "No ground truth" in ev.notes[0]
    assert ev.distribution.loc["und", "consensus rows"] == (df["lang"] == "und").sum()
    text = render_report(ev)
    assert "<strong>No ground truth: the results have no &#x27;label&#x27; column" in text
    assert '<h2 id="languages">Predicted languages</h2>' in text and "<h2>Speech</h2>" in text
    assert '<h2 id="run">Run</h2>' in text and "<img" in text  # the distribution chart
    assert "Summary</h2>" not in text and "Wrong rows" not in text and "<audio" not in text
    for name in ("whisper_base", "ecapa", "consensus"):
        assert f"<th>{name} rows</th>" in text
    assert not _leaks(text), _leaks(text)


def _lid(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lidframe.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_eval_and_report_commands_without_ground_truth_and_with_embedded_audio(tmp_path):
    df = _audio_results(tmp_path)
    out, bare_out = tmp_path / "out", tmp_path / "bare"
    for folder, frame in ((out, df), (bare_out, df.drop(columns=["label"]))):
        folder.mkdir()
        frame.to_parquet(folder / "part-00000.parquet")
    bare = _lid("eval", str(bare_out))
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout.startswith("No ground truth:") and "nothing stored" in bare.stdout
    assert "whisper_base answered: en 2 (40.0%), de 1 (20.0%)" in bare.stdout
    done = _lid("report", str(bare_out))
    assert done.returncode == 0, done.stderr
    assert "no labelled row: predicted languages only" in done.stdout

    page = tmp_path / "r.html"
    done = _lid(
        "report", str(out), "--html", str(page), "--embed-audio", "--embed-max-seconds", "1.5"
    )
    assert done.returncode == 0, done.stderr
    sources = AUDIO.findall(page.read_text(encoding="utf-8"))
    assert [round(_wav_seconds(s), 3) for s in sources] == [1.5, 1.5, 1.5]
    bad = _lid("report", str(out), "--embed-audio", "--embed-max-seconds", "-2")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "--embed-max-seconds: expected a positive number of seconds, got '-2'" in bad.stderr


def _probe(text: str) -> str:
    """``text`` with a script that waits until every audio element has its metadata (or failed),
    then writes into the DOM how many loaded and each one's duration and start position."""
    script = """<script>
function report() {
  const all = [...document.querySelectorAll('audio')];
  const ok = all.filter(a => a.readyState >= 1 && isFinite(a.duration) && a.duration > 0);
  document.body.dataset.loaded = ok.length;
  document.body.dataset.players = JSON.stringify(
    all.map(a => [a.readyState, a.duration, a.currentTime, a.error ? a.error.code : 0]));
}
function check() {
  const all = [...document.querySelectorAll('audio')];
  if (all.every(a => a.readyState >= 1 || a.error)) { report(); } else { setTimeout(check, 50); }
}
window.addEventListener('load', check);
</script>"""
    return text.replace("</body>", script + "</body>")


def _players_in_chromium(report: Path, tmp_path: Path, name: str) -> list[list[float]]:
    probed = report.with_name(f"probed-{name}.html")
    probed.write_text(_probe(report.read_text(encoding="utf-8")), encoding="utf-8")
    dom = _chromium(
        ["--virtual-time-budget=10000", "--dump-dom", probed.as_uri()], tmp_path / f"prof-{name}"
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r"<body[^>]*data-loaded=\"(\d+)\"[^>]*data-players=\"([^\"]*)\"", dom.stdout)
    assert found, dom.stdout[-1500:]
    players = json.loads(found.group(2).replace("&quot;", '"'))
    assert int(found.group(1)) == len(players), players
    return players


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary")
def test_headless_chromium_loads_every_linked_and_embedded_player(tmp_path):
    ev = lidframe.evaluate(_audio_results(tmp_path))
    (tmp_path / "reports").mkdir()
    linked = tmp_path / "reports" / "linked.html"
    render_report(ev, linked)
    # linked: the browser reads the whole file (its duration), and the fragment puts the player
    # at the window's start
    players = _players_in_chromium(linked, tmp_path, "linked")
    files = {name: (seconds, offset or 0.0) for name, seconds, offset, _ in CLIPS}
    expected = [files["a b#1.wav"], files["windowed.wav"], files["plain.wav"]]
    assert len(players) == len(expected)
    for (state, duration, at, error), (seconds, start) in zip(players, expected, strict=True):
        assert state >= 1 and error == 0
        assert abs(duration - seconds) < 0.1 and abs(at - start) < 0.1

    # embedded: each player is the clip window itself (capped at 3 s)
    embedded = tmp_path / "elsewhere" / "embedded.html"
    embedded.parent.mkdir()
    render_report(ev, embedded, embed_audio=True, embed_max_seconds=3.0)
    (tmp_path / "audio").rename(tmp_path / "gone")  # the page needs no audio folder
    players = _players_in_chromium(embedded, tmp_path, "embedded")
    durations = [duration for _, duration, _, _ in players]
    assert len(durations) == 3 and np.allclose(durations, [3.0, 2.5, 2.0], atol=0.1), players
