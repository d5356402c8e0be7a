"""The Prometheus endpoint of a running job (``run(metrics_port=...)``), scraped over HTTP while the
job works, and gone once it ends.

The job (a thread cluster in this process, its database in its folder) runs ``gate``: ``en`` for
loud clips and ``de`` for quiet ones, but a batch holding a clip of a second or more blocks until
the test creates a file. Partitions 0 and 1 (short clips) commit; 2 (long clips) waits, 3 after it:
the test scrapes then, with half the job done, and lets them go. Every scrape carries the job's
token; without it the endpoint refuses.
"""

from __future__ import annotations

import os
import stat
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lidframe
from lidframe.errors import ConfigError
from lidframe.models import LidModel, register_family
from lidframe.observe import JobMetrics, metrics_token, serve_metrics
from lidframe.store import Behaviour
from lidframe.testing import write_wav

pytest.importorskip("prometheus_client")
pytestmark = pytest.mark.timeout(300)


def register_gate(release: Path) -> None:
    """``gate``: loudness answers; blocks on a clip of 1 s or more until ``release`` exists."""

    class Gate(LidModel):
        @property
        def labels(self) -> tuple[str, ...]:
            return ("en", "de")

        def predict_batch(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
            deadline = time.monotonic() + 120
            while any(len(w) >= self.sample_rate for w in waveforms) and not release.exists():
                assert time.monotonic() < deadline, "never released"
                time.sleep(0.02)
            loud = np.array([np.abs(w).mean() for w in waveforms], dtype=np.float32).clip(0, 1)
            return np.stack([loud, 1 - loud], axis=1)

    register_family("gate", Gate)


def _scrape(url: str, headers: Mapping[str, str] | None = None) -> str:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def _refused(url: str, headers: Mapping[str, str] | None = None) -> int:
    """The HTTP status of a refused request (fails when it is answered)."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        _scrape(url, headers)
    return refused.value.code


def _until(url: str, texts: Sequence[str], headers: Mapping[str, str], seconds: float = 120) -> str:
    """The endpoint's page once it holds every one of ``texts`` (polled: the job's progress is
    the event)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            page = _scrape(url, headers)
            if all(text in page for text in texts):
                return page
        except urllib.error.HTTPError:
            raise
        except urllib.error.URLError:
            pass  # not listening yet
        assert time.monotonic() < deadline, f"{texts} never all appeared at {url}"
        time.sleep(0.1)


def test_the_endpoint_is_scraped_during_a_real_job(tmp_path, local_cluster, free_tcp_port, capfd):
    release = tmp_path / "release"
    token_file = tmp_path / "secrets" / "metrics-token"  # made by the job, as Prometheus reads it
    token_file.parent.mkdir()
    register_gate(release)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):  # rows 0-3 short, 4-7 a second and a half; loud and quiet in turn
        samples = 4_000 if i < 4 else 24_000
        write_wav(tmp_path / f"c{i}.wav", (0.9 if i % 2 else 0.1) * np.sign(
            rng.standard_normal(samples)), 16_000)  # fmt: skip
        rows.append({"id": f"c{i}", "audio": str(tmp_path / f"c{i}.wav")})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    client = local_cluster(1, processes=False).client
    done: dict[str, object] = {}

    def work() -> None:
        done["summary"] = lidframe.run(
            tmp_path / "m.csv", tmp_path / "out", ["gate:x"], client=client, partition_rows=2,
            progress=False, speech=lidframe.SpeechConfig(vad=False), metrics_port=free_tcp_port,
            metrics_token_file=str(token_file),
        )  # fmt: skip

    thread = threading.Thread(target=work)
    thread.start()
    try:
        url = f"http://127.0.0.1:{free_tcp_port}/metrics"
        deadline = time.monotonic() + 120
        while not token_file.exists():  # written before the cluster starts
            assert time.monotonic() < deadline, "the token file was never written"
            time.sleep(0.05)
        token = token_file.read_text().strip()
        bearer = {"Authorization": f"Bearer {token}"}  # what Prometheus' credentials_file sends
        # two partitions committed, and their behaviour added to the driver's totals
        page = _until(url, ['state="done"} 2.0', '"} 4.0\n# HELP lidframe_row_errors'], bearer)
        job = page.split('lidframe_rows_total{job="', 1)[1].split('"', 1)[0]
        assert f'lidframe_rows_total{{job="{job}"}} 4.0' in page
        # one worker thread: one partition in flight, the other waiting its turn
        assert f'lidframe_partitions{{job="{job}",state="running"}} 1.0' in page
        assert f'lidframe_partitions{{job="{job}",state="pending"}} 1.0' in page
        assert f'lidframe_language_share_ratio{{job="{job}",lang="de"}} 0.5' in page
        assert f'lidframe_und_ratio{{job="{job}"}} 0.0' in page
        assert f'lidframe_error_ratio{{job="{job}"}} 0.0' in page
        assert f'lidframe_expected_accuracy_ratio{{job="{job}"}} 0.9' in page
        assert "lidframe_rows_per_second" in page and "# TYPE lidframe_rows_total counter" in page
        # the token as a browser carries it
        assert f'lidframe_rows_total{{job="{job}"}}' in _scrape(f"{url}?token={token}")
        # without the token, or with another one, nothing of the job
        assert _refused(url) == 401
        assert _refused(url, {"Authorization": "Bearer " + "x" * len(token)}) == 403
        assert _refused(f"{url}?token={token[:-1]}") == 403
        assert _refused(url, {"Authorization": f"Basic {token}"}) == 401
    finally:
        release.touch()
        thread.join(timeout=120)
    assert done["summary"].ok  # type: ignore[attr-defined]
    with pytest.raises(urllib.error.URLError):  # the endpoint ends with the job
        _scrape(url, bearer)
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600  # the owner's alone
    # announced once, naming the file: the token itself is in no output
    err = capfd.readouterr().err
    assert err.count("lidframe: metrics: ") == 1
    assert f"{url} (bearer token in {token_file})" in err
    assert token not in err


def test_a_random_token_is_announced_with_the_url(free_tcp_port):
    """Without a token file the token is random, and the one line announcing the endpoint is the
    only way to learn it: its URL is answered, the bare URL refused."""
    metrics = JobMetrics("j", behaviour=Behaviour, states=dict)
    first = serve_metrics(metrics, free_tcp_port)
    try:
        link = first.announcement
        assert link.startswith(f"http://127.0.0.1:{free_tcp_port}/metrics?token=")
        assert 'lidframe_rows_total{job="j"} 0.0' in _scrape(link)
        assert _refused(first.url) == 401
    finally:
        first.close()
    token = link.split("?token=", 1)[1]
    second = serve_metrics(metrics, 0)  # another server, another token
    try:
        assert _refused(f"{second.url}?token={token}") == 403
    finally:
        second.close()


def test_a_token_file_is_read_or_refused_in_one_line(tmp_path):
    given = tmp_path / "token"
    given.write_text("a-token-the-operator-chose-42\n")
    assert metrics_token(given).value == "a-token-the-operator-chose-42"
    given.write_text("short\n")
    with pytest.raises(
        ConfigError, match=rf"metrics_token_file {given}: .* at least 16 .* holds 5"
    ):
        metrics_token(given)
    with pytest.raises(ConfigError, match="metrics_token_file .*: cannot create it"):
        metrics_token(tmp_path / "no-such-folder" / "token")
