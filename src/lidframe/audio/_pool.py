"""Decode clips in child processes that can be killed, so a hung or crashing decoder costs one row.

Why child processes: libsndfile and FFmpeg are native code, and a malformed file can make either loop
forever or crash the process; a storage client can block inside a C extension past any Python-level
timeout. A thread cannot be stopped from outside; a process can. So each worker process keeps a few
decoder processes (one per decode slot, started on first use and kept), and every clip is decoded in
one of them by :func:`~lidframe.audio.decode_window`:

* no answer within :attr:`AudioConfig.timeout <lidframe.audio.AudioConfig.timeout>` seconds: the
  decoder process is killed (SIGKILL) and replaced, and the row's error is ``timeout``;
* the decoder process dies (segfault, abort, killed by the kernel's OOM killer): the row's error is
  ``decoder_crashed``, naming the signal; the next clip gets a fresh process.

Why not ``multiprocessing``, ``concurrent.futures.ProcessPoolExecutor``, pebble or loky: Dask worker
processes are daemonic by default and ``multiprocessing`` refuses to start children from daemonic
processes; a ``ProcessPoolExecutor`` cannot kill one hung task without breaking the whole pool. The
children here are plain :mod:`subprocess` processes running :func:`serve`, talking over two pipes
with pickled messages (:class:`multiprocessing.connection.Connection`, which works on any pipe).

The waveform comes back through the pipe (mono float32, at most ``max_window`` seconds: 1.9 MB for
30 s at 16 kHz); that copy costs about a millisecond, small next to decoding and the models. A child
imports only :mod:`lidframe.audio` and its libraries (no Dask, no torch, no pandas), so it starts in
well under a second, and it exits when its parent goes away.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from lidframe.audio._decode import Decoded, decode_clip
from lidframe.audio._decoders import Window
from lidframe.audio._limits import AudioConfig
from lidframe.errors import AudioError

__all__ = ["DecoderPool", "DecoderUnavailable", "decoder_pool", "serve"]

# Seconds a new decoder process may take to import its libraries and say it is ready.
_START_TIMEOUT = 120.0


class DecoderUnavailable(RuntimeError):
    """A decoder process could not be started at all: every row would fail, so the partition does."""


class _Decoder:
    """One decoder child process and its two pipes; used by one thread at a time."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._send: Connection | None = None
        self._recv: Connection | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _start(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys; from lidframe.audio._pool import serve; "
                    "serve(int(sys.argv[1]), int(sys.argv[2]))",
                    str(to_child_r),
                    str(from_child_w),
                ],
                pass_fds=(to_child_r, from_child_w),
                stdin=subprocess.DEVNULL,
                # Own process group: a terminal's Ctrl-C reaches the job's process, which decides
                # what happens, not every decoder at once.
                start_new_session=True,
            )
        except OSError as exc:
            os.close(to_child_w)
            os.close(from_child_r)
            raise DecoderUnavailable(f"cannot start a decoder process: {exc}") from exc
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._send = Connection(to_child_w, readable=False)
        self._recv = Connection(from_child_r, writable=False)
        if not self._recv.poll(_START_TIMEOUT):
            self.kill()
            raise DecoderUnavailable(
                f"a decoder process did not start within {_START_TIMEOUT:.0f} s"
            )
        try:
            self._recv.recv()  # ("ready", pid)
        except (EOFError, OSError) as exc:
            code = self.kill()
            raise DecoderUnavailable(
                f"a decoder process failed to start ({_describe_exit(code)})"
            ) from exc

    def kill(self) -> int | None:
        """Kill the child (if any) and close the pipes; returns its exit status."""
        code = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            code = self._proc.wait()
            self._proc = None
        for conn in (self._send, self._recv):
            if conn is not None:
                conn.close()
        self._send = self._recv = None
        return code

    def decode(
        self,
        uri: str,
        offset: float | None,
        duration: float | None,
        config: AudioConfig,
        storage_options: Mapping[str, Any],
        windows: int = 1,
    ) -> Decoded:
        try:
            return self._exchange(uri, offset, duration, config, storage_options, windows)
        except AudioError:
            raise
        except BaseException:
            # Interrupted (or failed) with a request in flight: the child's next reply would
            # answer this clip, not the next one. Only a fresh process is safe.
            self.kill()
            raise

    def _exchange(
        self,
        uri: str,
        offset: float | None,
        duration: float | None,
        config: AudioConfig,
        storage_options: Mapping[str, Any],
        windows: int,
    ) -> Decoded:
        request = (uri, offset, duration, config, dict(storage_options), windows)
        for retry in (False, True):  # a child that died between two clips is replaced, once
            if self._proc is None or self._proc.poll() is not None:
                self.kill()
                self._start()
            assert self._send is not None
            try:
                self._send.send(request)
                break
            except OSError:
                self.kill()
                if retry:
                    raise
        assert self._recv is not None
        if not self._recv.poll(config.timeout):
            self.kill()
            raise AudioError(
                "timeout",
                f"{uri}: no result after {config.timeout:g} s (AudioConfig.timeout); "
                "its decoder process was killed",
            )
        try:
            reply = self._recv.recv()
        except (EOFError, OSError):
            code = self.kill()
            raise AudioError(
                "decoder_crashed", f"{uri}: the decoder process died ({_describe_exit(code)})"
            ) from None
        if reply[0] == "ok":
            return reply[1]
        raise AudioError(reply[1], reply[2])


