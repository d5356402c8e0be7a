"""lidframe.audio.decode_window on hostile input: absurd headers, lying sizes, bombs, dead stores.

What is tested and why: a corpus at scale holds files whose headers lie (an absurd sample rate, no
channels, a data size of 4 GB in a 1 kB file), files built to exhaust memory (32 channels at
192 kHz that compress to a few KB), and stores that fail in every way (no credentials, a server
that accepts connections and never answers). Each must cost one row an ``AudioError`` with the
right category, in bounded time and memory, never an exception of another type.

Everything is real: files are written with soundfile (libsndfile) and PyAV and then patched byte by
byte; peak memory is measured with ``getrusage`` in a fresh child Python process; the S3 server is
moto on loopback (tests/fixtures/storage.py); the never-answering endpoint is a real TCP server on 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import soundfile as sf
import soxr

from lidframe.audio import AudioConfig, decode_window, with_io_timeouts
from lidframe.errors import AudioError
from tests.fixtures.paths import BOMB
from tests.fixtures.storage import SilentServer

SR = 16_000


# ---------------------------------------------------------------------------------------------
# helpers


def wav_bytes(samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytearray:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, subtype=subtype, format="WAV")
    return bytearray(buf.getvalue())


def patch_u32(data: bytearray, at: int, value: int) -> None:
    data[at : at + 4] = struct.pack("<I", value)


def fmt_body(data: bytearray) -> int:
    """Offset of the ``fmt `` chunk's body: tag(2) channels(2) rate(4) byte rate(4) align(2)."""
    return data.index(b"fmt ") + 8


def decode_error(uri: str, *args: Any, **kwargs: Any) -> AudioError:
    """The AudioError decoding ``uri`` raises (an exception of any other type fails the test)."""
    with pytest.raises(AudioError) as excinfo:
        decode_window(uri, *args, **kwargs)
    err = excinfo.value
    assert str(err).startswith(f"{err.category}: "), str(err)
    return err


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# bad_header: absurd sample rates and channel counts


@pytest.mark.parametrize("rate", [2**31 - 1, 768_001, 999])
def test_header_rate_outside_the_limits_is_bad_header(tmp_path: Path, rate: int) -> None:
    """libsndfile opens these (it trusts the header): lidframe refuses them before decoding."""
    data = wav_bytes(np.full(SR, 0.1, np.float32), SR)
    body = fmt_body(data)
    patch_u32(data, body + 4, rate)
    patch_u32(data, body + 8, (rate * 2) & 0xFFFFFFFF)  # byte rate = rate x block align
    path = tmp_path / "rate.wav"
    path.write_bytes(bytes(data))
    assert sf.info(str(path)).samplerate == rate  # the backend really reads the lie

    err = decode_error(str(path))
    assert err.category == "bad_header"
    assert str(err) == (
        f"bad_header: {path}: the header says {rate} Hz, outside AudioConfig's 1000-768000 Hz"
    )


@pytest.mark.parametrize("rate", [0, 2**32 - 1])
def test_header_rate_libsndfile_refuses_is_decode_failed_naming_both(
    tmp_path: Path, rate: int
) -> None:
    """A rate of 0 (or one that is negative as a signed int) is refused by libsndfile at open
    ("SF_INFO struct incomplete") and by FFmpeg ("Invalid data"): ``decode_failed`` naming both."""
    data = wav_bytes(np.full(SR, 0.1, np.float32), SR)
    body = fmt_body(data)
    patch_u32(data, body + 4, rate)
    patch_u32(data, body + 8, (rate * 2) & 0xFFFFFFFF)
    path = tmp_path / "rate0.wav"
    path.write_bytes(bytes(data))

    err = decode_error(str(path))
    assert err.category == "decode_failed"
    message = str(err)
    assert str(path) in message
    assert "soundfile: Internal error : SF_INFO struct incomplete" in message
    assert "pyav:" in message and "Invalid data" in message


