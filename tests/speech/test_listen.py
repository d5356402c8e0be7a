"""Speech-aware identification through the real kernel, real silero-vad and real whisper-base weights.

Non-speech is answered ``und`` without reaching a model, labelled speech almost never is, silence
before speech changes nothing, and ``context="full"`` gives the model's own full-context numbers
(the ones ``test_whisper`` checks against faster-whisper).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from lidframe.kernel import NO_SPEECH, KernelConfig, identify_partition
from lidframe.models import load_model, parse_model
from lidframe.speech import SpeechConfig, listen
from lidframe.testing import NON_SPEECH_KINDS, TEXTS, make_corpus, non_speech, synthesize, write_wav

SR = 16_000
WHISPER = parse_model("whisper-base", device="cpu")


def _frame(paths: list[Path], labels: list[str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "id": pd.array([p.stem for p in paths], dtype="string"),
            "audio": pd.array([str(p) for p in paths], dtype="string"),
            "offset": np.nan,
            "duration": np.nan,
        }
    )
    if labels is not None:
        frame["label"] = pd.array(labels, dtype="string")
    return frame


def _identify(frame: pd.DataFrame, **speech: object) -> pd.DataFrame:
    config = KernelConfig(models=(WHISPER,), speech=SpeechConfig(**speech))  # type: ignore[arg-type]
    return identify_partition(frame, config).set_index("id")


@pytest.mark.slow
def test_non_speech_is_und_without_an_error(tmp_path):
    paths = []
    for kind in NON_SPEECH_KINDS:
        for seed in range(4):
            seconds = (0.05, 2.0, 7.5, 30.0)[seed] if kind != "burst" else 1.0 + seed
            path = tmp_path / f"{kind}-{seed}.wav"
            write_wav(path, non_speech(kind, seconds, seed), SR)
            paths.append(path)
    out = _identify(_frame(paths))
    und = out["whisper_base_lang"] == NO_SPEECH
    print(out.loc[~und, ["speech_seconds", "whisper_base_lang"]])
    assert und.mean() >= 0.95, out.loc[~und, ["speech_seconds", "whisper_base_lang"]]
    assert out["error"].isna().all(), out["error"].dropna()
    assert out.loc[und, "whisper_base_prob"].isna().all()
    assert out.loc[und, "whisper_base_topk"].isna().all()
    assert (out.loc[und, "speech_seconds"] < SpeechConfig().min_speech).all()
    expected = [sf.info(str(p)).duration for p in paths]
    np.testing.assert_allclose(out["audio_seconds"], expected, rtol=1e-4)

    # min_speech 0 never answers und: the model hears the clip and answers (Whisper: a language)
    answered = _identify(_frame(paths[:4]), min_speech=0.0)
    assert (answered["whisper_base_lang"] != NO_SPEECH).all()
    assert answered["whisper_base_prob"].notna().all()
    # without voice activity detection nothing is und and speech is not measured
    no_vad = _identify(_frame(paths[:4]), vad=False)
    assert (no_vad["whisper_base_lang"] != NO_SPEECH).all()
    assert no_vad["speech_seconds"].isna().all() and no_vad["audio_seconds"].notna().all()


@pytest.mark.slow
def test_labelled_speech_is_almost_never_und(tmp_path):
    corpus = make_corpus(tmp_path, per_language=3, seed=11, noise_db=-50)
    assert len(corpus) >= 100 and corpus["label"].nunique() >= 30
    out = _identify(_frame([tmp_path / a for a in corpus["audio"]], list(corpus["label"])))
    und = out["whisper_base_lang"] == NO_SPEECH
    assert und.mean() <= 0.01, out.loc[und, ["speech_seconds", "audio_seconds"]]
    assert (out["speech_seconds"] <= out["audio_seconds"] + 1e-3).all()
    assert (out["speech_seconds"] > 0.5 * out["audio_seconds"]).mean() > 0.9


@pytest.mark.slow
def test_twelve_seconds_of_silence_before_speech_change_nothing(tmp_path):
    rng = np.random.default_rng(3)
    plain, padded = [], []
    # languages whisper-base identifies in espeak-ng's voices (a low-confidence wrong answer, as
    # it gives espeak's Russian, flips on any change of input, silence or not)
    for lang in ("en", "de", "es", "fr", "it"):
        path = tmp_path / f"{lang}.wav"
        synthesize(TEXTS[lang][1], lang, path, noise_db=-60)
        wave, _ = sf.read(path, dtype="float32")
        plain.append(path)
        for name, lead in (
            ("silence", np.zeros(12 * SR, np.float32)),
            ("hiss", (0.0005 * rng.standard_normal(12 * SR)).astype(np.float32)),
        ):
            padded_path = tmp_path / f"{lang}-{name}.wav"
            write_wav(padded_path, np.concatenate([lead, wave]), SR)
            padded.append(padded_path)
    base = _identify(_frame(plain))
    late = _identify(_frame(padded))
    assert (base["whisper_base_lang"] == base.index).sum() >= 4, base["whisper_base_lang"]
    for path in padded:
        lang = path.stem.split("-")[0]
        assert late.loc[path.stem, "whisper_base_lang"] == base.loc[lang, "whisper_base_lang"]
        assert late.loc[path.stem, "whisper_base_prob"] == pytest.approx(
            base.loc[lang, "whisper_base_prob"], abs=0.1
        )
        assert late.loc[path.stem, "audio_seconds"] == pytest.approx(
            base.loc[lang, "audio_seconds"] + 12, abs=0.01
        )


@pytest.mark.slow
def test_full_context_gives_the_models_own_full_context_numbers(tmp_path):
    corpus = make_corpus(tmp_path, languages=["en", "de", "pl", "sv"], per_language=2, seed=5)
    paths = [tmp_path / a for a in corpus["audio"]]
    # a clip with a long pause: speech context cuts it, full context keeps the clip as decoded
    first, _ = sf.read(paths[0], dtype="float32")
    write_wav(tmp_path / "paused.wav", np.concatenate([first, np.zeros(4 * SR), first]), SR)
    paths.append(tmp_path / "paused.wav")
    out = _identify(_frame(paths), context="full")
    model = load_model(WHISPER)
    waves = [sf.read(p, dtype="float32")[0] for p in paths]
    reference = model.predict_batch(waves)  # full context: what test_whisper checks
    probs = out["whisper_base_prob"].to_numpy()
    np.testing.assert_allclose(probs, reference.max(axis=1), rtol=1e-4, atol=1e-5)
    assert list(out["whisper_base_lang"]) == [model.labels[i] for i in reference.argmax(axis=1)]

    # the speech context heard less of the paused clip, and ran on fewer encoder frames
    heard = listen(waves[-1], SpeechConfig(), SR)
    assert len(heard.wave) < len(waves[-1]) - 3 * SR
    assert model.padded_length(model.prepare(heard.wave).shape[-1], 10.0) < 3000


def test_speech_only_cuts_silence_and_long_pauses_and_keeps_short_gaps(tmp_path):
    path = tmp_path / "en.wav"
    synthesize(TEXTS["en"][0], "en", path)
    speech, _ = sf.read(path, dtype="float32")
    quiet = np.zeros(3 * SR, np.float32)
    wave = np.concatenate([quiet, speech, quiet, speech, quiet])
    heard = listen(wave, SpeechConfig(), SR)
    assert not heard.no_speech
    assert heard.audio_seconds == pytest.approx(len(wave) / SR)
    assert heard.speech_seconds == pytest.approx(2 * len(speech) / SR, rel=0.25)
    # the 3 s silences are gone; espeak's short pauses between words (< keep_gap) stay
    assert len(heard.wave) <= 2 * len(speech) + SR // 2
    assert len(heard.wave) >= heard.speech_seconds * SR
    full = listen(wave, SpeechConfig(context="full"), SR)
    assert len(full.wave) == len(wave) and full.speech_seconds == heard.speech_seconds
    off = listen(wave, SpeechConfig(vad=False), SR)
    assert off.speech_seconds is None and len(off.wave) == len(wave)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"context": "half"}, "context must be speech, full or seconds from 1 to 30"),
        ({"context": 0.5}, "context must be speech, full or seconds from 1 to 30"),
        ({"min_speech": -1.0}, "min_speech must be >= 0"),
        ({"threshold": 1.5}, "VAD threshold must be in (0, 1)"),
    ],
)
def test_bad_speech_settings_are_one_line_errors(settings, message):
    from lidframe.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SpeechConfig(**settings)  # type: ignore[arg-type]
