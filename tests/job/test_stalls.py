"""Stalled partition tasks (``lidframe.job._stalls``): :class:`StallWatch` finds tasks by their
silence, and :func:`restart_in_background` restarts the workers that ran them.

``StallWatch`` reads the time from ``time.monotonic``; the tests that are about elapsed time give
the module a clock they move by hand, so nothing sleeps to make time pass. Progress events come
from real Dask workers (thread workers on TCP over loopback) through the topic the driver
subscribes to, logged by the partition tasks' own reporter (``lidframe.job._worker._Progress``).
Restarts run against a real ``distributed.LocalCluster`` of worker processes under nannies.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import types
from collections.abc import Callable
from typing import Any

import pytest
from distributed import Client, LocalCluster, wait

from lidframe.job import _stalls
from lidframe.job._stalls import StallWatch, restart_in_background
from lidframe.job._worker import PROGRESS_TOPIC, _Progress
from lidframe.store import Lease
from tests.fixtures.clusters import RunningCluster

TOKEN = "a" * 32
OTHER = "b" * 32


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The clock ``lidframe.job._stalls`` reads (its own ``time``; the real module is untouched)."""
    clock = Clock()
    monkeypatch.setattr(_stalls, "time", types.SimpleNamespace(monotonic=clock))
    return clock


def _lease(partition: int, token: str = TOKEN) -> Lease:
    return Lease(partition, token, 1, 2 * partition, 2 * partition + 2)


def _event(partition: int, token: str) -> tuple[float, dict[str, Any]]:
    """A progress event as the topic hands it on: ``(timestamp, message)``."""
    return (time.time(), {"partition": partition, "token": token})


def test_a_task_is_stalled_only_after_stall_seconds_of_silence(clock: Clock) -> None:
    watch = StallWatch(30)
    a, b = _lease(0), _lease(1, OTHER)
    watch.watch(a)
    clock.now += 10
    watch.watch(b)
    inflight = {"fa": a, "fb": b}
    assert watch.stalled(inflight) == []
    clock.now += 20  # a: exactly 30 s of silence, not more
    assert watch.stalled(inflight) == []
    clock.now += 0.5
    assert watch.stalled(inflight) == ["fa"]
    clock.now += 10
    assert watch.stalled(inflight) == ["fa", "fb"]
    assert watch.stalled({"fb": b}) == ["fb"]  # only the futures asked about


def test_progress_events_keep_a_task_alive(clock: Clock) -> None:
    watch = StallWatch(30)
    lease = _lease(3)
    watch.watch(lease)
    for _ in range(5):  # two and a half minutes, with an event every 25 s
        clock.now += 25
        watch.on_progress(_event(3, TOKEN))
        assert watch.stalled({"f": lease}) == []
    clock.now += 31  # then silence
    assert watch.stalled({"f": lease}) == ["f"]


def test_events_of_tasks_not_watched_are_ignored(clock: Clock) -> None:
    watch = StallWatch(30)
    # one claim gives several partitions the same token: an event names its partition too
    first, second = _lease(0), _lease(1)
    watch.watch(first)
    watch.watch(second)
    clock.now += 31
    watch.on_progress(_event(0, TOKEN))
    watch.on_progress(_event(1, OTHER))  # partition 1 of another lease (an attempt given up)
    watch.on_progress(_event(7, TOKEN))  # a partition not watched
    watch.on_progress((time.time(), {}))  # not a progress message at all
    assert watch.stalled({"f0": first, "f1": second}) == ["f1"]
    assert set(watch._last_seen) == {(0, TOKEN), (1, TOKEN)}  # nothing new is watched


def test_forget_stops_watching_and_a_new_attempt_is_watched_afresh(clock: Clock) -> None:
    watch = StallWatch(30)
    old = _lease(2)
    watch.watch(old)
    clock.now += 40
    watch.forget(old)
    watch.forget(old)  # twice: no error
    watch.on_progress(_event(2, TOKEN))  # a late event of the forgotten attempt
    assert (2, TOKEN) not in watch._last_seen
    new = _lease(2, OTHER)  # the next attempt of the same partition
    watch.watch(new)
    assert watch.stalled({"f": new}) == []
    clock.now += 31
    assert watch.stalled({"f": new}) == ["f"]


