"""The HTML evaluation report: one self-contained file, valid embedded PNGs, escaped data, and (slow)
a real headless Chromium that loads it from file:// and decodes every image."""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import struct
import subprocess
import sys

import pandas as pd
import pytest

import lidframe
from lidframe.eval import evaluation_text
from lidframe.eval.report import render_report
from lidframe.eval.report._plots import heatmap as _heatmap
from tests.fixtures.browser import CHROMIUM
from tests.fixtures.browser import chromium as _chromium
from tests.fixtures.eval_data import LANGS, results_frame, with_no_speech
from tests.fixtures.paths import ROOT

SCRIPT_AUDIO = "/data/<script>x.wav"
IMG = re.compile(r"<img\b[^>]*>")
SRC = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _results_frame(n: int = 300, seed: int = 7) -> pd.DataFrame:
    """Two models and their consensus (tests/fixtures/eval_data.py), plus one confidently wrong row whose
    audio path holds HTML."""
    df = results_frame(n, seed)
    # row 30: every source confidently wrong, and its audio path is markup
    df.loc[30, ["label", "whisper_base_lang", "ecapa_lang", "lang"]] = ["en", "de", "de", "de"]
    df.loc[30, ["whisper_base_prob", "ecapa_prob"]] = [0.999, 0.998]
    df.loc[30, "consensus_prob"] = (0.999 + 0.998) / 2
    df.loc[30, "audio"] = SCRIPT_AUDIO
    return df


def _evaluation() -> lidframe.Evaluation:
    return lidframe.evaluate(
        _results_frame(), label_sets={"ecapa": [*LANGS, "nb", "no"]}, confident=0.8
    )


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (which must come first)."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _images(text: str) -> list[bytes]:
    tags = IMG.findall(text)
    out = []
    for tag in tags:
        match = SRC.search(tag)
        assert match, f"image without an embedded PNG: {tag[:120]}"
        assert re.search(r'alt="[^"]{10,}"', tag), "image without alt text"
        out.append(base64.b64decode(match.group(1), validate=True))
    return out


def test_report_is_one_self_contained_file_with_every_section(tmp_path):
    ev = _evaluation()
    path = tmp_path / "report.html"
    text = render_report(ev, path, title="Run <42> & co", target_accuracy=0.9)
    assert path.read_text(encoding="utf-8") == text
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "<title>Run &lt;42&gt; &amp; co</title>" in text

    assert '<h2 id="summary">Summary</h2>' in text and "<h2>Agreement</h2>" in text
    for name in ("whisper_base", "ecapa", "consensus"):
        assert f"<h2>{name}</h2>" in text
        for part in ("per language", "weakest languages", "confidently wrong"):
            assert f"<h3>{name}: {part}" in text
        s = ev[name]
        assert f"{s.accuracy:.3f}" in text  # the summary table
        assert f"accuracy {100 * s.accuracy:.1f}%" in text  # the source's heading
        best = s.threshold_for(0.9)
        if best is not None:
            assert f"confidence ≥ {best['threshold']:.3f}" in text
    assert "models disagree" in text  # the agreement table

    # the distribution chart and three plots per source, each a real PNG with a size
    pngs = _images(text)
    assert len(pngs) == 1 + 3 * len(ev.sources)
    for data in pngs:
        width, height = _png_size(data)
        assert width > 100 and height > 100
    import matplotlib.image

    image = matplotlib.image.imread(__import__("io").BytesIO(pngs[0]), format="png")
    assert image.shape[0] > 100 and image.std() > 0  # decodes, and is not a blank canvas

    # nothing external: no URL, no script, no stylesheet link
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "<link" not in text and "@import" not in text
    # (the wrong rows' players link to the local audio files, relative to the report)
    assert not re.search(r'<(?!audio)[a-z]+ [^>]*src="(?!data:image/png;base64,)', text)

    # data is escaped: the audio path with markup appears only escaped (in each source's table,
    # and in the wrong rows' list), and its player's link is percent-encoded
    assert SCRIPT_AUDIO not in text
    assert text.count("/data/&lt;script&gt;x.wav") == 4
    assert re.search(r'<audio controls preload="metadata" src="[./]*data/%3Cscript%3Ex\.wav', text)


