"""lidframe.audio._pool: decoding in killable child processes, with real processes and signals.

What is tested and why: the pool exists so that a decoder stuck in native code or a store that
never answers costs one row (``timeout``), a decoder that crashes costs one row
(``decoder_crashed``), and neither takes the worker down. So the tests hang real decodes against a
real TCP server on 127.0.0.1 that accepts and never answers, kill real decoder processes with real
signals (SIGSEGV, SIGINT, SIGKILL of their parent), and check that results and error categories are
exactly those of in-process :func:`lidframe.audio.decode_window`, and that the pool keeps working.
A ``decode`` interrupted in the calling thread (KeyboardInterrupt) must not leave the old request's
reply in the decoder's pipe for the next clip: that decoder is replaced.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import soundfile as sf

from lidframe.audio import AudioConfig, DecoderPool, decode_window, decoder_pool
from lidframe.errors import AudioError
from tests.fixtures.storage import SilentServer

SR = 16_000


# ---------------------------------------------------------------------------------------------
# helpers


def tone(freq: float, seconds: float, rate: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def encode_m4a(path: Path, samples: np.ndarray, rate: int) -> str:
    """AAC in MP4 with PyAV's bundled encoder; ``samples`` is frames x 2."""
    import av

    planar = np.ascontiguousarray(samples.T, dtype=np.float32)
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate, layout="stereo")
        stream.bit_rate = 96_000
        for i in range(0, planar.shape[1], 4096):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planar[:, i : i + 4096]), format="fltp", layout="stereo"
            )
            frame.sample_rate = rate
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return str(path)


@pytest.fixture
def pool() -> Iterator[DecoderPool]:
    p = DecoderPool(1)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def good_wav(tmp_path: Path) -> tuple[str, np.ndarray]:
    x = np.random.default_rng(21).uniform(-0.5, 0.5, SR).astype(np.float32)
    path = tmp_path / "good.wav"
    sf.write(str(path), x, SR, subtype="FLOAT")
    return str(path), x


def only_pid(pool: DecoderPool) -> psutil.Process:
    pids = pool.pids()
    assert len(pids) == 1, pids
    return psutil.Process(pids[0])