def test_the_stall_error_names_the_setting_and_its_seconds() -> None:
    assert StallWatch(600).error.startswith("stalled: no progress for 600 s (--stall-seconds)")
    assert StallWatch(2.5).error.startswith("stalled: no progress for 2.5 s")


def _report(partition: int, token: str) -> None:
    """On a worker: what a partition task reports as it decodes and answers rows."""
    _Progress(partition, token, every=0.0)(1)


def _until(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


def test_progress_events_of_real_worker_tasks_reach_the_watch(clock: Clock) -> None:
    watch = StallWatch(30)
    a, b = _lease(0), _lease(1)
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=False,
            protocol="tcp",
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.subscribe_topic(PROGRESS_TOPIC, watch.on_progress)
        watch.watch(a)
        watch.watch(b)
        clock.now += 31
        assert watch.stalled({"fa": a, "fb": b}) == ["fa", "fb"]
        done = [
            client.submit(_report, 0, TOKEN, pure=False),
            client.submit(_report, 5, TOKEN, pure=False),  # not watched
        ]
        wait(done, timeout=30)
        assert [f.status for f in done] == ["finished", "finished"]
        _until(lambda: watch.stalled({"fa": a, "fb": b}) == ["fb"], "the event of partition 0")
        client.unsubscribe_topic(PROGRESS_TOPIC)
    assert set(watch._last_seen) == {(0, TOKEN), (1, TOKEN)}


# -- restarting workers -----------------------------------------------------------------------


def _restart_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "lidframe-restart" and t.is_alive()]


def _worker_pids(client: Client) -> dict[str, int]:
    """The process id of each worker that answers (one being restarted may not)."""
    return dict(client.run(os.getpid, on_error="ignore"))


def test_a_worker_stuck_in_a_task_is_restarted_through_its_nanny_in_the_background(
    local_cluster: Callable[..., RunningCluster],
) -> None:
    running = local_cluster(1)
    client = running.client
    ((address, pid),) = _worker_pids(client).items()
    assert pid != os.getpid()
    stuck = client.submit(time.sleep, 3600, pure=False)
    _until(lambda: stuck.key in client.processing()[address], "the stuck task to start")
    stuck.cancel()  # as the driver does: cancelled, but its thread still sleeps
    blocked = client.submit(sum, [1, 2], pure=False)
    with pytest.raises(TimeoutError):
        wait([blocked], timeout=1)  # the worker's only thread is taken

    restart_in_background(client, [address])
    # it returned at once: the restart (a new process started by the nanny) is still under way
    assert _restart_threads(), "the restart ran in the caller's thread"

    pids = _until(
        lambda: (p := _worker_pids(client)) and pid not in p.values() and p,
        "a new worker process",
        timeout=120,
    )
    assert len(pids) == 1
    assert blocked.result(timeout=60) == 3  # the new worker's thread is free
    _until(lambda: not _restart_threads(), "the restart thread to end", timeout=120)


def test_a_worker_without_a_nanny_is_left_as_it_is_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=False,
            protocol="tcp",
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
        caplog.at_level(logging.WARNING, "lidframe"),
    ):
        (address,) = client.nthreads()
        restart_in_background(client, [address])
        warning = _until(
            lambda: [r.getMessage() for r in caplog.records if r.name == "lidframe"],
            "the warning",
        )
        assert warning[0].startswith(f"could not restart stalled worker(s) ['{address}']")
        assert "nanny" in warning[0]
        assert list(client.nthreads()) == [address]  # nothing was done to it
        assert client.submit(sum, [1, 2], pure=False).result(timeout=30) == 3
        _until(lambda: not _restart_threads(), "the restart thread to end")
