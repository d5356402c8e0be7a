"""The listening page end to end: a real page server process (``lidframe review RESULTS``), a real
headless Chromium driven by Playwright, a real PostgreSQL job database and, for S3, the local S3
API server. What is checked is what the issue asks: a key press stores the label in the database,
the player starts at the row's window, a reload resumes, two reviewers never get the same row,
undo, the token and the audio route refuse what they must (and read no file), S3 audio plays
through range requests, and a killed server loses no committed answer.

``LIDFRAME_SCREENSHOT=docs/review-page.png`` makes the first test save the README's screenshot.
"""

from __future__ import annotations

import http.client
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lidframe.review import Reviews
from tests.review.jobs import make_job
from tests.review.pages import (
    CHROMIUM,
    PageServer,
    audio_files,
    page_frame,
    row_windows,
    start_server,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (scripts/setup.sh --test)"),
]
playwright_api = pytest.importorskip("playwright.sync_api")

JOB = "job-page"
WINDOWS = row_windows()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the module (the system's; nothing is downloaded)."""
    home = tmp_path_factory.mktemp("chromium-home")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required",
            ],
            env={**os.environ, "HOME": str(home)},
        )
        yield chromium
        chromium.close()


@pytest.fixture
def job_db(postgres: Any, tmp_path: Path) -> str:
    """A fresh PostgreSQL database holding a finished job over real local recordings, with a
    ``random`` queue of all its rows."""
    url = postgres.new_database()
    files = {name: str(path) for name, path in audio_files(tmp_path / "audio").items()}
    make_job(url, frame=page_frame(files), models=2, job_id=JOB, out="/data/out")
    with Reviews(url, JOB) as reviews:
        assert reviews.build("random", second_share=0) == len(WINDOWS)
    return url


@pytest.fixture
def servers() -> Iterator[list[PageServer]]:
    started: list[PageServer] = []
    yield started
    for server in started:
        server.stop()


def serve(servers: list[PageServer], db: str, reviewer: str = "alice", *options: str) -> PageServer:
    server = start_server(db, JOB, "random", reviewer, options)
    servers.append(server)
    return server


def open_page(browser: Any, server: PageServer, reviewer: str | None = None) -> Any:
    context = browser.new_context(viewport={"width": 1100, "height": 600})
    page = context.new_page()
    url = server.url + (f"&reviewer={reviewer}" if reviewer else "")
    page.goto(url)
    assert "token=" not in page.url  # traded for a cookie, out of the address bar
    page.wait_for_function("window.lidframe && window.lidframe.shown > 0")
    return page


def state(page: Any) -> dict[str, Any]:
    return page.evaluate("window.lidframe.state")  # type: ignore[no-any-return]


def press(page: Any, key: str) -> dict[str, Any]:
    """Press ``key`` and wait for the state the server answered with."""
    shown = page.evaluate("window.lidframe.shown")
    page.keyboard.press(key)
    page.wait_for_function(f"window.lidframe.shown > {shown}")
    return state(page)


def player_position(page: Any) -> tuple[float, float]:
    """Where the page put the player for its row, and where the player is now."""
    page.wait_for_function("window.lidframe.seekedTo !== null", timeout=15_000)
    return page.evaluate(
        "[window.lidframe.seekedTo, document.getElementById('player').currentTime]"
    )  # type: ignore[no-any-return]


def answers(db: str, withdrawn: bool = False) -> list[dict[str, Any]]:
    with Reviews(db, JOB) as reviews:
        return reviews.store.answers(JOB, withdrawn=withdrawn)


