"""Whisper LID on real whisper-base weights, checked against faster-whisper on the same weights."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from lidframe import ConfigError, ModelError, decode_window, load_model, parse_model
from lidframe.models.whisper_weights import packaged_whisper_dir, resolve_whisper_source
from lidframe.testing import TEXTS, make_corpus


@pytest.fixture(scope="module")
def whisper():
    return load_model(parse_model("whisper-base", device="cpu"))


def test_registry_names_and_errors():
    spec = parse_model("whisper-base")
    assert (spec.family, spec.source, spec.alias) == (
        "whisper",
        "packaged:whisper-base",
        "whisper_base",
    )
    assert parse_model("whisper:openai/whisper-small").source == "openai/whisper-small"
    with pytest.raises(ConfigError, match="valid models: .*whisper-base.*whisper:SOURCE"):
        parse_model("wisper-base")
    with pytest.raises(ConfigError, match="device"):
        parse_model("whisper-base", device="tpu")


@pytest.mark.slow
def test_converted_weights_fill_every_parameter():
    from transformers import WhisperForConditionalGeneration

    location = resolve_whisper_source("packaged:whisper-base")
    _, info = WhisperForConditionalGeneration.from_pretrained(location, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]


@pytest.mark.slow
def test_labels_are_the_99_language_tokens(whisper):
    assert len(whisper.labels) == 99 and len(set(whisper.labels)) == 99
    assert whisper.labels[:3] == ("en", "zh", "de")
    assert "jv" in whisper.labels and "jw" not in whisper.labels


@pytest.mark.slow
def test_batch_equals_single_and_rows_sum_to_one(whisper, tmp_path):
    from lidframe.testing import synthesize

    waves = []
    for lang in ("de", "es", "fi"):
        synthesize(TEXTS[lang][0], lang, tmp_path / f"{lang}.wav")
        waves.append(decode_window(str(tmp_path / f"{lang}.wav")))
    batch = whisper.predict_batch(waves)
    assert batch.shape == (3, 99) and np.allclose(batch.sum(axis=1), 1.0, atol=1e-4)
    for i, wave in enumerate(waves):
        np.testing.assert_allclose(whisper.predict_batch([wave])[0], batch[i], atol=2e-5)
    assert whisper.predict_batch([]).shape == (0, 99)


def test_missing_weights_say_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="whisper-base"):
        load_model(parse_model("whisper:openai/whisper-tiny", device="cpu"))
    with pytest.raises(ModelError, match="does not exist"):
        load_model(parse_model(f"whisper:{tmp_path}/nowhere", device="cpu"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="neither a transformers Whisper directory"):
        load_model(parse_model(f"whisper:{tmp_path}/empty", device="cpu"))


def test_corrupt_faster_whisper_dir_is_a_clear_error(tmp_path):
    src = packaged_whisper_dir()
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(src / name, bad / name)
    (bad / "model.bin").write_bytes((src / "model.bin").read_bytes()[:5000])
    with pytest.raises(ModelError, match="not a readable CTranslate2 model.bin"):
        load_model(parse_model(f"whisper:{bad}", device="cpu"))


@pytest.mark.slow
def test_agrees_with_faster_whisper_on_generated_speech(whisper, tmp_path):
    """>= 98% top-1 agreement and median |dp| < 0.02 over >= 100 clips in >= 20 languages."""
    from faster_whisper import WhisperModel

    languages = sorted(TEXTS)[:21]
    assert len(languages) >= 20
    corpus = make_corpus(tmp_path, languages=languages, per_language=5, seed=7)
    assert len(corpus) >= 100
    waves = [decode_window(str(tmp_path / a)) for a in corpus["audio"]]

    ours = np.concatenate(
        [whisper.predict_batch(waves[i : i + 8]) for i in range(0, len(waves), 8)]
    )
    our_lang = [whisper.whisper_codes[j] for j in ours.argmax(axis=1)]
    our_prob = ours.max(axis=1)

    peer = WhisperModel(
        str(packaged_whisper_dir()), device="cpu", compute_type="float32", cpu_threads=2
    )
    peer_lang, peer_prob = [], []
    for wave in waves:
        lang, prob, _ = peer.detect_language(wave)
        peer_lang.append(lang)
        peer_prob.append(prob)

    agreement = np.mean([a == b for a, b in zip(our_lang, peer_lang, strict=True)])
    diff = np.median(np.abs(our_prob - np.asarray(peer_prob)))
    print(f"agreement {agreement:.3f} over {len(waves)} clips, median |dp| {diff:.5f}")
    assert agreement >= 0.98
    assert diff < 0.02


@pytest.mark.slow
def test_transformers_directory_loads_as_is(whisper, tmp_path):
    # A plain transformers directory (here: the converted cache copied elsewhere) is used in place.
    hf_dir = tmp_path / "hf-whisper-base"
    shutil.copytree(resolve_whisper_source("packaged:whisper-base"), hf_dir)
    assert resolve_whisper_source(str(hf_dir)) == str(hf_dir)
    other = load_model(parse_model(f"whisper:{hf_dir}", device="cpu"))
    assert other is not whisper and other.labels == whisper.labels
    wave = np.sin(np.linspace(0, 2000, 32000)).astype(np.float32) * 0.1
    np.testing.assert_allclose(
        other.predict_batch([wave]), whisper.predict_batch([wave]), atol=1e-6
    )