class DecoderPool:
    """A fixed number of decoder processes shared by the threads of one worker process."""

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError(f"a decoder pool needs at least one process, got {size}")
        self.size = size
        self._free: queue.SimpleQueue[_Decoder] = queue.SimpleQueue()
        self._all = [_Decoder() for _ in range(size)]
        for decoder in self._all:
            self._free.put(decoder)

    def decode(
        self,
        uri: str,
        offset: float | None = None,
        duration: float | None = None,
        config: AudioConfig | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> np.ndarray:
        """:func:`lidframe.audio.decode_window` in a decoder process, bounded by ``config.timeout``."""
        return self.decode_windows(uri, offset, duration, config, storage_options)[0][1]

    def decode_windows(
        self,
        uri: str,
        offset: float | None = None,
        duration: float | None = None,
        config: AudioConfig | None = None,
        storage_options: Mapping[str, Any] | None = None,
        windows: int = 1,
    ) -> list[Window]:
        """:func:`lidframe.audio.decode_windows` in a decoder process (``config.timeout`` bounds
        the whole row)."""
        return self.decode_clip(uri, offset, duration, config, storage_options, windows).windows

    def decode_clip(
        self,
        uri: str,
        offset: float | None = None,
        duration: float | None = None,
        config: AudioConfig | None = None,
        storage_options: Mapping[str, Any] | None = None,
        windows: int = 1,
    ) -> Decoded:
        """:func:`lidframe.audio.decode_clip` in a decoder process (``config.timeout`` bounds the
        whole row)."""
        decoder = self._free.get()
        try:
            return decoder.decode(
                uri, offset, duration, config or AudioConfig(), storage_options or {}, windows
            )
        finally:
            self._free.put(decoder)

    def pids(self) -> list[int]:
        """Process ids of the running decoder processes (for tests and monitoring)."""
        return [pid for pid in (d.pid for d in self._all) if pid is not None]

    def close(self) -> None:
        for decoder in self._all:
            decoder.kill()


_pools: dict[int, DecoderPool] = {}
_pools_lock = threading.Lock()


def decoder_pool(size: int) -> DecoderPool:
    """The process-wide pool of ``size`` decoder processes (made on first use, kept after)."""
    with _pools_lock:
        pool = _pools.get(size)
        if pool is None:
            pool = _pools[size] = DecoderPool(size)
        return pool


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def serve(read_fd: int, write_fd: int) -> None:
    """The decoder process: decode requests from ``read_fd`` until it closes or the parent is gone."""
    parent = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt stops

    def watch_parent() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch_parent, name="lidframe-parent-watch", daemon=True).start()
    recv = Connection(read_fd, writable=False)
    send = Connection(write_fd, readable=False)
    send.send(("ready", os.getpid()))
    while True:
        try:
            uri, offset, duration, config, options, windows = recv.recv()
        except (EOFError, OSError):
            return
        try:
            found = decode_clip(uri, offset, duration, config, options, windows)
            reply: tuple[Any, ...] = ("ok", found)
        except AudioError as exc:
            reply = ("error", exc.category, exc.args[0])
        except Exception as exc:  # noqa: BLE001 - an unexpected decoder failure is this row's
            reply = ("error", "decode_failed", f"{uri}: {type(exc).__name__}: {exc}")
        send.send(reply)
