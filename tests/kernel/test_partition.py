"""The partition kernel's blast radius: one bad clip costs one row, never its batch or partition.

Real whisper-base weights and real files for the decode side (a 2 ms clip and a header claiming a
sample rate of 2^31-1 beside good speech); small model families registered here for the model side,
because the point is what the kernel does when *any* model raises on some clips: it bisects the
batch, gives the offending clips ``model_failed`` errors and keeps every other answer, and tells a
broken model (it fails a known-good canary clip too) from bad clips.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from lidframe.errors import ModelError
from lidframe.kernel import KernelConfig, identify_partition
from lidframe.models import LidModel, ModelSpec, parse_model, register_family
from lidframe.speech import SpeechConfig
from lidframe.testing import TEXTS, sine, synthesize
from lidframe.testing import write_wav as _write_wav
from tests.fixtures.paths import ECAPA_DIR


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    _write_wav(path, samples, rate)
    return path


def speech(lang: str, path: Path) -> Path:
    synthesize(TEXTS[lang][0], lang, path)
    return path


POISON = 7_777  # clips of exactly this many samples make the flaky model raise


class FlakyLid(LidModel):
    """Answers 'en' for everything, but raises on any batch holding a clip of POISON samples
    (like a model whose feature code cannot take one odd input)."""

    calls: ClassVar[list[int]] = []  # batch sizes seen, for the test to check bisection happened

    @property
    def labels(self) -> tuple[str, ...]:
        return ("en", "de")

    def predict_batch(self, waveforms):  # type: ignore[no-untyped-def]
        FlakyLid.calls.append(len(waveforms))
        if any(len(w) == POISON for w in waveforms):
            raise ValueError("cannot take a clip of 7777 samples")
        return np.tile(np.array([[0.9, 0.1]], dtype=np.float32), (len(waveforms), 1))


class BrokenLid(FlakyLid):
    """A model whose device is gone: every call fails."""

    def predict_batch(self, waveforms):  # type: ignore[no-untyped-def]
        raise RuntimeError("CUDA error: device lost")


class PickyLid(FlakyLid):
    """Fails on every clip shorter than 2 s (all of some batches), works on the canary (1 s? no:
    on anything of exactly 16,000 samples)."""

    def predict_batch(self, waveforms):  # type: ignore[no-untyped-def]
        if any(len(w) < 32_000 and len(w) != 16_000 for w in waveforms):
            raise ValueError("too short for this model")
        return np.tile(np.array([[0.2, 0.8]], dtype=np.float32), (len(waveforms), 1))


class NanLid(FlakyLid):
    def predict_batch(self, waveforms):  # type: ignore[no-untyped-def]
        p = np.tile(np.array([[0.5, 0.5]], dtype=np.float32), (len(waveforms), 1))
        for i, w in enumerate(waveforms):
            if len(w) == POISON:
                p[i] = np.nan
        return p


for _name, _cls in (
    ("test-flaky", FlakyLid),
    ("test-broken", BrokenLid),
    ("test-picky", PickyLid),
    ("test-nan", NanLid),
):
    register_family(_name, _cls)


def _frame(paths: list[Path]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [p.stem for p in paths],
            "audio": pd.array([str(p) for p in paths], dtype="string"),
            "offset": np.nan,
            "duration": np.nan,
        }
    )


def _config(*models: str, batch_size: int = 8, vad: bool = False) -> KernelConfig:
    """Without voice activity detection unless asked: most tests here give models tones, which
    are not speech (and would be answered ``und`` without reaching a model). One least context
    for every clip (the default runs speech under 1 s in passes of its own), so the tests' batches
    are the rows they name."""
    return KernelConfig(
        models=tuple(parse_model(m) for m in models),
        batch_size=batch_size,
        speech=SpeechConfig(vad=vad, context=10.0),
    )


def _absurd_rate_wav(path: Path) -> Path:
    """A real WAV whose header then claims 2^31-1 Hz (and the matching byte rate)."""
    write_wav(path, sine(1.0), 16_000)
    data = bytearray(path.read_bytes())
    fmt = data.index(b"fmt ")
    data[fmt + 12 : fmt + 16] = struct.pack("<I", 2**31 - 1)
    data[fmt + 16 : fmt + 20] = struct.pack("<I", (2**31 - 1) * 2)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.slow
def test_good_rows_keep_their_answers_beside_tiny_and_absurd_header_clips(tmp_path):
    good = [speech(lang, tmp_path / f"{lang}.wav") for lang in ("en", "de", "es")]
    tiny = write_wav(tmp_path / "tiny.wav", sine(0.002), 16_000)  # 2 ms: 32 samples
    absurd = _absurd_rate_wav(tmp_path / "absurd.wav")
    paths = [good[0], tiny, good[1], absurd, good[2]]
    out = identify_partition(_frame(paths), _config("whisper-base", vad=True))
    by_id = out.set_index("id")
    assert by_id.loc["tiny", "error"].startswith("too_short: ")
    assert str(tiny) in by_id.loc["tiny", "error"]
    assert by_id.loc["absurd", "error"].startswith("bad_header: ")
    for path in good:
        row = by_id.loc[path.stem]
        assert pd.isna(row["error"]), row["error"]
        assert row["whisper_base_lang"] == path.stem  # espeak speech in en/de/es: whisper is right
        assert 0 < row["whisper_base_prob"] <= 1
    assert by_id.loc[["tiny", "absurd"], "whisper_base_lang"].isna().all()


def test_a_model_failure_costs_only_the_offending_row(tmp_path):
    paths = [write_wav(tmp_path / f"c{i}.wav", sine(0.5 + 0.1 * i), 16_000) for i in range(7)]
    poison = tmp_path / "poison.wav"
    write_wav(poison, sine(POISON / 16_000), 16_000)
    paths.insert(3, poison)  # one batch of 8, the poison in the middle
    FlakyLid.calls.clear()
    out = identify_partition(_frame(paths), _config("test-flaky:a"))
    by_id = out.set_index("id")
    assert by_id.loc["poison", "error"] == (
        "model_failed: test_flaky_a: ValueError: cannot take a clip of 7777 samples"
    )
    assert pd.isna(by_id.loc["poison", "test_flaky_a_lang"])
    others = by_id.drop(index="poison")
    assert others["error"].isna().all()
    assert (others["test_flaky_a_lang"] == "en").all()
    assert FlakyLid.calls[0] == 8 and 1 in FlakyLid.calls  # the batch was split down to the row


def test_a_failing_model_leaves_the_other_models_answers(tmp_path):
    paths = [write_wav(tmp_path / f"c{i}.wav", sine(0.6 + 0.1 * i), 16_000) for i in range(3)]
    write_wav(tmp_path / "poison.wav", sine(POISON / 16_000), 16_000)
    paths.append(tmp_path / "poison.wav")
    out = identify_partition(_frame(paths), _config("test-flaky:a", "test-nan:b", batch_size=4))
    row = out.set_index("id").loc["poison"]
    assert row["error"].startswith("model_failed: test_flaky_a: ValueError")
    assert "model_failed: test_nan_b: non-finite probabilities" in row["error"]
    fine = out.set_index("id").drop(index="poison")
    assert fine["error"].isna().all() and (fine["test_nan_b_prob"] == 0.5).all()


def test_a_broken_model_fails_the_partition_not_every_row(tmp_path):
    paths = [write_wav(tmp_path / f"c{i}.wav", sine(0.5 + 0.1 * i), 16_000) for i in range(4)]
    with pytest.raises(ModelError, match="test_broken_a fails on every clip of a batch"):
        identify_partition(_frame(paths), _config("test-broken:a"))


def test_clips_a_working_model_cannot_take_are_row_errors_even_a_whole_batch(tmp_path):
    # every clip of the first batch is refused, but the model answers the canary: bad clips,
    # not a broken model
    short = [write_wav(tmp_path / f"s{i}.wav", sine(0.5), 16_000) for i in range(4)]
    long = [write_wav(tmp_path / f"l{i}.wav", sine(3.0), 16_000) for i in range(4)]
    out = identify_partition(_frame(short + long), _config("test-picky:a", batch_size=4))
    by_id = out.set_index("id")
    assert by_id.loc[[p.stem for p in short], "error"].str.startswith("model_failed: ").all()
    assert by_id.loc[[p.stem for p in long], "test_picky_a_lang"].eq("de").all()


@pytest.mark.slow
def test_model_minimum_length_is_the_largest_of_the_models(tmp_path):
    ecapa = str(ECAPA_DIR)
    clip = write_wav(tmp_path / "c.wav", sine(0.03), 16_000)  # 480 samples: enough for Whisper,
    ok = write_wav(tmp_path / "ok.wav", sine(1.0), 16_000)  # not for ECAPA (640)
    out = identify_partition(_frame([clip, ok]), _config(f"speechbrain:{ecapa}", "test-flaky:a"))
    by_id = out.set_index("id")
    assert (
        by_id.loc["c", "error"].startswith("too_short: ") and "0.040 s" in by_id.loc["c", "error"]
    )
    assert pd.isna(by_id.loc["ok", "error"])


def test_model_spec_of_registered_family_round_trips():
    spec = parse_model("test-flaky:x")
    assert spec == ModelSpec(name="test-flaky:x", family="test-flaky", source="x")
