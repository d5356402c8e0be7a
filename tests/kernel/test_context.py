"""The least encoder context each clip gets: short speech may get Whisper's full 30 s.

A model family registered here records the context each clip was run with; real espeak-ng speech
through real voice activity (silero-vad) says how much speech each clip has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import lidframe.speech._config as listen_module
from lidframe.kernel import KernelConfig, identify_partition
from lidframe.models import LidModel, parse_model, register_family
from lidframe.speech import SpeechConfig, listen
from lidframe.testing import TEXTS, synthesize


class ContextRecorder(LidModel):
    """Answers 'en'; remembers the context each call gave and the seconds of its clips."""

    seen: ClassVar[list[tuple[float | None, float]]] = []

    @property
    def labels(self) -> tuple[str, ...]:
        return ("en", "de")

    def predict_batch(self, waveforms):  # type: ignore[no-untyped-def]
        return np.tile(np.array([[0.9, 0.1]], dtype=np.float32), (len(waveforms), 1))

    def predict_prepared(self, features, batch_size=None, *, context=None, **kw):  # type: ignore[no-untyped-def]
        ContextRecorder.seen.extend((context, len(f) / 16_000) for f in features)
        return super().predict_prepared(features, batch_size, context=context, **kw)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("context")
    rows = []
    for i, text in enumerate(
        [
            "Good morning to you.",
            " ".join(TEXTS["en"][:2]),
            "See you later.",
            " ".join(TEXTS["en"][2:4]),
        ]
    ):
        path = folder / f"clip-{i}.wav"
        synthesize(text, "en", path, speed=175)
        rows.append({"id": f"clip-{i}", "audio": str(path)})
    return pd.DataFrame(rows)


def _contexts(clips: pd.DataFrame, speech: SpeechConfig) -> list[tuple[Any, float]]:
    register_family("test-context", ContextRecorder)
    ContextRecorder.seen = []
    config = KernelConfig(models=(parse_model("test-context:x"),), batch_size=8, speech=speech)
    out = identify_partition(clips, config)
    assert out["error"].isna().all()
    return sorted(ContextRecorder.seen, key=lambda seen: seen[1])


def test_short_speech_gets_full_context_and_the_rest_the_least(
    clips: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(listen_module, "SHORT_SPEECH", 2.0)
    monkeypatch.setattr(listen_module, "SPEECH_CONTEXT", 10.0)
    seen = _contexts(clips, SpeechConfig())
    assert len(seen) == 4
    short, long = seen[:2], seen[2:]
    assert all(seconds < 2.0 and context is None for context, seconds in short), seen
    assert all(seconds > 2.0 and context == 10.0 for context, seconds in long), seen
    # a number asks for that least context whatever the speech; full is full
    assert {c for c, _ in _contexts(clips, SpeechConfig(context=5.0))} == {5.0}
    assert {c for c, _ in _contexts(clips, SpeechConfig(context="full"))} == {None}


def test_the_rule_is_part_of_the_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """``speech`` meant at least 20 s and no rule when job ids were pinned; any other meaning
    is written out, so a job whose answers would differ gets another id."""
    monkeypatch.setattr(listen_module, "SHORT_SPEECH", 0.0)
    monkeypatch.setattr(listen_module, "SPEECH_CONTEXT", 20.0)
    assert listen_module._context_identity("speech") == "speech"
    monkeypatch.setattr(listen_module, "SHORT_SPEECH", 2.5)
    assert listen_module._context_identity("speech") == (
        "speech: at least 20 s, the clip at full under 2.5 s of speech"
    )
    assert listen_module._context_identity(10.0) == 10.0
    assert SpeechConfig().context_for(1.0) is None and SpeechConfig().context_for(3.0) == 20.0


def test_short_speech_is_heard_as_the_whole_clip_the_rest_as_its_speech(tmp_path: Path) -> None:
    """Under SHORT_SPEECH the models hear the clip as decoded (its silence too, as ``full``);
    with more speech they hear the speech only."""
    sr = 16_000
    for text, short in (("Yes.", True), (" ".join(TEXTS["en"][:2]), False)):
        synthesize(text, "en", tmp_path / "s.wav", speed=175)
        speech, _ = sf.read(tmp_path / "s.wav", dtype="float32")
        wave = np.concatenate([np.zeros(3 * sr, np.float32), speech, np.zeros(3 * sr, np.float32)])
        heard = listen(wave, SpeechConfig(), sr)
        assert not heard.no_speech and heard.speech_seconds is not None
        assert (heard.speech_seconds < listen_module.SHORT_SPEECH) == short, heard.speech_seconds
        if short:
            assert len(heard.wave) == len(wave)  # the whole clip, silence included
        else:
            assert len(heard.wave) < len(wave) - 5 * sr  # the six seconds of silence cut
