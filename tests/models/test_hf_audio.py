"""``hf-audio:SOURCE``: transformers audio-classification language-ID models (MMS-LID and the like).

The hub is unreachable here, so each test saves a small, randomly initialised
``Wav2Vec2ForSequenceClassification`` (the MMS-LID architecture: stable layer norm, attention mask)
with its ``Wav2Vec2FeatureExtractor`` into a temporary directory, and lidframe loads that directory
through the same ``AutoFeatureExtractor`` / ``AutoModelForAudioClassification`` code a hub id takes.
The classes, the loading code and the batching are real; only the weights are random, so the tests
check loading, label mapping, batching and the run, never accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

import lidframe
from lidframe.consensus import ConsensusConfig, consensus_frame
from lidframe.errors import ModelError
from lidframe.models import load_model, parse_model
from lidframe.store import open_store
from lidframe.testing import make_corpus
from tests.fixtures.paths import ECAPA_DIR

SPEECHBRAIN_DIR = ECAPA_DIR


def save_classifier(path: Path, id2label: list[str], *, attention_mask: bool = True) -> Path:
    """A tiny random wav2vec2 language classifier saved as ``save_pretrained`` writes it."""
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForSequenceClassification,
    )

    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        classifier_proj_size=16,
        num_labels=len(id2label),
        id2label=dict(enumerate(id2label)),
        label2id={label: i for i, label in enumerate(id2label)},
    )
    Wav2Vec2ForSequenceClassification(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16_000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=attention_mask,
    ).save_pretrained(path)
    return path


MMS_STYLE = ["eng", "deu", "fra", "spa", "cmn", "nob"]  # ISO 639-3, as MMS-LID names its classes


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    return save_classifier(tmp_path_factory.mktemp("mms-like"), MMS_STYLE)


def _clips(lengths=(16_000, 5_000, 40_000, 9_000)) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


def _direct(path: Path, wave: np.ndarray) -> np.ndarray:
    """transformers alone on one clip: the reference lidframe must reproduce."""
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    extractor = AutoFeatureExtractor.from_pretrained(path)
    model = AutoModelForAudioClassification.from_pretrained(path).eval()
    inputs = extractor(wave, sampling_rate=16_000, return_tensors="pt")
    with torch.inference_mode():
        return torch.softmax(model(**inputs).logits, dim=-1)[0].numpy()


def test_labels_map_to_canonical_codes(classifier):
    model = load_model(parse_model(f"hf-audio:{classifier}", device="cpu"))
    assert model.labels == ("en", "de", "fr", "es", "cmn", "nb")
    assert model.raw_labels == tuple(MMS_STYLE)


def test_padded_batch_gives_each_clip_its_own_answer(classifier):
    model = load_model(parse_model(f"hf-audio:{classifier}", device="cpu"))
    waves = _clips()
    together = model.predict_batch(waves)
    assert together.shape == (4, 6)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-5)
    for wave, row in zip(waves, together, strict=True):
        np.testing.assert_allclose(row, _direct(classifier, wave), atol=2e-5)


def test_classes_naming_one_language_are_merged(tmp_path):
    path = save_classifier(tmp_path / "dup", ["eng", "en", "de: German"])
    model = load_model(parse_model(f"hf-audio:{path}", device="cpu"))
    assert model.labels == ("en", "de")
    wave = _clips((12_000,))[0]
    direct = _direct(path, wave)
    np.testing.assert_allclose(
        model.predict_batch([wave])[0], [direct[0] + direct[1], direct[2]], atol=2e-5
    )


def test_a_class_that_is_not_a_language_fails_the_load_naming_it(tmp_path):
    path = save_classifier(tmp_path / "bad", ["eng", "LABEL_1"])
    with pytest.raises(ModelError, match="class 'LABEL_1' of id2label is not a language tag"):
        load_model(parse_model(f"hf-audio:{path}", device="cpu"))


def test_missing_directory_and_unreachable_hub_fail_at_once(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(parse_model(f"hf-audio:{tmp_path}/nothing-here", device="cpu"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        load_model(parse_model(f"hf-audio:{tmp_path}/empty", device="cpu"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="facebook/mms-lid-126 is not in the local Hugging Face"):
        load_model(parse_model("mms-lid-126", device="cpu"))


@pytest.mark.slow
def test_whisper_speechbrain_and_hf_audio_in_one_run(classifier, tmp_path):
    """Three families, one decode, product consensus over each model's real number of labels."""
    corpus = make_corpus(tmp_path / "clips", languages=["en", "de", "fr"], per_language=2, seed=5)
    manifest = tmp_path / "manifest.csv"
    corpus.assign(audio=[str(tmp_path / "clips" / a) for a in corpus["audio"]]).to_csv(
        manifest, index=False
    )
    models = ["whisper-base", f"speechbrain:{SPEECHBRAIN_DIR}", f"hf-audio:{classifier}"]
    out = tmp_path / "out"
    summary = lidframe.run(
        manifest, out, models, workers=1, top_k=2, consensus_policy="product", progress=False
    )
    assert summary.ok and summary.rows == 6 and summary.errors == 0

    df = pd.read_parquet(out)
    aliases = [lidframe.models.column_alias(m) for m in models]
    assert (df["consensus_method"] == "product[3/3]").all()
    recorded = lidframe.read_provenance(str(out))["models"]
    labels = {alias: tuple(model["labels"]) for alias, model in recorded.items()}
    assert labels[aliases[2]] == ("en", "de", "fr", "es", "cmn", "nb")
    assert len(labels["whisper_base"]) == 99 and set(labels[aliases[1]]) >= {"en", "de", "fr"}
    meta = pq.read_schema(next(out.glob("part-*.parquet"))).metadata
    assert b'"labels"' in meta[b"lidframe"]
    with open_store(f"sqlite:///{out}/_lidframe.sqlite") as store:
        job = store.job(summary.job_id)
    assert job is not None
    assert {a: tuple(c) for a, c in job["labels"].items()} == labels

    # The consensus used each model's real label count for the mass its top-2 leaves out.
    counts = {a: len(c) for a, c in labels.items()}
    real = consensus_frame(df, aliases, ConsensusConfig("product", label_counts=counts))
    np.testing.assert_allclose(df["consensus_prob"], real["consensus_prob"], atol=1e-6)
    assumed = consensus_frame(df, aliases, ConsensusConfig("product"))  # 100 labels each
    assert np.abs(assumed["consensus_prob"] - df["consensus_prob"]).max() > 1e-3
