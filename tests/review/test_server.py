"""The listening page's parts without a browser: byte ranges, the language list, the command's two
forms, and ``lidframe.review(...)`` in-process (a notebook's way) on a real SQLite job database."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import urllib.parse
from pathlib import Path

import pytest

import lidframe
from lidframe.cli._parser import build_parser, review_argv
from lidframe.errors import ConfigError
from lidframe.review import Reviews, serve
from lidframe.review._media import RangeNotSatisfiable, content_type, parse_range
from lidframe.review._server import language_names
from tests.review.jobs import make_job

JOB = "job-review"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, (0, 1000, False)),
        ("bytes=0-", (0, 1000, True)),
        ("bytes=100-199", (100, 200, True)),
        ("bytes=900-5000", (900, 1000, True)),
        ("bytes=-100", (900, 1000, True)),
        ("bytes=-5000", (0, 1000, True)),
        ("bytes=0-1,5-9", (0, 1000, False)),  # several ranges: the whole file, as RFC 9110 allows
        ("items=0-10", (0, 1000, False)),
    ],
)
def test_parse_range(header, expected):
    span = parse_range(header, 1000)
    assert (span.start, span.stop, span.partial) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0", "bytes=10-5"])
def test_unsatisfiable_ranges(header):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 1000)


def test_content_types():
    assert content_type("s3://b/x/a.WAV") == "audio/wav"
    assert content_type("/a/b.flac") == "audio/flac"
    assert content_type("https://h/a.mp3?sig=1") == "audio/mpeg"
    assert content_type("/a/b.opus") == "audio/ogg"


def test_every_canonical_language_with_its_name():
    names = dict(language_names())
    assert len(names) > 7000  # ISO 639-1, -2 and -3 languages, not only those of the models
    assert names["en"] == "English" and names["eu"] == "Basque" and names["yue"] == "Yue Chinese"
    assert {"tl", "fil", "sh", "nb", "nn", "no", "cmn"} <= set(names)
    for gone in ("iw", "jw", "und", "zxx", "mul", "sla", "qaa"):  # deprecated, special, collection
        assert gone not in names


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["review", "out/"], ["review", "serve", "out/"]),
        (["review", "--reviewer", "a", "out/"], ["review", "serve", "--reviewer", "a", "out/"]),
        (["review", "status", "out/"], ["review", "status", "out/"]),
        (["review", "serve", "out/"], ["review", "serve", "out/"]),
        (["review", "--help"], ["review", "--help"]),
        (["--debug", "review", "out/"], ["--debug", "review", "serve", "out/"]),
    ],
)
def test_the_command_takes_both_forms(argv, expected):
    at = 1 if argv[0] == "--debug" else 0
    assert review_argv(argv, at) == expected
    args = build_parser().parse_args(review_argv(argv, at)) if "--help" not in argv else None
    if args is not None:
        assert args.review_command == expected[at + 1]


@pytest.fixture
def sqlite_job(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/jobs.sqlite"
    make_job(url, n=30, models=2)
    with Reviews(url, JOB) as reviews:
        reviews.build("random", second_share=0)
    return url


def _get(url: str, path: str, token: str | None) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", path, headers={"X-Lidframe-Token": token} if token else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_lidframe_review_in_a_notebook(sqlite_job, capsys):
    assert lidframe.review is serve
    server = lidframe.review(Reviews(sqlite_job, JOB), reviewer="nina")
    try:
        printed = capsys.readouterr().out.strip().splitlines()
        assert printed == [printed[0]] and server.url in printed[0]
        assert server.url.startswith("http://127.0.0.1:") and server.host == "127.0.0.1"
        assert server.url in server._repr_html_()
        token = urllib.parse.parse_qs(urllib.parse.urlsplit(server.url).query)["token"][0]
        assert _get(server.url, "/api/state", None)[0] == 403
        status, body = _get(server.url, "/api/state", token)
        state = json.loads(body)
        assert status == 200 and state["reviewer"] == "nina" and state["item"] is not None
        # the row's file is not there: 404 naming it, never a 500
        status, body = _get(server.url, f"/api/audio/{state['item']['row']}", token)
        assert status == 404 and state["item"]["audio"].encode() in body
    finally:
        server.stop()
    assert not server.running
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", server.port)) != 0  # nothing listens any more


def test_another_address_warns_and_a_missing_queue_is_refused(sqlite_job, caplog):
    with caplog.at_level(logging.WARNING, logger="lidframe"):
        server = serve(Reviews(sqlite_job, JOB), host="0.0.0.0", quiet=True)
        server.stop()
    assert "not only on this machine" in caplog.text
    with pytest.raises(ConfigError, match="no review queue 'nope'"):
        serve(Reviews(sqlite_job, JOB), queue="nope", quiet=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lidframe"):
        serve(Reviews(sqlite_job, JOB), host="localhost", quiet=True).stop()
    assert "not only on this machine" not in caplog.text


def test_audio_the_browser_cannot_play_is_served_decoded_with_range_requests(tmp_path):
    """Real G.722 prompts (raw G.722, which Chromium does not play; the real-speech corpus's
    ``g722`` files): the audio route decodes them with the job's decoders to 16 kHz WAV, from the
    file's start to the row's window end, and answers range requests over those bytes."""
    import io

    import numpy as np
    import pandas as pd
    import soundfile as sf

    from lidframe.audio import decode_clip
    from lidframe.testing import real_speech_corpus
    from tests.review.jobs import answers_frame

    corpus = pd.read_parquet(real_speech_corpus(tmp_path / "real.parquet", encodings=("g722",)))
    files = corpus[(corpus["kind"] == "prompt") & (corpus["seconds"] > 2.5)]["audio"].head(2)
    assert len(files) == 2
    frame = answers_frame(2, models=2).assign(audio=list(files), error=None)
    frame["offset"] = [np.nan, 0.5]
    frame["duration"] = [np.nan, 1.25]
    url = f"sqlite:///{tmp_path}/jobs.sqlite"
    make_job(url, frame=frame, models=2)
    with Reviews(url, JOB) as reviews:
        reviews.build("random", second_share=0)
    server = serve(Reviews(url, JOB), quiet=True)
    try:
        token = urllib.parse.parse_qs(urllib.parse.urlsplit(server.url).query)["token"][0]
        parts = urllib.parse.urlsplit(server.url)
        for row, end in ((0, None), (1, 1.75)):
            status, headers, body = _request(parts, f"/api/audio/{row}", token)
            assert status == 200 and headers["content-type"] == "audio/wav"
            assert body != Path(files.iloc[row]).read_bytes()[: len(body)]
            wave, rate = sf.read(io.BytesIO(body), dtype="float32")
            expected = decode_clip(files.iloc[row], 0.0, end).windows[0][1]
            assert rate == 16_000 and wave.ndim == 1 and len(wave) == len(expected)
            assert np.abs(wave - expected).max() < 1e-3  # 16-bit PCM of the same samples
            status, headers, part = _request(
                parts, f"/api/audio/{row}", token, {"Range": "bytes=1000-4999"}
            )
            assert status == 206 and part == body[1000:5000]
            assert headers["content-range"] == f"bytes 1000-4999/{len(body)}"
    finally:
        server.stop()


def _request(
    parts: urllib.parse.SplitResult, path: str, token: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", path, headers={"X-Lidframe-Token": token, **(headers or {})})
        response = conn.getresponse()
        found = {k.lower(): v for k, v in response.getheaders()}
        return response.status, found, response.read()
    finally:
        conn.close()