def test_header_with_zero_channels_is_bad_header(tmp_path: Path) -> None:
    """libsndfile refuses 0 channels; FFmpeg opens the stream and reports 0: ``bad_header``."""
    data = wav_bytes(np.full(SR, 0.1, np.float32), SR)
    data[fmt_body(data) + 2 : fmt_body(data) + 4] = struct.pack("<H", 0)
    path = tmp_path / "nochannels.wav"
    path.write_bytes(bytes(data))

    err = decode_error(str(path))
    assert err.category == "bad_header"
    assert str(err) == f"bad_header: {path}: the header says 0 channels"


def test_real_500_hz_wav_is_bad_header_unless_the_limit_allows_it(tmp_path: Path) -> None:
    x = tone(50, 2.0, 500)
    path = tmp_path / "r500.wav"
    sf.write(str(path), x, 500, subtype="FLOAT")

    err = decode_error(str(path))
    assert err.category == "bad_header"
    assert "500 Hz" in str(err) and str(path) in str(err)
    # the limit is AudioConfig's, not the file's fault: lowered, the same file decodes
    y = decode_window(str(path), config=AudioConfig(min_sample_rate=500))
    assert y.dtype == np.float32 and abs(len(y) - 2 * SR) <= 1
    np.testing.assert_allclose(y, soxr.resample(x, 500, SR, quality="HQ"), atol=1e-6)
    # the bounds are inclusive: 1000 Hz decodes with the defaults
    sf.write(str(tmp_path / "r1000.wav"), tone(50, 1.0, 1000), 1000, subtype="FLOAT")
    assert abs(len(decode_window(str(tmp_path / "r1000.wav"))) - SR) <= 1


# ---------------------------------------------------------------------------------------------
# too_large: the decoding work of one row is capped before decoding


def test_decode_work_over_the_cap_is_too_large_before_decoding(tmp_path: Path) -> None:
    """48 kHz stereo: 30 s of window is 2,880,000 samples. A NaN inside the file proves the check
    comes first: had anything been decoded, the row would be ``decode_failed`` (non-finite)."""
    x = np.zeros((48_000, 2), np.float32)
    x[100, 0] = np.nan
    path = tmp_path / "nan48k.wav"
    sf.write(str(path), x, 48_000, subtype="FLOAT")
    work = 30 * 48_000 * 2

    err = decode_error(str(path), config=AudioConfig(max_decode_samples=work - 1))
    assert err.category == "too_large"
    assert str(err) == (
        f"too_large: {path}: decoding 30 s of 2 channels at 48000 Hz is {work} samples, "
        f"over AudioConfig.max_decode_samples={work - 1}"
    )
    # exactly at the cap: the check passes, so decoding starts and meets the NaN
    err = decode_error(str(path), config=AudioConfig(max_decode_samples=work))
    assert err.category == "decode_failed" and "NaN" in str(err)
    # the cap is on the requested window, so a shorter window fits a smaller cap
    err = decode_error(str(path), 0.0, 0.5, AudioConfig(max_decode_samples=48_000))
    assert err.category == "decode_failed"


def test_too_large_guards_even_an_absurd_rate_once_allowed(tmp_path: Path) -> None:
    """With the rate limit raised to 2**31-1, the work cap still refuses a 64-G-sample window."""
    data = wav_bytes(np.full(SR, 0.1, np.float32), SR)
    patch_u32(data, fmt_body(data) + 4, 2**31 - 1)
    path = tmp_path / "huge.wav"
    path.write_bytes(bytes(data))
    err = decode_error(str(path), config=AudioConfig(max_sample_rate=2**31 - 1))
    assert err.category == "too_large"
    assert f"is {30 * (2**31 - 1)} samples" in str(err)