def test_a_key_stores_the_label_and_the_player_starts_at_the_window(browser, job_db, servers):
    server = serve(servers, job_db)
    page = open_page(browser, server)
    seen = []
    while (item := state(page)["item"]) is not None:
        start, end = WINDOWS[item["row"]]
        assert (item["start"], item["end"]) == (start, end)
        seeked, now = player_position(page)
        assert seeked == pytest.approx(start, abs=0.01)
        assert start - 0.01 <= now and (end is None or now <= end + 0.5)
        if item["row"] == 3 and os.environ.get("LIDFRAME_SCREENSHOT"):  # a long file's windows
            page.wait_for_timeout(300)
            page.screenshot(path=os.environ["LIDFRAME_SCREENSHOT"])
        label = item["choices"][1]
        after = press(page, "2")
        stored = answers(job_db)
        assert (stored[-1]["row"], stored[-1]["reviewer"], stored[-1]["verdict"]) == (
            item["row"],
            "alice",
            "label",
        )
        assert stored[-1]["label"] == label
        assert after["progress"]["done"] == len(stored)
        seen.append(item["row"])
    assert sorted(seen) == list(range(len(WINDOWS)))
    assert state(page)["progress"]["left"] == 0
    assert "Nothing left" in page.inner_text("#empty")


def test_verdict_keys_type_ahead_reload_and_undo(browser, job_db, servers):
    server = serve(servers, job_db)
    page = open_page(browser, server)
    first = state(page)["item"]["row"]
    second = press(page, "u")["item"]["row"]
    third = press(page, "n")["item"]["row"]
    # the type-ahead: any canonical language, by name, not on screen
    page.keyboard.press("/")
    page.keyboard.type("basq")
    page.wait_for_selector("#matches li[data-code='eu']")
    fourth = press(page, "Enter")["item"]["row"]
    stored = answers(job_db)
    assert [(a["row"], a["verdict"], a["label"]) for a in stored] == [
        (first, "unsure", None),
        (second, "no_speech", "und"),
        (third, "label", "eu"),
    ]
    # a reload shows the row the reviewer holds
    page.reload()
    page.wait_for_function("window.lidframe && window.lidframe.shown > 0")
    assert state(page)["item"]["row"] == fourth
    # a skip stores nothing and moves on
    assert press(page, "s")["item"]["row"] != fourth
    assert len(answers(job_db)) == 3
    # undo takes the last answer back (kept, withdrawn) and shows its row again
    back = press(page, "z")
    assert back["item"]["row"] == third
    assert [a["row"] for a in answers(job_db)] == [first, second]
    withdrawn = [a for a in answers(job_db, withdrawn=True) if a["withdrawn_at"] is not None]
    assert [(a["row"], a["label"]) for a in withdrawn] == [(third, "eu")]
    press(page, "1")
    assert answers(job_db)[-1]["row"] == third
    assert answers(job_db)[-1]["label"] == back["item"]["choices"][0]


def test_two_browsers_with_two_reviewers_never_get_the_same_row(browser, job_db, servers):
    server = serve(servers, job_db)
    pages = {name: open_page(browser, server, reviewer=name) for name in ("bob", "carol")}
    got: dict[str, list[int]] = {name: [] for name in pages}
    holding = {name: state(page)["item"] for name, page in pages.items()}
    assert holding["bob"]["row"] != holding["carol"]["row"]
    while any(holding.values()):
        for name, page in pages.items():
            if holding[name] is None:
                continue
            got[name].append(holding[name]["row"])
            holding[name] = press(page, "1")["item"]
            assert state(page)["reviewer"] == name
    every = got["bob"] + got["carol"]
    assert sorted(every) == list(range(len(WINDOWS)))  # each row once, by one of them
    assert got["bob"] and got["carol"]
    by = {a["row"]: a["reviewer"] for a in answers(job_db)}
    assert all(by[row] == name for name, rows in got.items() for row in rows)


