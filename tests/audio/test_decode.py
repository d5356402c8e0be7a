"""lidframe.audio.decode_window on real files: WAV/FLAC/Opus (libsndfile), M4A/AAC (PyAV), S3.

Every file is written here with soundfile or encoded with PyAV's bundled encoders, so the expected
samples are known. The S3 tests run against a real S3 API server (moto, see tests/fixtures/storage.py) whose
traffic log counts the bytes it actually sent.
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lidframe.audio import AudioConfig, decode_clip, decode_window, decode_windows, resample
from lidframe.errors import AudioError, ConfigError, LidframeError

SR = 16_000


# ---------------------------------------------------------------------------------------------
# helpers


def tone(freq: float, seconds: float, rate: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def silence(seconds: float, rate: int = SR) -> np.ndarray:
    return np.zeros(round(seconds * rate), dtype=np.float32)


def write(path: Path, samples: np.ndarray, rate: int = SR, subtype: str = "FLOAT") -> str:
    sf.write(str(path), samples, rate, subtype=subtype)
    return str(path)


def encode(path: Path, samples: np.ndarray, rate: int, container: str, codec: str) -> str:
    """Encode float samples (frames, or frames x channels) with an encoder bundled in PyAV."""
    import av

    planar = np.ascontiguousarray(np.atleast_2d(samples.T), dtype=np.float32)  # channels x frames
    layout = {1: "mono", 2: "stereo"}[planar.shape[0]]
    with av.open(str(path), mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        stream.bit_rate = 96_000
        step = 4096
        for i in range(0, planar.shape[1], step):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planar[:, i : i + step]), format="fltp", layout=layout
            )
            frame.sample_rate = rate
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return str(path)


def peak_hz(y: np.ndarray, rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.argmax(spectrum) * rate / len(y))


def rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))


def onset(y: np.ndarray, threshold: float = 0.1, rate: int = SR) -> float:
    """Seconds until the 5 ms envelope first exceeds ``threshold``."""
    win = int(0.005 * rate)
    env = np.sqrt(np.convolve(np.square(y), np.ones(win) / win, mode="same"))
    above = np.flatnonzero(env > threshold)
    assert above.size, "no onset found"
    return float(above[0] / rate)


def category(excinfo: pytest.ExceptionInfo[AudioError]) -> str:
    return excinfo.value.category


@pytest.fixture(scope="module")
def segments_m4a(tmp_path_factory: pytest.TempPathFactory) -> str:
    """8 s of AAC in MP4: 2 s silence, 2 s of 440 Hz, 2 s silence, 2 s of 1000 Hz."""
    x = np.concatenate([silence(2), tone(440, 2), silence(2), tone(1000, 2)])
    return encode(tmp_path_factory.mktemp("m4a") / "segments.m4a", x, SR, "mp4", "aac")


# ---------------------------------------------------------------------------------------------
# decoding: exact samples, channels, rates


@pytest.mark.parametrize(
    ("suffix", "subtype", "tol"),
    [
        ("wav", "FLOAT", 1e-7),
        ("wav", "PCM_24", 1e-4),
        ("wav", "PCM_16", 1e-4),
        ("flac", "PCM_24", 1e-4),
        ("flac", "PCM_16", 1e-4),
    ],
)
def test_mono_16k_decodes_to_the_written_samples(
    tmp_path: Path, suffix: str, subtype: str, tol: float
) -> None:
    x = np.random.default_rng(1).uniform(-0.9, 0.9, 3 * SR).astype(np.float32)
    uri = write(tmp_path / f"x.{suffix}", x, SR, subtype)
    y = decode_window(uri)
    assert y.dtype == np.float32 and y.ndim == 1 and y.flags.c_contiguous
    assert y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=tol, rtol=0)


def test_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    left = tone(300, 1.0, amp=0.6)
    right = np.random.default_rng(2).uniform(-0.3, 0.3, SR).astype(np.float32)
    uri = write(tmp_path / "stereo.wav", np.stack([left, right], axis=1))
    y = decode_window(uri)
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("name", "rate"),
    [
        ("phone.wav", 8_000),
        ("cd.flac", 44_100),
        ("studio.wav", 48_000),
        ("phone.ogg", 8_000),  # Vorbis: libsndfile
        ("radio.m4a", 22_050),  # AAC: FFmpeg (PyAV)
        ("phone.m4a", 8_000),
    ],
)
def test_decode_clip_says_the_files_own_rate(tmp_path: Path, name: str, rate: int) -> None:
    x = tone(440, 1.5, rate)
    path = tmp_path / name
    if path.suffix == ".m4a":
        uri = encode(path, x, rate, "mp4", "aac")
    else:
        uri = write(path, x, rate, "VORBIS" if path.suffix == ".ogg" else "PCM_16")
    clip = decode_clip(uri, 0.25, 1.0)
    assert clip.native_rate == rate and type(clip.native_rate) is int
    # the samples are those decode_window gives: at the output rate, 16 kHz
    ((start, y),) = clip.windows
    assert start == pytest.approx(0.25, abs=1 / rate)
    np.testing.assert_array_equal(y, decode_window(uri, 0.25, 1.0))
    assert len(y) == SR and abs(peak_hz(y) - 440) <= 2.0
    assert decode_clip(uri, config=AudioConfig(sample_rate=8_000)).native_rate == rate


def test_a_long_file_heard_in_several_windows_has_one_rate(tmp_path: Path) -> None:
    uri = write(tmp_path / "archive.wav", tone(300, 40.0, 8_000, amp=0.3), 8_000, "PCM_16")
    clip = decode_clip(uri, config=AudioConfig(max_window=10.0), windows=3)
    assert [round(at, 3) for at, _ in clip.windows] == [0.0, 15.0, 30.0]
    assert all(len(y) == 10 * SR for _, y in clip.windows)
    assert clip.native_rate == 8_000
    alone = decode_windows(uri, config=AudioConfig(max_window=10.0), windows=3)
    for (at, y), (at_alone, y_alone) in zip(clip.windows, alone, strict=True):
        assert at == at_alone
        np.testing.assert_array_equal(y, y_alone)


def test_resample_matches_the_decoders_and_is_free_at_the_same_rate(tmp_path: Path) -> None:
    x = tone(440, 2.0, 8_000)
    assert resample(x, 8_000, 8_000) is x  # no copy when there is nothing to do
    uri = write(tmp_path / "phone.wav", x, 8_000, "FLOAT")
    y = resample(x, 8_000, SR)
    assert y.dtype == np.float32 and len(y) == 2 * SR
    np.testing.assert_allclose(y, decode_window(uri), atol=1e-4)
    back = resample(y, SR, 8_000)
    assert len(back) == len(x) and abs(peak_hz(back, 8_000) - 440) <= 1.0


@pytest.mark.parametrize("rate", [44_100, 8_000, 48_000])
def test_other_rates_are_resampled_to_16k(tmp_path: Path, rate: int) -> None:
    seconds = 2.0
    x = tone(1000, seconds, rate)
    uri = write(tmp_path / f"r{rate}.flac", x, rate, "PCM_24")
    y = decode_window(uri)
    assert y.dtype == np.float32
    assert abs(len(y) - seconds * SR) <= 1
    assert abs(peak_hz(y) - 1000) <= 1.0
    # level survives resampling (away from the edges)
    assert rms(y[SR // 4 : -SR // 4]) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_other_rate_with_window_is_resampled_to_the_window_length(tmp_path: Path) -> None:
    uri = write(tmp_path / "w.wav", tone(700, 5.0, 44_100), 44_100)
    y = decode_window(uri, offset=1.3, duration=2.2)
    assert abs(len(y) - 2.2 * SR) <= 1
    assert abs(peak_hz(y) - 700) <= 1.0


def test_opus_encoded_by_pyav_decodes(tmp_path: Path) -> None:
    uri = encode(tmp_path / "t.opus", tone(440, 2.0, 48_000), 48_000, "ogg", "libopus")
    y = decode_window(uri)
    assert abs(len(y) - 2 * SR) <= 1
    assert abs(peak_hz(y) - 440) <= 1.0


def test_stereo_44k_m4a_is_mono_16k(tmp_path: Path) -> None:
    left, right = tone(440, 2.0, 44_100), tone(440, 2.0, 44_100)
    uri = encode(tmp_path / "s.m4a", np.stack([left, right], axis=1), 44_100, "mp4", "aac")
    y = decode_window(uri, duration=1.5)
    assert len(y) == int(1.5 * SR)
    assert abs(peak_hz(y) - 440) <= 1.0
    assert rms(y[SR // 4 :]) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


# ---------------------------------------------------------------------------------------------
# windows


@pytest.fixture
def ramp_wav(tmp_path: Path) -> tuple[str, np.ndarray]:
    """10 s at 16 kHz whose sample i is i / n: every sample says where it is."""
    n = 10 * SR
    x = (np.arange(n) / n).astype(np.float32)
    return write(tmp_path / "ramp.wav", x), x


def test_wav_window_selects_exact_samples(ramp_wav: tuple[str, np.ndarray]) -> None:
    uri, x = ramp_wav
    np.testing.assert_array_equal(decode_window(uri, 1.25, 0.5), x[20_000:28_000])
    np.testing.assert_array_equal(decode_window(uri, None, 1.0), x[:SR])
    np.testing.assert_array_equal(decode_window(uri, 0.0, 2.0), x[: 2 * SR])
    # duration running past the end: what there is
    np.testing.assert_array_equal(decode_window(uri, 9.5, 3.0), x[int(9.5 * SR) :])
    # no duration: the rest of the file
    np.testing.assert_array_equal(decode_window(uri, 7.0), x[7 * SR :])


def test_nan_offset_and_duration_mean_absent(ramp_wav: tuple[str, np.ndarray]) -> None:
    uri, x = ramp_wav
    np.testing.assert_array_equal(decode_window(uri, float("nan"), float("nan")), x)


def test_max_window_caps_the_length(ramp_wav: tuple[str, np.ndarray]) -> None:
    uri, x = ramp_wav
    config = AudioConfig(max_window=2.0)
    np.testing.assert_array_equal(decode_window(uri, 3.0, 6.0, config), x[3 * SR : 5 * SR])
    np.testing.assert_array_equal(decode_window(uri, None, None, config), x[: 2 * SR])
    assert len(decode_window(uri, 0.0, 1.0, config)) == SR  # shorter than the cap: untouched


def test_m4a_window_selects_the_right_segment(segments_m4a: str) -> None:
    quiet = 0.01
    loud = 0.5 / np.sqrt(2)
    # well inside each segment
    y = decode_window(segments_m4a, 0.2, 1.5)
    assert len(y) == int(1.5 * SR) and rms(y) < quiet
    y = decode_window(segments_m4a, 2.2, 1.5)
    assert len(y) == int(1.5 * SR)
    assert rms(y) == pytest.approx(loud, rel=0.1) and abs(peak_hz(y) - 440) <= 1.0
    y = decode_window(segments_m4a, 4.3, 1.4)
    assert rms(y) < quiet
    y = decode_window(segments_m4a, 6.2, 1.5)
    assert rms(y) == pytest.approx(loud, rel=0.1) and abs(peak_hz(y) - 1000) <= 1.0


@pytest.mark.parametrize(("offset", "edge"), [(1.5, 0.5), (5.7, 0.3), (0.0, 2.0)])
def test_m4a_window_is_aligned_in_time(segments_m4a: str, offset: float, edge: float) -> None:
    """A window straddling a silence->tone edge sees it where it should (20 ms for codec delay)."""
    y = decode_window(segments_m4a, offset, 1.0 if offset else 3.0)
    assert onset(y) == pytest.approx(edge, abs=0.02)


def test_m4a_max_window_caps_the_length(segments_m4a: str) -> None:
    y = decode_window(segments_m4a, 1.0, None, AudioConfig(max_window=1.5))
    assert len(y) == int(1.5 * SR)


@pytest.mark.parametrize("which", ["wav", "m4a"])
@pytest.mark.parametrize("offset", [8.0, 8.5, 100.0])
def test_offset_past_the_end_is_bad_window(
    ramp_wav: tuple[str, np.ndarray], segments_m4a: str, which: str, offset: float
) -> None:
    uri = ramp_wav[0] if which == "wav" else segments_m4a
    if which == "wav":
        offset += 2.0  # the ramp is 10 s, the m4a 8 s
    with pytest.raises(AudioError) as excinfo:
        decode_window(uri, offset, 1.0)
    assert category(excinfo) == "bad_window"
    assert "past the end" in str(excinfo.value)


@pytest.mark.parametrize("which", ["wav", "m4a"])
@pytest.mark.parametrize(
    ("offset", "duration"), [(-0.1, 1.0), (-5.0, None), (0.0, 0.0), (1.0, -1.0)]
)
def test_negative_offset_or_nonpositive_duration_is_bad_window(
    ramp_wav: tuple[str, np.ndarray],
    segments_m4a: str,
    which: str,
    offset: float,
    duration: float | None,
) -> None:
    uri = ramp_wav[0] if which == "wav" else segments_m4a
    with pytest.raises(AudioError) as excinfo:
        decode_window(uri, offset, duration)
    assert category(excinfo) == "bad_window"


# ---------------------------------------------------------------------------------------------
# errors


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as excinfo:
        decode_window(str(tmp_path / "nope.wav"))
    assert category(excinfo) == "not_found"
    assert "nope.wav" in str(excinfo.value)


def test_empty_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError) as excinfo:
        decode_window(str(path))
    assert category(excinfo) == "empty"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("noise.wav", np.random.default_rng(3).bytes(20_000)),
        ("notes.txt", b"this is not audio at all\n" * 200),
        ("fake.m4a", b"\x00\x00\x00\x18ftypM4A " + np.random.default_rng(4).bytes(5_000)),
    ],
)
def test_garbage_is_decode_failed_naming_file_and_both_backends(
    tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioError) as excinfo:
        decode_window(str(path))
    assert category(excinfo) == "decode_failed"
    message = str(excinfo.value)
    assert name in message
    assert "soundfile:" in message and "pyav:" in message
    assert " object at 0x" not in message  # deterministic: no reprs of file objects


def _with_junk_chunk(wav: bytes, size: int) -> bytes:
    """Insert a ``JUNK`` chunk of ``size`` bytes before the ``data`` chunk of a RIFF WAV."""
    pos = wav.index(b"data")
    junk = b"JUNK" + struct.pack("<I", size) + bytes(size)
    out = wav[:pos] + junk + wav[pos:]
    return out[:4] + struct.pack("<I", len(out) - 8) + out[8:]


@pytest.mark.parametrize(
    ("container", "subtype", "junk"),
    [
        ("WAV", "PCM_16", 0),
        ("WAV", "FLOAT", 0),
        ("WAV", "PCM_16", 10_000),  # data chunk past the first read of the header
        ("WAVEX", "PCM_24", 0),
        ("RF64", "PCM_16", 0),
    ],
)
def test_wav_cut_in_half_is_truncated(
    tmp_path: Path, container: str, subtype: str, junk: int
) -> None:
    x = tone(440, 6.0)
    buf = io.BytesIO()
    sf.write(buf, x, SR, subtype=subtype, format=container)
    data = buf.getvalue()
    if junk:
        data = _with_junk_chunk(data, junk)
        np.testing.assert_allclose(sf.read(io.BytesIO(data))[0], x, atol=1e-4)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])  # header intact, data chunk promises 6 s
    for offset, duration in [(None, None), (2.5, 1.0), (4.0, 1.0)]:
        with pytest.raises(AudioError) as excinfo:
            decode_window(str(cut), offset, duration)
        assert category(excinfo) == "truncated", (offset, duration, excinfo.value)
        assert "96000 frames" in str(excinfo.value)
    # a window that lies wholly in the part that is there still decodes
    np.testing.assert_allclose(decode_window(str(cut), 1.0, 1.0), x[SR : 2 * SR], atol=1e-4)
    # past what the header promises: still bad_window
    with pytest.raises(AudioError) as excinfo:
        decode_window(str(cut), 7.0, 1.0)
    assert category(excinfo) == "bad_window"


@pytest.mark.parametrize("placeholder", [0xFFFFFFFF, 0x7FFFF000])
def test_streamed_wav_with_unknown_length_is_not_truncated(
    tmp_path: Path, placeholder: int
) -> None:
    """Writers that stream leave a placeholder data size: that is not a truncation."""
    x = tone(440, 1.0)
    buf = io.BytesIO()
    sf.write(buf, x, SR, subtype="PCM_16", format="WAV")
    data = bytearray(buf.getvalue())
    pos = data.index(b"data")
    data[pos + 4 : pos + 8] = struct.pack("<I", placeholder)
    data[4:8] = struct.pack("<I", placeholder)
    path = tmp_path / "streamed.wav"
    path.write_bytes(bytes(data))
    y = decode_window(str(path))
    np.testing.assert_allclose(y, x, atol=1e-4)


def test_too_large(tmp_path: Path) -> None:
    uri = write(tmp_path / "big.wav", tone(440, 3.0))
    with pytest.raises(AudioError) as excinfo:
        decode_window(uri, config=AudioConfig(max_bytes=10_000))
    assert category(excinfo) == "too_large"
    assert "max_bytes=10000" in str(excinfo.value)
    assert len(decode_window(uri, config=AudioConfig(max_bytes=1_000_000))) == 3 * SR


def test_too_many_channels(tmp_path: Path, segments_m4a: str) -> None:
    uri = write(tmp_path / "many.wav", np.zeros((SR // 10, 40), dtype=np.float32))
    with pytest.raises(AudioError) as excinfo:
        decode_window(uri)
    assert category(excinfo) == "too_many_channels"
    assert "40 channels" in str(excinfo.value)
    stereo = write(tmp_path / "stereo.wav", np.zeros((SR, 2), dtype=np.float32))
    with pytest.raises(AudioError) as excinfo:
        decode_window(stereo, config=AudioConfig(max_channels=1))
    assert category(excinfo) == "too_many_channels"
    stereo_m4a = encode(tmp_path / "stereo.m4a", np.zeros((SR, 2), np.float32), SR, "mp4", "aac")
    with pytest.raises(AudioError) as excinfo:
        decode_window(stereo_m4a, config=AudioConfig(max_channels=1))
    assert category(excinfo) == "too_many_channels"


def test_too_long(ramp_wav: tuple[str, np.ndarray], segments_m4a: str) -> None:
    for uri in (ramp_wav[0], segments_m4a):
        with pytest.raises(AudioError) as excinfo:
            decode_window(uri, 0.0, 1.0, AudioConfig(max_duration=5.0))
        assert category(excinfo) == "too_long", uri
        assert "max_duration=5.0" in str(excinfo.value)
        assert len(decode_window(uri, 0.0, 1.0, AudioConfig(max_duration=60.0))) == SR


def test_unknown_protocol_is_read_failed() -> None:
    with pytest.raises(AudioError) as excinfo:
        decode_window("nosuchprotocol://bucket/x.wav")
    assert category(excinfo) == "read_failed"


def test_audio_error_survives_pickling() -> None:
    err = AudioError("truncated", "s3://b/x.wav: header promises 10 frames")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is AudioError and isinstance(back, LidframeError)
    assert back.category == "truncated"
    assert str(back) == str(err) == "truncated: s3://b/x.wav: header promises 10 frames"


def test_raised_audio_error_survives_pickling(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as excinfo:
        decode_window(str(tmp_path / "missing.flac"))
    back = pickle.loads(pickle.dumps(excinfo.value))
    assert back.category == "not_found" and str(back) == str(excinfo.value)


# ---------------------------------------------------------------------------------------------
# AudioConfig


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("sample_rate", 0),
        ("sample_rate", -16000),
        ("max_bytes", 0),
        ("max_channels", 0),
        ("max_channels", -1),
        ("block_size", 0),
        ("max_window", 0.0),
        ("max_window", -1.0),
        ("max_window", float("inf")),
        ("max_window", float("nan")),
        ("max_duration", 0.0),
        ("max_duration", float("nan")),
        ("max_duration", float("inf")),
    ],
)
def test_audio_config_rejects_nonpositive_values(name: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"AudioConfig.{name}"):
        AudioConfig(**{name: value})


def test_audio_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        AudioConfig(block_size=-1)


# ---------------------------------------------------------------------------------------------
# S3, against a real S3 API server on loopback


def _wav_bytes(samples: np.ndarray, rate: int = SR, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, subtype=subtype, format="WAV")
    return buf.getvalue()


@pytest.mark.s3
def test_s3_wav_and_m4a_decode(s3_server, s3_bucket, segments_m4a: str) -> None:
    fs, bucket = s3_bucket
    x = np.random.default_rng(5).uniform(-0.5, 0.5, 2 * SR).astype(np.float32)
    fs.pipe(f"{bucket}/a/clip.wav", _wav_bytes(x, subtype="FLOAT"))
    fs.put(segments_m4a, f"{bucket}/a/clip.m4a")
    opts = s3_server.storage_options

    y = decode_window(f"s3://{bucket}/a/clip.wav", storage_options=opts)
    np.testing.assert_array_equal(y, x)
    y = decode_window(f"s3://{bucket}/a/clip.wav", 0.5, 0.25, storage_options=opts)
    np.testing.assert_array_equal(y, x[8000:12000])

    y = decode_window(f"s3://{bucket}/a/clip.m4a", 2.2, 1.5, storage_options=opts)
    assert len(y) == int(1.5 * SR) and abs(peak_hz(y) - 440) <= 1.0
    np.testing.assert_array_equal(y, decode_window(segments_m4a, 2.2, 1.5))


@pytest.mark.s3
def test_s3_missing_key_and_bucket_are_not_found(s3_server, s3_bucket) -> None:
    _fs, bucket = s3_bucket
    opts = s3_server.storage_options
    for uri in (f"s3://{bucket}/no/such.wav", "s3://lidframe-no-such-bucket-x/a.wav"):
        with pytest.raises(AudioError) as excinfo:
            decode_window(uri, storage_options=opts)
        assert category(excinfo) == "not_found", uri
        assert uri in str(excinfo.value)


@pytest.mark.s3
def test_s3_errors_keep_their_categories(s3_server, s3_bucket) -> None:
    fs, bucket = s3_bucket
    opts = s3_server.storage_options
    fs.pipe(f"{bucket}/empty.wav", b"")
    fs.pipe(f"{bucket}/junk.wav", b"not audio " * 500)
    full = _wav_bytes(tone(440, 4.0))
    fs.pipe(f"{bucket}/cut.wav", full[: len(full) // 2])
    expected = {"empty.wav": "empty", "junk.wav": "decode_failed", "cut.wav": "truncated"}
    for key, want in expected.items():
        with pytest.raises(AudioError) as excinfo:
            decode_window(f"s3://{bucket}/{key}", storage_options=opts)
        assert category(excinfo) == want, key


@pytest.mark.s3
def test_s3_window_reads_only_the_window(s3_server, s3_bucket) -> None:
    """20 min of 16 kHz int16 on S3; a 5 s window at 600 s must fetch a tiny part of it.

    The bytes are counted by the S3 server itself (tests.fixtures.storage.TrafficLog wraps its WSGI app and
    sums the response bodies of every GET of this key), so nothing in the client is patched.
    """
    fs, bucket = s3_bucket
    rng = np.random.default_rng(6)
    pcm = rng.integers(-20_000, 20_000, size=20 * 60 * SR, dtype=np.int16)
    key = f"{bucket}/long/noise.wav"
    fs.pipe(key, _wav_bytes(pcm))
    size = fs.size(key)
    assert size > 38_000_000

    s3_server.traffic.clear()
    block = 256 * 1024
    y = decode_window(
        f"s3://{key}",
        offset=600.0,
        duration=5.0,
        config=AudioConfig(block_size=block),
        storage_options=s3_server.storage_options,
    )
    # the right samples ...
    np.testing.assert_array_equal(y, pcm[600 * SR : 605 * SR].astype(np.float32) / 32768)
    # ... for a few range requests, not the file
    gets = s3_server.traffic.matching(f"/{key}", "GET")
    fetched = s3_server.traffic.bytes_sent(f"/{key}", "GET")
    window = 5 * SR * 2
    print(
        f"\nS3 window read: {fetched} bytes fetched in {len(gets)} GET(s) of a {size}-byte file "
        f"({100 * fetched / size:.2f}%); window itself is {window} bytes; ranges: "
        f"{[r.range for r in gets]}"
    )
    assert gets and all(r.range for r in gets), "every GET must be a range request"
    assert window <= fetched <= window + 4 * block
    assert fetched < size / 50


def test_non_finite_samples_are_a_row_error(tmp_path):
    samples = np.zeros(16000, dtype=np.float32)
    samples[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError) as info:
        decode_window(str(path))
    assert info.value.category == "decode_failed" and "NaN" in str(info.value)
