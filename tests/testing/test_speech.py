"""lidframe.testing: the synthetic speech other tests rely on must decode and be labelled right."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from lidframe.audio import decode_window
from lidframe.testing import FORMATS, TEXTS, VOICES, make_corpus, sine, synthesize, write_wav

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed"
)


def _rms(wave: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))


@needs_espeak
@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".opus", ".m4a"])
def test_every_format_decodes_to_speech_of_the_returned_duration(tmp_path, suffix):
    path = tmp_path / f"clip{suffix}"
    seconds = synthesize(TEXTS["de"][0], "de", path, variant="f3", speed=170, pitch=40)
    assert 2.0 < seconds < 10.0
    wave = decode_window(str(path))
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(wave.shape[0] / 16_000 - seconds) < 0.2
    assert _rms(wave) > 1e-3


@needs_espeak
def test_fmt_overrides_extension_and_sample_rate_is_honoured(tmp_path):
    path = tmp_path / "clip.bin"
    synthesize(TEXTS["en"][1], "en", path, fmt="flac", sample_rate=8_000)
    info = sf.info(str(path))
    assert (info.format, info.samplerate, info.channels) == ("FLAC", 8_000, 1)


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\.mp3"):
        synthesize("hello there", "en", tmp_path / "clip.mp3")


def test_missing_espeak_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        synthesize("hello there", "en", tmp_path / "clip.wav")


@needs_espeak
def test_make_corpus_rows_labels_files_and_determinism(tmp_path):
    df = make_corpus(
        tmp_path / "a",
        languages=["fi", "no"],
        per_language=3,
        seed=3,
        formats=(".wav", ".opus"),
        start_index=2,
    )
    assert list(df.columns) == ["id", "audio", "label"]
    assert df["id"].tolist() == ["fi-002", "fi-003", "fi-004", "no-002", "no-003", "no-004"]
    assert df["label"].tolist() == ["fi"] * 3 + ["no"] * 3
    assert df["audio"].tolist() == [
        "fi-002.wav",
        "fi-003.opus",
        "fi-004.wav",
        "no-002.opus",
        "no-003.wav",
        "no-004.opus",
    ]
    for name in df["audio"]:
        assert (tmp_path / "a" / name).stat().st_size > 1000
        assert _rms(decode_window(str(tmp_path / "a" / name))) > 1e-3
    # Same seed, language and index: the same clip, whatever else is asked for.
    again = make_corpus(tmp_path / "b", languages=["no"], per_language=1, seed=3, start_index=3)
    assert again["id"].tolist() == ["no-003"]
    first, _ = sf.read(str(tmp_path / "a" / "no-003.wav"))
    second, _ = sf.read(str(tmp_path / "b" / "no-003.wav"))
    np.testing.assert_array_equal(first, second)


def test_make_corpus_refuses_unknown_language(tmp_path):
    with pytest.raises(ValueError, match="xx"):
        make_corpus(tmp_path, languages=["en", "xx"])


def test_texts_are_whisper_languages_with_voices():
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    assert len(TEXTS) >= 26
    assert set(TEXTS) <= set(LANGUAGES), sorted(set(TEXTS) - set(LANGUAGES))
    assert set(VOICES) == set(TEXTS)
    for lang, texts in TEXTS.items():
        assert 3 <= len(texts) <= 5, lang
        assert len(set(texts)) == len(texts), lang
        for text in texts:
            assert 10 <= len(text.split()) <= 25, (lang, text)
    assert set(FORMATS) == {".wav", ".flac", ".ogg", ".opus", ".m4a"}


@needs_espeak
def test_every_voice_exists(tmp_path):
    for lang, voice in VOICES.items():
        seconds = synthesize(TEXTS[lang][0][:40], voice, tmp_path / f"{lang}.wav")
        assert seconds > 0.5, lang


def test_sine_and_multichannel_wav(tmp_path):
    tone = sine(0.5, sample_rate=8_000, freq=100.0)
    assert tone.dtype == np.float32 and tone.shape == (4_000,)
    assert abs(_rms(tone) - 0.5 / np.sqrt(2)) < 1e-3
    write_wav(tmp_path / "st.wav", tone, sample_rate=8_000, channels=3)
    data, rate = sf.read(str(tmp_path / "st.wav"), always_2d=True)
    assert rate == 8_000 and data.shape == (4_000, 3)
    np.testing.assert_allclose(data[:, 0], data[:, 2])
    wave = decode_window(str(tmp_path / "st.wav"))
    assert abs(wave.shape[0] - 8_000) <= 1  # resampled to 16 kHz


@needs_espeak
@pytest.mark.parametrize("suffix", [".opus", ".m4a", ".flac"])
def test_same_input_gives_same_bytes(tmp_path, suffix):
    for name in ("a", "b"):
        synthesize(TEXTS["sv"][2], "sv", tmp_path / f"{name}{suffix}", variant="m2")
    assert (tmp_path / f"a{suffix}").read_bytes() == (tmp_path / f"b{suffix}").read_bytes()


@needs_espeak
def test_noise_floor_is_seeded(tmp_path):
    text = TEXTS["it"][0]
    synthesize(text, "it", tmp_path / "clean.wav")
    synthesize(text, "it", tmp_path / "a.wav", noise_db=-40, noise_seed=5)
    synthesize(text, "it", tmp_path / "b.wav", noise_db=-40, noise_seed=5)
    clean, a, b = (sf.read(str(tmp_path / f"{n}.wav"))[0] for n in ("clean", "a", "b"))
    np.testing.assert_array_equal(a, b)
    assert 0.005 < _rms(a - clean) < 0.02  # -40 dBFS is an RMS of 0.01