def test_too_large_through_pyav(tmp_path: Path) -> None:
    import av

    path = tmp_path / "stereo.m4a"
    rate = 44_100
    planar = np.ascontiguousarray(np.stack([tone(440, 1.0, rate)] * 2), dtype=np.float32)
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout="stereo")
        frame.sample_rate = rate
        frame.pts = 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    err = decode_error(str(path), config=AudioConfig(max_decode_samples=1_000_000))
    assert err.category == "too_large"
    assert "2 channels at 44100 Hz is 2646000 samples" in str(err)
    # at the cap it decodes (a window inside the file: AAC pads its last 1024-sample frame)
    y = decode_window(str(path), 0.0, 0.5, AudioConfig(max_decode_samples=44_100))
    assert len(y) == SR // 2
    err = decode_error(str(path), 0.0, 0.5, AudioConfig(max_decode_samples=44_099))
    assert err.category == "too_large"


# ---------------------------------------------------------------------------------------------
# truncated: a data size that is a promise, not a placeholder


def lying_wav(rate: int, channels: int, data_size: int) -> tuple[bytearray, np.ndarray]:
    """2 s of PCM_16 whose data chunk says ``data_size`` bytes; the RIFF size stays as written.

    Returns the patched bytes and what libsndfile reads from the file before the patch.
    """
    x = np.stack([tone(440 * (c + 1), 2.0, rate) for c in range(channels)], axis=1)
    data = wav_bytes(x, rate)
    stored, _ = sf.read(io.BytesIO(bytes(data)), dtype="float32", always_2d=True)
    riff = struct.unpack("<I", data[4:8])[0]
    assert riff == len(data) - 8  # a real size: the writer was not streaming
    patch_u32(data, data.index(b"data") + 4, data_size)
    return data, stored


@pytest.mark.parametrize("data_size", [0xFFFFFFF0, 0xFFFFFFFF])
@pytest.mark.parametrize(("rate", "channels"), [(48_000, 2), (44_100, 2)])
def test_huge_data_size_in_a_1kb_file_is_truncated(
    tmp_path: Path, rate: int, channels: int, data_size: int
) -> None:
    data, x = lying_wav(rate, channels, data_size)
    path = tmp_path / "liar.wav"
    path.write_bytes(bytes(data[:1_000]))
    promised = data_size // (2 * channels)
    header = len(data) - 2 * channels * len(x)
    there = (1_000 - header) // (2 * channels)

    err = decode_error(str(path))
    assert err.category == "truncated"
    assert str(err) == (
        f"truncated: {path}: header promises {promised} frames but only {there} could be read"
    )
    err = decode_error(str(path), 0.5, 1.0)  # a window wholly past the bytes that are there
    assert err.category == "truncated"
    assert f"only {there} are in the file" in str(err)
    # a window inside the bytes that are there is still good audio
    y = decode_window(str(path), 0.0, 0.001)
    ref = soxr.resample(x[: round(0.001 * rate)].mean(axis=1), rate, SR, quality="HQ")
    assert len(y) == len(ref) == 16
    np.testing.assert_allclose(y, ref, atol=1e-6)


@pytest.mark.parametrize("data_size", [0xFFFFFFF0, 0xFFFFFFFF])
def test_huge_data_size_16k_mono_is_truncated_once_the_length_is_allowed(
    tmp_path: Path, data_size: int
) -> None:
    data, _ = lying_wav(SR, 1, data_size)
    path = tmp_path / "liar16k.wav"
    path.write_bytes(bytes(data[:1_000]))
    err = decode_error(str(path), config=AudioConfig(max_duration=1e6))
    assert err.category == "truncated"
    assert f"header promises {data_size // 2} frames but only 478 could be read" in str(err)


@pytest.mark.parametrize("data_size", [0xFFFFFFF0, 0xFFFFFFFF])
def test_huge_data_size_16k_mono_is_truncated_with_default_limits(
    tmp_path: Path, data_size: int
) -> None:
    data, _ = lying_wav(SR, 1, data_size)
    path = tmp_path / "liar16k.wav"
    path.write_bytes(bytes(data[:1_000]))
    assert decode_error(str(path)).category == "truncated"