def test_two_browsers_on_two_queues_never_hold_the_same_row(browser, job_db, servers):
    """bob reviews the random queue (every row), carol the disagreement queue (the rows the
    models disagree on, in the random queue too): a row is on one screen at a time, and answered
    once, whichever page it was answered on."""
    with Reviews(job_db, JOB) as reviews:
        assert reviews.build("disagreement", second_share=0) >= 2
        disagreements = {i["row"] for i in reviews.store.items(JOB) if i["queue"] == "disagreement"}
    for queue, reviewer in (("random", "bob"), ("disagreement", "carol")):
        servers.append(start_server(job_db, JOB, queue, reviewer))
    pages = {
        name: open_page(browser, server, reviewer=name)
        for name, server in zip(("bob", "carol"), servers, strict=True)
    }
    holding = {name: state(page)["item"] for name, page in pages.items()}
    got: dict[str, list[int]] = {name: [] for name in pages}
    while any(holding.values()):
        rows = [item["row"] for item in holding.values() if item is not None]
        assert len(rows) == len(set(rows)), holding  # never the same row on both screens
        for name, page in pages.items():
            if holding[name] is None:
                continue
            got[name].append(holding[name]["row"])
            holding[name] = press(page, "1")["item"]
    assert set(got["carol"]) <= disagreements and got["carol"]
    every = got["bob"] + got["carol"]
    assert sorted(every) == list(range(len(WINDOWS)))  # each row once, on one of the pages
    assert sorted(a["row"] for a in answers(job_db)) == sorted(every)


