"""Each model hears a clip at its own sample rate, and each row says its file's own rate.

Real files at 8, 22.05, 44.1 and 48 kHz (WAV and FLAC written with libsndfile, M4A/AAC encoded with
PyAV's bundled encoder, so one goes through FFmpeg), decoded in the kernel's decoder processes; model
families registered here at 8 kHz and 16 kHz that keep every waveform their ``prepare`` gets, so the
tests see what each model received: how many samples, at which frequency a tone lies in them, and
whether two models at one rate got the very same array.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from lidframe.kernel import KernelConfig, identify_partition
from lidframe.models import LidModel, ModelSpec, register_family
from lidframe.speech import SpeechConfig
from lidframe.testing import TEXTS, sine, synthesize
from lidframe.testing.files import write_audio

TONE_HZ = 440.0


class Keeping(LidModel):
    """Keeps every waveform :meth:`prepare` gets (by model name); answers ``en``."""

    got: ClassVar[dict[str, list[np.ndarray]]] = {}

    @property
    def labels(self) -> tuple[str, ...]:
        return ("en", "de")

    def prepare(self, waveform: np.ndarray) -> np.ndarray:
        Keeping.got.setdefault(self.spec.name, []).append(waveform)
        return super().prepare(waveform)

    def predict_batch(self, waveforms):  # type: ignore[no-untyped-def]
        return np.tile(np.array([[0.9, 0.1]], dtype=np.float32), (len(waveforms), 1))


class Narrowband(Keeping):
    """A telephone-band model: it takes 8 kHz waveforms, and at least 50 ms of them."""

    sample_rate = 8_000
    steps_per_second = 8_000
    min_samples = 400


register_family("test-keep", Keeping)
register_family("test-narrow", Narrowband)


def _spec(family: str, source: str) -> ModelSpec:
    return ModelSpec(name=f"{family}:{source}", family=family, source=source, device="cpu")


def peak_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * rate / len(wave))


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """440 Hz tones of distinct lengths at several rates, a clip too short for the 8 kHz model and
    a missing file; ``seconds`` is each tone's length."""
    folder = tmp_path_factory.mktemp("rates")
    rows = []
    for name, rate, seconds in (
        ("phone.wav", 8_000, 1.0),
        ("cd.flac", 44_100, 1.25),
        ("studio.wav", 48_000, 1.5),
        ("radio.m4a", 22_050, 1.75),  # AAC: FFmpeg (PyAV) decodes it, libsndfile cannot
        ("click.wav", 8_000, 0.03),  # 480 samples at 16 kHz, but 240 at 8 kHz: too short
    ):
        write_audio(folder / name, "." + name.split(".")[1], sine(seconds, rate, TONE_HZ), rate)
        rows.append({"id": name, "audio": str(folder / name), "seconds": seconds})
    rows.append({"id": "gone.wav", "audio": str(folder / "gone.wav"), "seconds": np.nan})
    return pd.DataFrame(rows)


def _identify(tones: pd.DataFrame, *specs: ModelSpec) -> pd.DataFrame:
    Keeping.got.clear()
    manifest = tones[["id", "audio"]].assign(offset=np.nan, duration=np.nan)
    config = KernelConfig(models=specs, decode_threads=2, speech=SpeechConfig(vad=False))
    return identify_partition(manifest, config).set_index("id")


def test_each_row_says_its_files_own_sample_rate(tones: pd.DataFrame) -> None:
    out = _identify(tones, _spec("test-keep", "a"))
    assert str(out["sample_rate"].dtype) == "Int32"
    rates = out["sample_rate"].astype(object).where(out["sample_rate"].notna(), None)
    assert rates.to_dict() == {
        "phone.wav": 8_000,
        "cd.flac": 44_100,
        "studio.wav": 48_000,
        "radio.m4a": 22_050,
        "click.wav": 8_000,  # decoded, though too short for the model: its rate is known
        "gone.wav": None,  # not decoded: no rate
    }
    assert out.loc["gone.wav", "error"].startswith("not_found: ")
    # the audio is resampled to 16 kHz before the models, whatever the file's rate
    heard = sorted(len(w) for w in Keeping.got["test-keep:a"])
    assert heard[0] == 480
    assert heard[1:] == pytest.approx([16_000, 20_000, 24_000, 28_000], abs=0.03 * 16_000)


