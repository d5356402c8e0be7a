"""Long files: windows spread over the file, the row's answer from their speech, code switches.

Real espeak-ng speech, real silero-vad, real whisper-base weights, through the real kernel; the S3
test counts the bytes the S3 server itself sent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from lidframe.audio import AudioConfig, decode_windows
from lidframe.audio._decoders import spread_windows
from lidframe.kernel import NO_SPEECH, KernelConfig, identify_partition
from lidframe.models import parse_model
from lidframe.speech import SpeechConfig
from lidframe.testing import TEXTS, non_speech, synthesize, write_wav

SR = 16_000
WHISPER = parse_model("whisper-base", device="cpu")


def _speech(lang: str, seconds: float, tmp_path: Path, seed: int = 0) -> np.ndarray:
    """``seconds`` of espeak-ng speech in ``lang`` (its sentences one after another), cut."""
    pieces: list[np.ndarray] = []
    total = 0
    i = 0
    rng = np.random.default_rng(seed)
    while total < seconds * SR:
        path = tmp_path / f"{lang}-{seed}-{i}.wav"
        synthesize(TEXTS[lang][i % len(TEXTS[lang])], lang, path, speed=150, noise_db=-60)
        wave, _ = sf.read(path, dtype="float32")
        gap = (0.0005 * rng.standard_normal(int(0.4 * SR))).astype(np.float32)
        pieces += [wave, gap]
        total += len(wave) + len(gap)
        i += 1
    return np.concatenate(pieces)[: int(seconds * SR)]


def _run(paths: list[Path], **speech: object) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "id": pd.array([p.stem for p in paths], dtype="string"),
            "audio": pd.array([str(p) for p in paths], dtype="string"),
            "offset": np.nan,
            "duration": np.nan,
        }
    )
    config = KernelConfig(models=(WHISPER,), speech=SpeechConfig(**speech))  # type: ignore[arg-type]
    return identify_partition(frame, config).set_index("id")


def test_windows_are_spread_evenly_and_only_when_the_file_is_longer_than_one():
    assert spread_windows(0.0, 30.0, 20.0, 8) == [0.0]
    assert spread_windows(0.0, 30.0, None, 8) == [0.0]
    assert spread_windows(0.0, 30.0, 600.0, 1) == [0.0]
    assert spread_windows(0.0, 30.0, 240.0, 8) == pytest.approx([30.0 * i for i in range(8)])
    assert spread_windows(0.0, 30.0, 45.0, 8) == [0.0, 15.0]
    starts = spread_windows(10.0, 30.0, 3600.0, 8)
    assert len(starts) == 8 and starts[0] == 10.0 and starts[-1] == pytest.approx(3570.0)
    assert spread_windows(0.0, 30.0, 3600.0, 8, budget=3) == pytest.approx([0.0, 1785.0, 3570.0])


@pytest.mark.slow
def test_four_languages_back_to_back_are_found_window_by_window(tmp_path):
    languages = ["en", "es", "de", "it"]
    # 60 s per language, 8 windows of 30 s over 240 s: each window lies inside one language
    long = np.concatenate([_speech(lang, 60.0, tmp_path) for lang in languages])
    write_wav(tmp_path / "switching.wav", long, SR)
    mono = _speech("es", 150.0, tmp_path, seed=1)
    write_wav(tmp_path / "monolingual.wav", mono, SR)
    out = _run([tmp_path / "switching.wav", tmp_path / "monolingual.wav"])

    windows = out.loc["switching", "whisper_base_windows"]
    assert len(windows) == 8
    assert [w["start"] for w in windows] == pytest.approx([30.0 * i for i in range(8)], abs=0.01)
    assert all(w["end"] - w["start"] == pytest.approx(30.0, abs=0.01) for w in windows)
    truth = [languages[int(w["start"] // 60)] for w in windows]
    hits = [w["lang"] == t for w, t in zip(windows, truth, strict=True)]
    assert np.mean(hits) >= 0.9, [(w["lang"], t) for w, t in zip(windows, truth, strict=True)]
    assert out.loc["switching", "code_switch"]
    assert out.loc["switching", "audio_seconds"] == pytest.approx(240.0, abs=0.1)
    assert out.loc["switching", "speech_seconds"] > 150.0

    mono_windows = out.loc["monolingual", "whisper_base_windows"]
    assert len(mono_windows) == 5  # ceil(150 / 30)
    assert {w["lang"] for w in mono_windows} == {"es"}
    assert out.loc["monolingual", "whisper_base_lang"] == "es"
    assert not out.loc["monolingual", "code_switch"]
    assert out["error"].isna().all()


@pytest.mark.slow
def test_a_music_intro_never_decides_the_files_language(tmp_path):
    intro = non_speech("music", 70.0, seed=4)
    silence = np.zeros(20 * SR, np.float32)
    speech = _speech("es", 60.0, tmp_path, seed=2)
    write_wav(tmp_path / "intro.wav", np.concatenate([intro, silence, speech]), SR)
    short = _speech("en", 12.0, tmp_path, seed=3)
    write_wav(tmp_path / "short.wav", short, SR)
    out = _run([tmp_path / "intro.wav", tmp_path / "short.wav"])

    assert out.loc["intro", "whisper_base_lang"] == "es"
    windows = out.loc["intro", "whisper_base_windows"]
    assert len(windows) == 5  # 150 s: 5 windows of 30 s
    assert windows[0]["lang"] == NO_SPEECH and windows[0]["prob"] is None  # music
    assert windows[-1]["lang"] == "es"
    # a window with speech of only one language: no code switch
    assert not out.loc["intro", "code_switch"]
    # a file of one window: no windows listed, code_switch unknown
    assert out.loc["short", "whisper_base_windows"] is None
    assert pd.isna(out.loc["short", "code_switch"])
    # max_windows=1: only the start of the file is heard, and it is music
    first = _run([tmp_path / "intro.wav"], max_windows=1)
    assert first.loc["intro", "whisper_base_lang"] == NO_SPEECH


@pytest.mark.s3
@pytest.mark.slow
def test_windows_of_a_long_file_on_s3_read_a_bounded_number_of_bytes(s3_server, s3_bucket):
    fs, bucket = s3_bucket
    rng = np.random.default_rng(8)
    pcm = rng.integers(-20_000, 20_000, size=20 * 60 * SR, dtype=np.int16)
    key = f"{bucket}/long/twenty-minutes.wav"
    local = Path(f"/tmp/{bucket}.wav")
    sf.write(local, pcm, SR, subtype="PCM_16")
    fs.put(str(local), key)
    local.unlink()
    size = fs.size(key)

    s3_server.traffic.clear()
    block = 256 * 1024
    found = decode_windows(
        f"s3://{key}",
        config=AudioConfig(block_size=block),
        storage_options=s3_server.storage_options,
        windows=8,
    )
    starts = spread_windows(0.0, 30.0, 1200.0, 8)
    assert [at for at, _ in found] == pytest.approx(starts)
    for at, wave in found:
        first = round(at * SR)
        np.testing.assert_array_equal(wave, pcm[first : first + 30 * SR].astype(np.float32) / 32768)
    gets = s3_server.traffic.matching(f"/{key}", "GET")
    fetched = s3_server.traffic.bytes_sent(f"/{key}", "GET")
    windows_bytes = 8 * 30 * SR * 2
    print(f"\n8 windows: {fetched} bytes in {len(gets)} GETs of a {size}-byte file")
    assert gets and all(r.range for r in gets), "every GET must be a range request"
    assert windows_bytes <= fetched <= windows_bytes + 8 * 4 * block
    assert fetched < size / 4


@pytest.mark.parametrize(
    "suffix", [".flac", ".opus", ".m4a"]
)  # (libsndfile crashes writing long Vorbis)
def test_windows_of_compressed_files_are_the_windows_read_alone(tmp_path, suffix):
    """Every decoder path (libsndfile seeks; PyAV seeks back to a keyframe and skips forward) gives
    each window of a long file the samples that reading that window alone gives (after its first
    two AAC frames: a decoder restarted at a seek point has no history to overlap the first with)."""
    from lidframe.testing.files import write_audio

    t = np.arange(150 * SR) / SR
    # a tone whose pitch rises through the file: a window from the wrong place would not match
    wave = (0.3 * np.sin(2 * np.pi * (200 + 2 * t) * t)).astype(np.float32)
    path = tmp_path / f"long{suffix}"
    write_audio(path, suffix, wave, SR)
    found = decode_windows(str(path), windows=4)
    assert [at for at, _ in found] == pytest.approx([0.0, 40.0, 80.0, 120.0], abs=0.05)
    for at, samples in found:
        alone = decode_windows(str(path), offset=at, duration=30.0)[0][1]
        assert abs(len(samples) - 30 * SR) <= SR // 100
        n = min(len(samples), len(alone))
        np.testing.assert_allclose(samples[2048:n], alone[2048:n], atol=2e-3)