def dead(proc: psutil.Process) -> bool:
    """True once ``proc`` has exited (a zombie is dead too; pid reuse is told apart by psutil)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def pool_error(pool: DecoderPool, uri: str, *args: Any, **kwargs: Any) -> AudioError:
    with pytest.raises(AudioError) as excinfo:
        pool.decode(uri, *args, **kwargs)
    return excinfo.value


# ---------------------------------------------------------------------------------------------
# same results as in-process decoding


@pytest.mark.timeout(120)
def test_pool_returns_exactly_what_decode_window_returns(pool: DecoderPool, tmp_path: Path) -> None:
    rng = np.random.default_rng(22)
    stereo = rng.uniform(-0.5, 0.5, (3 * 44_100, 2)).astype(np.float32)
    wav = str(tmp_path / "stereo44k.wav")
    sf.write(wav, stereo, 44_100, subtype="FLOAT")
    t = np.arange(4 * 44_100) / 44_100
    m4a = encode_m4a(
        tmp_path / "tone.m4a",
        np.stack([0.4 * np.sin(2 * np.pi * 440 * t), 0.4 * np.sin(2 * np.pi * 660 * t)], 1),
        44_100,
    )
    for uri in (wav, m4a):
        for offset, duration in [(None, None), (1.25, 1.5), (0.0, 0.5)]:
            got = pool.decode(uri, offset, duration)
            want = decode_window(uri, offset, duration)
            assert got.dtype == np.float32 and got.flags.c_contiguous
            np.testing.assert_array_equal(got, want)
    assert len(pool.decode(m4a, 1.0, 2.0)) == 2 * SR
    # the file's own rate crosses the process boundary with the samples
    for uri in (wav, m4a):
        clip = pool.decode_clip(uri, 1.25, 1.5)
        assert clip.native_rate == 44_100
        np.testing.assert_array_equal(clip.windows[0][1], decode_window(uri, 1.25, 1.5))

    child = only_pid(pool)
    assert child.pid != os.getpid()
    assert os.getpgid(child.pid) != os.getpgid(0)  # its own process group (see the SIGINT test)
    assert "lidframe.audio._pool" in " ".join(child.cmdline())
    pool.close()
    assert pool.pids() == [] and dead(child)


def test_errors_cross_the_process_boundary_with_their_category(
    pool: DecoderPool, tmp_path: Path, good_wav: tuple[str, np.ndarray]
) -> None:
    missing = str(tmp_path / "missing.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(23).bytes(20_000))
    for uri, category in [(missing, "not_found"), (str(garbage), "decode_failed")]:
        err = pool_error(pool, uri)
        with pytest.raises(AudioError) as local:
            decode_window(uri)
        assert type(err) is AudioError
        assert err.category == local.value.category == category
        assert str(err) == str(local.value)
    assert "soundfile:" in str(err) and "pyav:" in str(err)
    # an error is a row's, not the decoder's: the same process decodes the next clip
    child = only_pid(pool)
    np.testing.assert_array_equal(pool.decode(good_wav[0]), good_wav[1])
    assert only_pid(pool).pid == child.pid


def test_decoder_pool_is_one_pool_per_size(good_wav: tuple[str, np.ndarray]) -> None:
    three = decoder_pool(3)
    try:
        assert decoder_pool(3) is three and three.size == 3
        assert decoder_pool(4) is not three
        assert three.pids() == []  # started on first use, not before
        np.testing.assert_array_equal(three.decode(good_wav[0]), good_wav[1])
        assert len(three.pids()) == 1
    finally:
        three.close()
        decoder_pool(4).close()
    with pytest.raises(ValueError):
        DecoderPool(0)


# ---------------------------------------------------------------------------------------------
# hard timeout, crashes, signals


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_hard_timeout_kills_the_decoder_and_the_pool_goes_on(
    pool: DecoderPool, silent_server: SilentServer, good_wav: tuple[str, np.ndarray]
) -> None:
    """io_timeout=60 would let botocore wait a minute: AudioConfig.timeout=3 cuts it at 3 s."""
    pool.decode(good_wav[0])  # the decoder is up: what follows times the decode alone
    child = only_pid(pool)
    uri = "s3://bucket/hang.wav"
    start = time.perf_counter()
    err = pool_error(
        pool,
        uri,
        config=AudioConfig(io_timeout=60, timeout=3),
        storage_options=silent_server.s3_options(),
    )
    elapsed = time.perf_counter() - start
    print(f"\nhard timeout after {elapsed:.2f} s")
    assert err.category == "timeout"
    assert str(err) == (
        f"timeout: {uri}: no result after 3 s (AudioConfig.timeout); its decoder process was killed"
    )
    assert 2.5 <= elapsed <= 15
    assert silent_server.accepted >= 1  # it really was waiting on the store
    assert dead(child) and not psutil.pid_exists(child.pid)  # killed and reaped: no zombie
    assert pool.pids() == []

    np.testing.assert_array_equal(pool.decode(good_wav[0]), good_wav[1])
    assert only_pid(pool).pid != child.pid


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_two_decoders_time_out_in_parallel(
    silent_server: SilentServer, good_wav: tuple[str, np.ndarray]
) -> None:
    two = DecoderPool(2)
    try:
        two.decode(good_wav[0])
        two.decode(good_wav[0])  # the free list is FIFO: the second decoder starts too
        assert len(set(two.pids())) == 2
        errors: list[AudioError] = []

        def hang(key: str) -> None:
            try:
                two.decode(
                    f"s3://bucket/{key}",
                    config=AudioConfig(io_timeout=60, timeout=3),
                    storage_options=silent_server.s3_options(),
                )
            except AudioError as exc:
                errors.append(exc)

        start = time.perf_counter()
        threads = [threading.Thread(target=hang, args=(k,)) for k in ("a.wav", "b.wav")]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        elapsed = time.perf_counter() - start
        assert sorted(e.category for e in errors) == ["timeout", "timeout"]
        assert elapsed < 5.5, f"two 3 s timeouts took {elapsed:.1f} s: not in parallel"
    finally:
        two.close()


@pytest.mark.timeout(60)
def test_sigsegv_in_the_decoder_is_decoder_crashed_and_the_pool_goes_on(
    pool: DecoderPool, silent_server: SilentServer, good_wav: tuple[str, np.ndarray]
) -> None:
    pool.decode(good_wav[0])
    child = only_pid(pool)
    result: dict[str, Any] = {}

    def run() -> None:
        start = time.perf_counter()
        try:
            pool.decode(
                "s3://bucket/crash.wav",
                config=AudioConfig(io_timeout=60, timeout=30),
                storage_options=silent_server.s3_options(),
            )
        except AudioError as exc:
            result["error"] = exc
        result["seconds"] = time.perf_counter() - start

    thread = threading.Thread(target=run)
    thread.start()
    silent_server.wait_accepted(0)  # the decode is in flight, inside the child
    os.kill(child.pid, signal.SIGSEGV)
    thread.join(30)
    assert not thread.is_alive()
    err = result["error"]
    print(f"\ndecoder_crashed reported {result['seconds']:.2f} s after the decode started")
    assert err.category == "decoder_crashed"
    assert str(err) == (
        "decoder_crashed: s3://bucket/crash.wav: the decoder process died (killed by SIGSEGV)"
    )
    assert result["seconds"] < 10  # the death is seen at once, not at the 30 s timeout
    assert dead(child)

    np.testing.assert_array_equal(pool.decode(good_wav[0]), good_wav[1])
    assert only_pid(pool).pid != child.pid


@pytest.mark.timeout(60)
def test_decoders_ignore_sigint(
    pool: DecoderPool, silent_server: SilentServer, good_wav: tuple[str, np.ndarray]
) -> None:
    """A terminal's Ctrl-C must not kill decoders: they sit in their own process group, and a
    SIGINT that does reach one (idle, to its group, or in the middle of a decode) is ignored."""
    pool.decode(good_wav[0])
    child = only_pid(pool)
    assert os.getpgid(child.pid) == child.pid != os.getpgid(0)

    os.kill(child.pid, signal.SIGINT)
    os.killpg(child.pid, signal.SIGINT)
    time.sleep(0.3)
    assert not dead(child)
    np.testing.assert_array_equal(pool.decode(good_wav[0]), good_wav[1])
    assert only_pid(pool).pid == child.pid

    # in the middle of a decode (an HTTP store that never answers; sock_read gives up after 1 s,
    # so the decode ends on its own with a store timeout, in the same process)
    uri = f"{silent_server.url}/x.wav"
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            pool.decode(uri, config=AudioConfig(io_timeout=1.0, timeout=30))
        except AudioError as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    silent_server.wait_accepted(0)
    os.kill(child.pid, signal.SIGINT)
    thread.join(30)
    assert not thread.is_alive()
    err = result["error"]
    # the decode ran to its own end: the store's timeout, not a dead or interrupted decoder
    assert err.category == "timeout" and "no result after" not in str(err), str(err)
    assert str(err).startswith(f"{err.category}: {uri}: ")
    assert only_pid(pool).pid == child.pid
    np.testing.assert_array_equal(pool.decode(good_wav[0]), good_wav[1])


_PARENT = """
import json, sys, time
from lidframe.audio._pool import DecoderPool
pool = DecoderPool(2)
pool.decode(sys.argv[1])
pool.decode(sys.argv[1])
print(json.dumps(pool.pids()), flush=True)
time.sleep(120)
"""


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_decoders_die_with_their_parent(good_wav: tuple[str, np.ndarray]) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, good_wav[0]], stdout=subprocess.PIPE, text=True
    )
    children: list[psutil.Process] = []
    try:
        assert parent.stdout is not None
        ready, _, _ = select.select([parent.stdout], [], [], 60)
        assert ready, "the parent did not start its decoders"
        pids = json.loads(parent.stdout.readline())
        assert len(set(pids)) == 2
        children = [psutil.Process(pid) for pid in pids]
        for child in children:
            assert child.ppid() == parent.pid and not dead(child)

        parent.kill()  # SIGKILL: no cleanup code runs in the parent
        parent.wait(10)
        start = time.monotonic()
        while not all(dead(c) for c in children) and time.monotonic() - start < 10:
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        print(f"\ndecoders gone {elapsed:.2f} s after their parent was killed")
        assert all(dead(c) for c in children), [c.pid for c in children if not dead(c)]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for child in children:
            if not dead(child):
                child.kill()
        if parent.stdout is not None:
            parent.stdout.close()


# ---------------------------------------------------------------------------------------------
# an interrupted decode must not leave its reply in the pipe


@pytest.mark.timeout(60)
def test_a_decode_interrupted_in_the_caller_does_not_shift_later_results(
    pool: DecoderPool, silent_server: SilentServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    a, b = np.full(SR, 0.25, np.float32), np.full(SR // 2, -0.5, np.float32)
    sf.write(str(tmp_path / "a.wav"), a, SR, subtype="FLOAT")
    sf.write(str(tmp_path / "b.wav"), b, SR, subtype="FLOAT")
    pool.decode(str(tmp_path / "a.wav"))
    main = threading.main_thread().ident
    assert main == threading.get_ident()
    in_decode = threading.Event()

    def interrupt() -> None:  # Ctrl-C, once the decode is in flight in the child
        if in_decode.wait(10):
            silent_server.wait_accepted(0)
            signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    # Ctrl-C raises KeyboardInterrupt as in a terminal, also where this process inherited SIGINT
    # ignored (a run started in the background by a shell without job control).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    with pytest.raises(KeyboardInterrupt):
        in_decode.set()
        pool.decode(f"{silent_server.url}/x.wav", config=AudioConfig(io_timeout=1.0))
    got: list[np.ndarray | str] = []
    for name in ("a.wav", "b.wav"):
        try:
            got.append(pool.decode(str(tmp_path / name)))
        except AudioError as exc:  # today: a.wav gets the interrupted request's error ...
            got.append(str(exc))
    assert isinstance(got[0], np.ndarray), got[0]
    np.testing.assert_array_equal(got[0], a)
    assert isinstance(got[1], np.ndarray), got[1]
    np.testing.assert_array_equal(got[1], b)  # ... and b.wav gets a.wav's samples