def _get(server: PageServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A raw GET: the path is sent exactly as written (no client normalises it)."""
    host = urllib.parse.urlsplit(server.base)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.s3
def test_the_token_and_the_audio_route_refuse_and_read_no_file(
    browser, job_db, servers, s3_server, s3_bucket, tmp_path
):
    fs, bucket = s3_bucket
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF-not-for-you")
    fs.pipe(f"{bucket}/other/0.wav", b"RIFF-other-job")
    # another job in the same database, with more rows than this one, all queued for review
    other = make_job(job_db, n=40, models=2, job_id="job-other", out="/data/other")
    assert len(other) > len(WINDOWS)
    with Reviews(job_db, "job-other") as reviews:
        reviews.build("random", second_share=0)
    server = serve(servers, job_db, "alice", *_s3_options(s3_server.storage_options))
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(server.url).query)["token"][0]
    # without the token: 403, page, API and audio alike; a wrong token too
    for path in ("/", "/api/state", "/api/audio/0", "/page/app.js", "/?token=wrong"):
        status, body = _get(server, path)
        assert status == 403, path
    page = browser.new_context().new_page()
    assert page.goto(server.base).status == 403
    # with it: a row of this job plays; another job's row, or anything like a path, is 404
    ok = {"X-Lidframe-Token": token}
    assert _get(server, "/api/audio/0", ok)[0] == 200
    s3_server.traffic.clear()
    for path in (
        f"/api/audio/{len(WINDOWS) + 5}",  # a row of job-other only
        "/api/audio/-1",
        f"/api/audio/{secret}",
        f"/api/audio/{urllib.parse.quote(str(secret), safe='')}",
        "/api/audio/0/../../../../etc/passwd",
        "/api/audio/..%2F..%2Fetc%2Fpasswd",
        f"/api/audio/s3:%2F%2F{bucket}%2Fother%2F0.wav",
        f"/api/audio?path={secret}",
        "/page/..%2F_server.py",
        "/page/../_server.py",
        "/page/index.html",
    ):
        status, body = _get(server, path, ok)
        assert status == 404, path
        assert b"RIFF" not in body and b"root:" not in body and b"import" not in body
    assert s3_server.traffic.requests == []  # the store was never asked


def _s3_options(options: dict[str, Any]) -> list[str]:
    import json

    return [
        f"--storage-option={key}={json.dumps(value) if not isinstance(value, str) else value}"
        for key, value in options.items()
    ]


@pytest.mark.s3
def test_s3_audio_plays_with_range_requests(
    browser, postgres, servers, s3_server, s3_bucket, tmp_path
):
    fs, bucket = s3_bucket
    local = audio_files(tmp_path / "audio")
    files = {}
    for name, path in local.items():
        fs.put(str(path), f"{bucket}/audio/{path.name}")
        files[name] = f"s3://{bucket}/audio/{path.name}"
    db = postgres.new_database()
    make_job(db, frame=page_frame(files), models=2, job_id=JOB, out="/data/out")
    with Reviews(db, JOB) as reviews:
        reviews.build("random", second_share=0)
    server = serve(servers, db, "alice", *_s3_options(s3_server.storage_options))
    context = browser.new_context()
    page = context.new_page()
    answered: list[Any] = []
    page.on("response", lambda r: answered.append(r) if "/api/audio/" in r.url else None)
    page.goto(server.url)
    page.wait_for_function("window.lidframe && window.lidframe.shown > 0")
    # through the queue to the row deep in the long file (offset 12 s of 24 s)
    while state(page)["item"]["row"] != 2:
        press(page, "s")
    answered.clear()
    s3_server.traffic.clear()
    page.reload()
    page.wait_for_function("window.lidframe && window.lidframe.shown > 0")
    seeked, now = player_position(page)
    assert seeked == pytest.approx(12.0, abs=0.01) and 11.99 <= now <= 15.5
    page.wait_for_function("document.getElementById('player').readyState >= 2", timeout=15_000)
    partial = [r for r in answered if r.url.endswith("/api/audio/2") and r.status == 206]
    assert partial, [(r.url, r.status) for r in answered]
    ranges = [r.headers.get("content-range", "") for r in partial]
    assert all(
        c.startswith("bytes ") and c.endswith(f"/{local['long'].stat().st_size}") for c in ranges
    )
    # the page's server read the object from S3 in ranged GETs, not whole
    gets = s3_server.traffic.matching("/audio/long.wav")
    assert gets and all(g.range for g in gets)
    assert any(g.status.startswith("206") for g in gets)


def test_a_killed_server_loses_no_committed_answer(browser, job_db, servers):
    server = serve(servers, job_db)
    page = open_page(browser, server)
    rows = []
    for _ in range(3):
        rows.append(state(page)["item"]["row"])
        press(page, "1")
    held = state(page)["item"]["row"]
    server.kill()  # SIGKILL: no chance to flush anything
    assert [a["row"] for a in answers(job_db)] == rows
    again = serve(servers, job_db)
    page = open_page(browser, again)
    assert state(page)["item"]["row"] == held  # alice's row, still hers
    assert state(page)["progress"]["done"] == 3
    press(page, "1")
    assert [a["row"] for a in answers(job_db)] == [*rows, held]


def test_g722_audio_plays_decoded_at_the_window(browser, postgres, servers, tmp_path):
    """Real raw G.722 prompts (the real-speech corpus's ``g722`` files, which Chromium cannot play
    as stored) play in the page: the server decodes them to WAV and the player starts at the
    row's window."""
    from collections import defaultdict

    import pandas as pd

    from lidframe.testing import real_speech_corpus

    corpus = pd.read_parquet(real_speech_corpus(tmp_path / "real.parquet", encodings=("g722",)))
    g722 = corpus[(corpus["kind"] == "prompt") & (corpus["seconds"] > 3.0)]["audio"]
    # The page's first two rows (a whole file, then 0.5-2.5 s of one) over G.722 prompts.
    files: dict[str, str] = defaultdict(lambda: str(g722.iloc[0]))
    files.update({"en-real-000": str(g722.iloc[0]), "es-real-000": str(g722.iloc[1])})
    db = postgres.new_database()
    make_job(db, frame=page_frame(files).iloc[:2], models=2, job_id=JOB, out="/data/out")
    with Reviews(db, JOB) as reviews:
        reviews.build("random", second_share=0)
    server = serve(servers, db)
    page = open_page(browser, server)
    for _ in range(2):
        item = state(page)["item"]
        start, _ = WINDOWS[item["row"]]
        seeked, now = player_position(page)
        assert seeked == pytest.approx(start, abs=0.01) and start - 0.01 <= now
        page.wait_for_function("document.getElementById('player').readyState >= 2", timeout=15_000)
        assert page.evaluate("document.getElementById('player').error") is None
        assert "cannot play" not in page.inner_text("#message")
        press(page, "1")