def test_report_caps_confidently_wrong_rows_and_handles_empty_sources():
    ev = _evaluation()
    wrong = ev["whisper_base"].confidently_wrong
    assert len(wrong) > 0
    many = pd.concat([wrong] * (60 // len(wrong) + 1), ignore_index=True)
    ev["whisper_base"].confidently_wrong = many
    text = render_report(ev)
    assert f"confidently wrong (50 of {len(many)})" in text

    # every labelled row is an error, and one model has no probability column: nothing scored
    df = _results_frame(60)
    df["error"] = "decode: broken"
    df = df.drop(columns=["ecapa_prob"])
    empty = lidframe.evaluate(df)
    assert all(s.scored == 0 for s in empty.sources.values())
    text = render_report(empty)
    assert "<img" not in text and "nothing to plot" in text
    assert "accuracy \u2013" in text  # NaN metrics shown as a dash, not "nan"

    # scored rows without any confidence: the heat map is drawn, calibration plots are not
    df = _results_frame(60).drop(columns=["ecapa_prob", "lang", "consensus_prob"])
    only = lidframe.evaluate(df, models=["ecapa"])
    assert list(only.sources) == ["ecapa"] and only["ecapa"].scored > 0
    text = render_report(only)
    assert "Fewer than two models" in text
    assert len(_images(text)) == 2  # the distribution chart and the heat map


def test_report_shows_the_no_speech_rate_and_speech_seconds():
    from lidframe.eval._speech_stats import speech_text

    ev = lidframe.evaluate(with_no_speech(results_frame()), confident=0.8)
    text = render_report(ev)
    assert "<h2>Speech</h2>" in text
    # the overall line: no-speech rate of the decoded rows, audio and speech seconds
    line = speech_text(ev.speech)
    assert f"no speech: 33 of 294 decoded rows ({33 / 294:.1%})" in line
    assert f"<p>{line}</p>" in text and f"speech {ev.speech['speech_seconds']:.1f} s" in line
    # per labelled language: the table with its no-speech rate and median seconds
    table = ev.speech_by_language
    assert "<h3>Speech per labelled language</h3>" in text
    for column in ("no_speech_rate", "median_audio_seconds", "median_speech_seconds"):
        assert f"<th>{column}</th>" in text
    rows, no_speech, rate = table.loc["en", ["rows", "no_speech", "no_speech_rate"]]
    assert (
        f"<td>en</td>\n      <td>{int(rows)}</td>\n      <td>{int(no_speech)}</td>\n"
        f"      <td>{rate:.3f}</td>"
    ) in text
    # each source: its no-speech misses in the heading, the summary's rate, und in the heat map
    for name in ("whisper_base", "ecapa", "consensus"):
        s = ev[name]
        assert f"{s.no_speech} no speech (misses)); accuracy {100 * s.accuracy:.1f}%" in text
        heat = _heatmap(s)
        labels = [t.get_text() for t in heat.axes[0].get_xticklabels()]
        assert labels[-1] == "und" and not any(x.startswith("other") for x in labels)
        # answers outside the true languages each have their own column
        assert name == "consensus" or {"la", "cs"} <= set(labels)
    assert f"{30 / 284:.3f}" in text  # no_speech_rate in the summary table
    assert len(_images(text)) == 1 + 3 * len(ev.sources)


def test_report_without_speech_columns_has_no_speech_section():
    text = render_report(_evaluation())
    assert "<h2>Speech</h2>" not in text and "no speech" not in text
    assert '<h2 id="summary">Summary</h2>' in text and "<h2>Agreement</h2>" in text
    heat = _heatmap(_evaluation()["ecapa"])
    assert [t.get_text() for t in heat.axes[0].get_xticklabels()][-2:] == ["cs", "la"]


@pytest.mark.s3
def test_report_is_written_to_s3(s3_server, s3_bucket):
    fs, bucket = s3_bucket
    text = render_report(
        _evaluation(), f"s3://{bucket}/reports/eval.html", storage_options=s3_server.storage_options
    )
    assert fs.cat(f"{bucket}/reports/eval.html").decode("utf-8") == text


def test_rendering_uses_no_pyplot_and_no_display(tmp_path):
    """Rendering in a fresh interpreter imports neither pyplot nor a GUI backend."""
    code = (
        "import sys, tests.eval.report.test_page as t; from lidframe.eval.report import render_report; "
        "render_report(t._evaluation()); "
        "bad = [m for m in sys.modules if m == 'matplotlib.pyplot' or 'backend_tk' in m "
        "or 'backend_qt' in m or 'backend_gtk' in m]; print(bad); assert not bad"
    )
    here = ROOT  # where ``tests`` imports from
    env = {
        **os.environ,
        "MPLBACKEND": "",
        "DISPLAY": "",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(here), os.environ.get("PYTHONPATH")])),
        "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ written into the checkout
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary")
def test_headless_chromium_renders_the_report_and_decodes_every_image(tmp_path):
    path = tmp_path / "report.html"
    text = render_report(_evaluation(), path)
    images = len(IMG.findall(text))
    assert images == 10

    # A copy with a probe script (the report itself has none) that counts the decoded images
    # once the page has loaded, and writes the count into the DOM.
    probe = (
        "<script>window.addEventListener('load', () => { document.body.dataset.images = "
        "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length; });</script>"
    )
    probed = tmp_path / "probed.html"
    probed.write_text(text.replace("</body>", probe + "</body>"), encoding="utf-8")
    dom = _chromium(
        ["--virtual-time-budget=5000", "--dump-dom", probed.as_uri()], tmp_path / "profile-dom"
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<h2 id="summary">Summary</h2>' in dom.stdout
    found = re.search(r'<body[^>]*data-images="(\d+)"', dom.stdout)
    assert found, dom.stdout[:500]
    assert int(found.group(1)) == images

    shot = tmp_path / "report.png"
    run = _chromium(
        ["--window-size=1280,4000", f"--screenshot={shot}", path.as_uri()],
        tmp_path / "profile-shot",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.stat().st_size > 10_000
    width, height = _png_size(shot.read_bytes())
    assert (width, height) == (1280, 4000)
    print(f"screenshot (for a person to look at): {shot}")


def test_report_scores_und_labels_as_no_speech_and_shows_the_by_tables():
    df = with_no_speech(results_frame())
    df.loc[30:37, "label"] = "und"  # answered und: found
    df.loc[100:103, "label"] = "zxx"  # answered a language: missed
    df["speaker"] = ["<b>ann</b>" if i % 2 else "bob" for i in range(len(df))]
    ev = lidframe.evaluate(df, by="speaker")
    text = render_report(ev)
    assert '<a href="#no-speech">No speech</a>' in text and '<a href="#by">By column</a>' in text
    assert "<p>12 rows are labelled <code>und</code>" in text
    assert "290 labelled rows of 300; 12 of them labelled und (no speech)" in text
    d = ev["whisper_base"].detection
    assert (d.tp, d.fn) == (8, 4)
    row = (
        f"<td>whisper_base</td>\n      <td>12</td>\n      <td>0</td>\n      <td>8</td>\n"
        f"      <td>{d.fp}</td>\n      <td>4</td>\n      <td>{d.precision:.3f}</td>\n"
        f"      <td>{d.recall:.3f}</td>"
    )
    assert row in text
    assert "<h3>By speaker</h3>" in text and "&lt;b&gt;ann&lt;/b&gt;" in text
    assert "<b>ann</b>" not in text
    # the silent rows heard as a language are wrong rows to listen to
    assert text.count("<td>und</td>") >= 4

    plain = render_report(lidframe.evaluate(with_no_speech(results_frame())))
    assert "No row is labelled <code>und</code>: no-speech precision and recall are n/a" in plain
    assert '<h2 id="by">' not in plain


def _calibrated_results() -> tuple[pd.DataFrame, lidframe.Calibration]:
    """Results of two over-confident models with their uncalibrated consensus, and a calibration
    (isotonic final map) fitted on the first half of them."""
    from tests.eval.calibration_data import consensus_results

    df = consensus_results(240, seed=11)
    fitted = lidframe.fit_calibration(df.iloc[:120], ["a", "b"], folds=0, final="isotonic")
    return df, fitted


def test_report_shows_the_consensus_before_and_after_a_calibration(tmp_path):
    """Given a calibration (or one the run applied, from its provenance), the report has a
    calibration section: the figures before and after, the reliability diagram of both, and
    accuracy against coverage above each threshold with the threshold for the target marked."""
    from lidframe.eval._run_info import PROVENANCE_ATTR

    df, fitted = _calibrated_results()
    plain = lidframe.evaluate(df)
    assert plain.calibration is None
    assert 'id="calibration"' not in render_report(plain)

    fitted.save(tmp_path / "cal.json")
    ev = lidframe.evaluate(df, calibration=tmp_path / "cal.json")
    check = ev.calibration
    assert check is not None and check.rows == 240 and check.origin.startswith("given: ")
    # the final map keeps the answers of the per-model temperatures and weights
    from lidframe.consensus import consensus_frame

    unmapped = dataclasses.replace(fitted.consensus_config(), final=None)
    answers = consensus_frame(df, ["a", "b"], unmapped)["lang"]
    assert check.after["accuracy"] == (answers == df["label"]).mean()
    assert check.after["ece"] < check.before["ece"]  # the consensus was over-confident
    assert ev.record()["calibration"]["after"] == check.after
    text = render_report(ev, target_accuracy=0.9)
    assert '<h2 id="calibration">Calibration</h2>' in text and 'href="#calibration"' in text
    assert text.index('id="calibration"') < text.index('id="no-speech"')
    section = text[text.index('id="calibration"') : text.index('id="no-speech"')]
    for figures in (check.before, check.after):
        assert f"{figures['ece']:.3f}" in section and f"{figures['brier']:.3f}" in section
    assert "isotonic" in section
    best = check.threshold_for(0.9)
    if best is None:
        assert "No threshold of the calibrated probability reaches 90.0% precision" in section
    else:
        assert f"probability is ≥ {best['threshold']:.3f}" in section
        kept = check.thresholds[check.thresholds["threshold"] >= best["threshold"]]
        assert (kept["accuracy"].dropna() >= 0.9).all() or kept["rows"].iloc[0] > 0
    alts = re.findall(r'alt="([^"]*)"', section)
    assert len(alts) == 2
    assert "reliability diagram before and after calibration" in alts[0]
    assert "threshold for 90.0% precision is marked" in alts[1]
    for data in _images(section):
        width, height = _png_size(data)
        assert width > 100 and height > 100
    # the two extra plots beside the usual ones
    assert len(_images(text)) == 2 + len(_images(render_report(plain)))

    # a run that applied the calibration says so in its provenance: the same check, unasked
    df.attrs[PROVENANCE_ATTR] = {"settings": {"calibration": fitted.identity()}}
    applied = lidframe.evaluate(df).calibration
    assert applied is not None and applied.origin == "applied by the run"
    assert applied.after == check.after and applied.before == check.before


def test_report_says_when_no_threshold_reaches_the_target():
    df, fitted = _calibrated_results()
    # every consensus answer wrong: no threshold keeps rows that are right 95% of the time
    df["label"] = ["it" if lang != "it" else "en" for lang in df["lang"]]
    ev = lidframe.evaluate(df, calibration=fitted)
    assert ev.calibration is not None and ev.calibration.threshold_for(0.95) is None
    text = render_report(ev)
    assert "No threshold of the calibrated probability reaches 95.0% precision." in text
    assert len(_images(text[text.index('id="calibration"') : text.index('id="no-speech"')])) == 2


def test_report_names_every_row_with_an_error_and_says_it_is_not_scored():
    ev = _evaluation()  # rows r20-r25: not_found errors
    text = render_report(ev)
    assert "300 labelled rows" not in text
    headline = re.search(r'<p class="note">([^<]*)</p>', text).group(1)
    assert "6 rows with an error (no answer), not scored" in headline
    section = text.split('<h2 id="failed">Rows with an error</h2>')[1].split("<h2")[0]
    assert "6 rows have an error and no answer" in section
    for i in range(20, 26):
        assert f"<td class=left>r{i}</td><td class=left>not_found: /x.wav</td>" in section
    assert '<a href="#failed">' in text
    assert "not scored (the first 5 of 6):\n  r20 (/data/20.wav): not_found: /x.wav" in (
        evaluation_text(ev)
    )