def test_a_model_at_8_khz_gets_8_khz_samples_and_one_at_16_khz_the_decoded_ones(
    tones: pd.DataFrame,
) -> None:
    specs = (
        _spec("test-keep", "wide"),
        _spec("test-narrow", "one"),
        _spec("test-narrow", "two"),
        _spec("test-keep", "wide2"),
    )
    out = _identify(tones, *specs)
    answered = tones[tones["seconds"] >= 1.0]
    assert out.loc[answered["id"], "error"].isna().all()
    for spec in specs:
        assert (out.loc[answered["id"], f"{spec.alias}_lang"] == "en").all()
    for source, rate in (("wide", 16_000), ("one", 8_000)):
        got = sorted(Keeping.got[specs[0 if rate == 16_000 else 1].name], key=len)
        assert len(got) == len(answered)
        for wave, seconds in zip(got, sorted(answered["seconds"]), strict=True):
            # the tone's length and pitch at the model's rate: samples of that rate, not the
            # 16 kHz ones relabelled (AAC pads its last frame: a few ms more)
            assert len(wave) == pytest.approx(seconds * rate, abs=0.03 * rate), source
            assert peak_hz(wave, rate) == pytest.approx(TONE_HZ, abs=2.0), source
            assert wave.dtype == np.float32
    # once per rate and window: the models at one rate get the same array, not copies
    for a, b in ((specs[0], specs[3]), (specs[1], specs[2])):
        assert [id(w) for w in Keeping.got[a.name]] == [id(w) for w in Keeping.got[b.name]]
    wide = {id(w) for w in Keeping.got[specs[0].name]}
    assert not wide & {id(w) for w in Keeping.got[specs[1].name]}
    # a model's minimum length counts at its own rate: 30 ms is 240 samples at 8 kHz, under 400
    click = out.loc["click.wav", "error"]
    assert click.startswith("too_short: ") and "at least 0.050 s" in click
    assert all(pd.isna(out.loc["click.wav", f"{s.alias}_lang"]) for s in specs)


@pytest.mark.slow
def test_telephone_speech_is_heard_by_whisper_and_an_8_khz_model(tmp_path: Path) -> None:
    """Real speech at 8 kHz (a telephone's band) and at 44.1 kHz in AAC, with voice activity
    detection: whisper-base hears it at 16 kHz and still knows the language; the 8 kHz model hears
    the same speech in half as many samples."""
    rows = []
    for lang, name, rate in (("en", "call.wav", 8_000), ("de", "podcast.m4a", 44_100)):
        synthesize(TEXTS[lang][0], lang, tmp_path / name, sample_rate=rate, noise_db=-40)
        rows.append({"id": name, "audio": str(tmp_path / name), "label": lang})
    manifest = pd.DataFrame(rows).assign(offset=np.nan, duration=np.nan)
    wide, narrow = _spec("test-keep", "speech"), _spec("test-narrow", "speech")
    config = KernelConfig.for_models(["whisper-base", wide.name, narrow.name], batch_size=2)
    Keeping.got.clear()
    out = identify_partition(manifest, config).set_index("id")
    assert out["error"].isna().all()
    assert out["sample_rate"].tolist() == [8_000, 44_100]
    assert (out["whisper_base_lang"] == out["label"]).all()
    assert (out["speech_seconds"] > 1.0).all()
    # the 8 kHz model heard the speech voice activity cut at 16 kHz, at 8 kHz: half the samples
    at_16k = sorted(len(w) for w in Keeping.got[wide.name])
    at_8k = sorted(len(w) for w in Keeping.got[narrow.name])
    assert len(at_8k) == 2 and at_16k[0] > 16_000
    assert at_8k == pytest.approx([n / 2 for n in at_16k], abs=1)