# ---------------------------------------------------------------------------------------------
# chunked decoding is exact


def test_chunked_6ch_48k_float_wav_equals_whole_signal_resampled(tmp_path: Path) -> None:
    """40 s of 6-channel 48 kHz noise spans many CHUNK_FRAMES chunks; streaming soxr must give the
    same samples as resampling the whole mixed-down window at once."""
    rate = 48_000
    x = np.random.default_rng(11).uniform(-0.9, 0.9, (40 * rate, 6)).astype(np.float32)
    path = tmp_path / "six.wav"
    sf.write(str(path), x, rate, subtype="FLOAT")

    y = decode_window(str(path))
    ref = soxr.resample(x[: 30 * rate].mean(axis=1), rate, SR, quality="HQ")
    assert y.shape == ref.shape == (30 * SR,)
    np.testing.assert_allclose(y, ref, atol=1e-6, rtol=0)
    # a window that starts and ends between chunk boundaries
    y = decode_window(str(path), 3.3, 20.0)
    ref = soxr.resample(x[round(3.3 * rate) : round(23.3 * rate)].mean(axis=1), rate, SR, "HQ")
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-6, rtol=0)


def test_chunked_44k_stereo_flac_equals_whole_signal_resampled(tmp_path: Path) -> None:
    rate = 44_100
    x = np.random.default_rng(12).uniform(-0.9, 0.9, (40 * rate, 2)).astype(np.float32)
    path = tmp_path / "stereo.flac"
    sf.write(str(path), x, rate, subtype="PCM_24")
    stored, _ = sf.read(str(path), dtype="float32")  # what 24-bit FLAC kept of x

    y = decode_window(str(path))
    ref = soxr.resample(stored[: 30 * rate].mean(axis=1), rate, SR, quality="HQ")
    assert y.shape == ref.shape == (30 * SR,)
    np.testing.assert_allclose(y, ref, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------
# storage failures keep their categories


def test_with_io_timeouts_adds_store_timeouts_and_user_values_win() -> None:
    user = {"key": "k", "config_kwargs": {"read_timeout": 5, "signature_version": "s3v4"}}
    for uri in ("s3://b/x.wav", "s3a://b/x.wav", "S3://b/x.wav"):
        out = with_io_timeouts(uri, user, 2.5)
        assert out["key"] == "k"
        assert out["config_kwargs"] == {
            "read_timeout": 5,  # the user's
            "signature_version": "s3v4",
            "connect_timeout": 2.5,
            "retries": {"max_attempts": 2, "mode": "standard"},
        }
    assert user == {"key": "k", "config_kwargs": {"read_timeout": 5, "signature_version": "s3v4"}}
    assert with_io_timeouts("s3://b/x", None, 7.0)["config_kwargs"] == {
        "connect_timeout": 7.0,
        "read_timeout": 7.0,
        "retries": {"max_attempts": 2, "mode": "standard"},
    }

    out = with_io_timeouts("https://h/x.wav", {"client_kwargs": {"trust_env": True}}, 3.0)
    timeout = out["client_kwargs"]["timeout"]
    assert isinstance(timeout, aiohttp.ClientTimeout)
    assert (timeout.sock_connect, timeout.sock_read) == (3.0, 3.0)
    assert out["client_kwargs"]["trust_env"] is True
    mine = aiohttp.ClientTimeout(total=99)
    out = with_io_timeouts("http://h/x.wav", {"client_kwargs": {"timeout": mine}}, 3.0)
    assert out["client_kwargs"]["timeout"] is mine

    for uri in ("/data/x.wav", "file:///data/x.wav", "gs://b/x.wav", "memory://x.wav"):
        opts = {"token": "t"}
        out = with_io_timeouts(uri, opts, 1.0)
        assert out == {"token": "t"} and out is not opts
    assert with_io_timeouts("/x.wav", None, 1.0) == {}


_DECODE_ONE = """
import json, sys, time
from lidframe.audio import AudioConfig, decode_window
from lidframe.errors import AudioError
uri, options = sys.argv[1], json.loads(sys.argv[2])
start = time.perf_counter()
try:
    y = decode_window(uri, config=AudioConfig(io_timeout=5.0), storage_options=options)
    out = {"samples": int(y.size)}
except AudioError as exc:
    out = {"category": exc.category, "message": str(exc)}
out["seconds"] = time.perf_counter() - start
print(json.dumps(out))
"""


@pytest.mark.s3
@pytest.mark.timeout(120)
def test_s3_without_credentials_is_access_denied(s3_server, s3_bucket) -> None:
    """No key, no secret, and nothing in the environment or ~/.aws to find them in: botocore's
    NoCredentialsError is ``access_denied``, and no unsigned request reaches the server."""
    fs, bucket = s3_bucket
    key = f"{bucket}/creds/clip.wav"
    fs.pipe(key, bytes(wav_bytes(tone(440, 1.0, SR), SR)))
    uri = f"s3://{key}"
    assert len(decode_window(uri, storage_options=s3_server.storage_options)) == SR  # it is there

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/lidframe/credentials",
        AWS_CONFIG_FILE="/nonexistent/lidframe/config",
        AWS_EC2_METADATA_DISABLED="true",
    )
    options = {
        "client_kwargs": {"endpoint_url": s3_server.endpoint_url, "region_name": "us-east-1"}
    }
    s3_server.traffic.clear()
    proc = subprocess.run(
        [sys.executable, "-c", _DECODE_ONE, uri, json.dumps(options)],
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out.get("category") == "access_denied", out
    assert out["message"].startswith(f"access_denied: {uri}: cannot stat: NoCredentialsError")
    assert s3_server.traffic.matching("/creds/clip.wav", "HEAD") == []
    assert s3_server.traffic.matching("/creds/clip.wav", "GET") == []


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_s3_endpoint_that_never_answers_is_timeout(silent_server: SilentServer) -> None:
    """Connect works, no byte ever comes back: with io_timeout=1 the row fails as ``timeout``
    after botocore's and s3fs's retries, each bounded by the read timeout."""
    uri = "s3://bucket/x.wav"
    start = time.perf_counter()
    err = decode_error(
        uri, config=AudioConfig(io_timeout=1.0), storage_options=silent_server.s3_options()
    )
    elapsed = time.perf_counter() - start
    print(
        f"\nS3 never-answering endpoint: timeout after {elapsed:.1f} s "
        f"({silent_server.accepted} connections accepted)"
    )
    assert err.category == "timeout"
    assert str(err).startswith(f"timeout: {uri}: cannot stat: ReadTimeoutError")
    assert silent_server.accepted >= 2  # it retried, against this server
    assert elapsed < 40


def _http_hang(silent_server: SilentServer) -> tuple[AudioError, float]:
    uri = f"{silent_server.url}/x.wav"
    start = time.perf_counter()
    err = decode_error(uri, config=AudioConfig(io_timeout=1.0))
    return err, time.perf_counter() - start


@pytest.mark.timeout(60)
def test_http_endpoint_that_never_answers_fails_in_bounded_time(
    silent_server: SilentServer,
) -> None:
    """fsspec's HTTP filesystem (aiohttp) with sock_read=1 s gives up after its HEAD and GET."""
    err, elapsed = _http_hang(silent_server)
    print(f"\nHTTP never-answering endpoint: {err.category} after {elapsed:.1f} s")
    assert silent_server.url in str(err)
    assert silent_server.accepted >= 1
    assert elapsed < 15


@pytest.mark.timeout(60)
def test_http_endpoint_that_never_answers_is_timeout(silent_server: SilentServer) -> None:
    err, _ = _http_hang(silent_server)
    assert err.category == "timeout", str(err)


# ---------------------------------------------------------------------------------------------
# memory: a decompression bomb costs what a clean file costs

_BOMB_RATE, _BOMB_CHANNELS, _BOMB_SECONDS = 192_000, 32, 60

# The bomb is a test asset (72 KB; encoding it takes ~25 s of CPU), made by:
#   second = np.zeros((192_000, 32), np.float32)  # digital silence: compresses to nothing
#   with sf.SoundFile(path, "w", 192_000, 32, format="OGG", subtype="VORBIS") as f:
#       for _ in range(60): f.write(second)

_MEASURE = """
import json, resource, sys, time
import numpy as np
from lidframe.audio import decode_window
start = time.perf_counter()
y = decode_window(sys.argv[1])
seconds = time.perf_counter() - start
print(json.dumps({
    "samples": int(y.size),
    "dtype": str(y.dtype),
    "peak_abs": float(np.abs(y).max()),
    "seconds": seconds,
    "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "vmhwm_kb": next(
        int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")
    ),
}))
"""

# Linux carries a process's peak RSS across fork + exec (exec folds the old address space's high
# water mark into ru_maxrss), so a child started straight from pytest would report at least
# pytest's own RSS. A small launcher in between makes the measuring process's ru_maxrss its own.
_LAUNCH = (
    "import subprocess, sys; "
    "sys.exit(subprocess.run([sys.executable, '-c', *sys.argv[1:]]).returncode)"
)


def _peak_rss(path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _LAUNCH, _MEASURE, str(path)],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_vorbis_bomb_decodes_in_bounded_memory(tmp_path: Path) -> None:
    """32 channels x 192 kHz x 30 s of window would be 737 MB as float32; decoded in chunks it
    costs a few MB. Peak RSS of a fresh process decoding the bomb vs a clean 30 s 16 kHz WAV."""
    bomb = BOMB
    info = sf.info(str(bomb))
    assert (info.samplerate, info.channels, info.frames) == (
        _BOMB_RATE,
        _BOMB_CHANNELS,
        _BOMB_RATE * _BOMB_SECONDS,
    )
    size = bomb.stat().st_size
    assert size < 500_000  # tens of KB on disk ...
    clean = tmp_path / "clean.wav"
    sf.write(str(clean), tone(440, 30.0, SR, amp=0.3), SR, subtype="PCM_16")

    base = _peak_rss(clean)
    got = _peak_rss(bomb)
    print(
        f"\nbomb {size} bytes: peak RSS {got['maxrss_kb'] / 1024:.1f} MB "
        f"(VmHWM {got['vmhwm_kb'] / 1024:.1f} MB), decoded in {got['seconds']:.2f} s; "
        f"clean 30 s WAV: peak RSS {base['maxrss_kb'] / 1024:.1f} MB "
        f"(VmHWM {base['vmhwm_kb'] / 1024:.1f} MB), decoded in {base['seconds']:.2f} s; "
        f"difference {(got['maxrss_kb'] - base['maxrss_kb']) / 1024:.1f} MB"
    )
    assert base["samples"] == 30 * SR
    # the launcher works: ru_maxrss is the measuring process's own peak (VmHWM since its exec)
    assert abs(base["maxrss_kb"] - base["vmhwm_kb"]) < 20 * 1024, base
    assert got["samples"] == 30 * SR and got["dtype"] == "float32"
    assert got["peak_abs"] < 1e-3  # silence in, silence out
    assert got["seconds"] < 60
    # ... and 737 MB of float32 had it been decoded whole: the bomb must not cost 300 MB more
    assert got["maxrss_kb"] - base["maxrss_kb"] < 300 * 1024
    assert got["vmhwm_kb"] - base["vmhwm_kb"] < 300 * 1024
