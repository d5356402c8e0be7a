"""SpeechBrain VoxLingua107-layout model: real load through EncoderClassifier, real predictions.

The model in tests/assets/voxlingua107-espeak-ecapa is the project's own compact ECAPA-TDNN, trained
on espeak-ng speech by examples/models/train_espeak_ecapa.py, in exactly the hub's file layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lidframe
from lidframe import ModelError, decode_window, load_model, parse_model
from lidframe.testing import make_corpus
from tests.fixtures.paths import ECAPA_DIR

MODEL_DIR = ECAPA_DIR
LANGS = ("cs", "de", "en", "es", "fi", "fr", "hu", "it", "nl", "pl", "ru", "sv")


@pytest.fixture(scope="module")
def ecapa():
    return load_model(parse_model(f"speechbrain:{MODEL_DIR}", device="cpu"))


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    """Natural sentences (the model was trained on random frequent-word strings), new voices."""
    root = tmp_path_factory.mktemp("heldout")
    corpus = make_corpus(root, languages=list(LANGS), per_language=4, seed=99)
    return root, corpus


def test_registry_name_points_at_the_hub():
    spec = parse_model("voxlingua107-ecapa")
    assert (spec.family, spec.source) == ("speechbrain", "speechbrain/lang-id-voxlingua107-ecapa")
    assert spec.alias == "voxlingua107_ecapa"


@pytest.mark.slow
def test_labels_are_canonical_codes(ecapa):
    assert sorted(ecapa.labels) == sorted(LANGS)
    assert all(": " in raw for raw in ecapa.raw_labels)  # VoxLingua107-style 'de: German'


@pytest.mark.slow
def test_heldout_accuracy_is_at_least_90_percent(ecapa, heldout):
    root, corpus = heldout
    waves = [decode_window(str(root / a)) for a in corpus["audio"]]
    probs = np.concatenate([ecapa.predict_batch(waves[i : i + 8]) for i in range(0, len(waves), 8)])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    predicted = [ecapa.labels[j] for j in probs.argmax(axis=1)]
    accuracy = np.mean([p == t for p, t in zip(predicted, corpus["label"], strict=True)])
    print(f"held-out accuracy {accuracy:.3f} over {len(waves)} clips")
    assert accuracy >= 0.9


@pytest.mark.slow
def test_batch_padding_is_ignored(ecapa, heldout):
    root, corpus = heldout
    waves = [decode_window(str(root / a)) for a in corpus["audio"][:4]]
    assert len({len(w) for w in waves}) > 1  # different lengths: padding in the batch
    batch = ecapa.predict_batch(waves)
    for i, wave in enumerate(waves):
        alone = ecapa.predict_batch([wave])[0]
        # Relative lengths mask the padding in normalisation and pooling; the convolutions' edges
        # still see zeros instead of reflected samples, hence a small tolerance.
        np.testing.assert_allclose(alone, batch[i], atol=5e-3)
        assert alone.argmax() == batch[i].argmax()


def test_unreachable_hub_and_bad_directories_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="speechbrain:/path/to/dir"):
        load_model(parse_model("voxlingua107-ecapa", device="cpu"))
    with pytest.raises(ModelError, match="no hyperparams.yaml"):
        load_model(parse_model(f"speechbrain:{tmp_path}", device="cpu"))
    with pytest.raises(ModelError, match="does not exist"):
        load_model(parse_model(f"speechbrain:{tmp_path}/missing", device="cpu"))


@pytest.mark.slow
@pytest.mark.s3
def test_two_models_one_decode_and_consensus(s3_server, s3_bucket, heldout, tmp_path):
    """Both models see each clip from one decode: the S3 server sees the same reads as for one."""
    fs, bucket = s3_bucket
    root, corpus = heldout
    subset = corpus.groupby("label").head(1).reset_index(drop=True)
    for audio in subset["audio"]:
        fs.put(str(root / audio), f"{bucket}/clips/{Path(audio).name}")
    manifest = subset.assign(audio=[f"clips/{Path(a).name}" for a in subset["audio"]])
    fs.pipe(f"{bucket}/manifest.csv", manifest.to_csv(index=False).encode())
    options = s3_server.storage_options

    def reads(models):
        s3_server.traffic.clear()
        lidframe.run(
            f"s3://{bucket}/manifest.csv",
            tmp_path / "_".join(models),
            models,
            workers=1,
            partition_rows=6,
            storage_options=options,
            out_storage_options={},
            progress=False,
        )
        return {
            audio: len(s3_server.traffic.matching(audio.removeprefix("clips/")))
            for audio in manifest["audio"]
        }

    one = reads(["whisper-base"])
    both = reads(["whisper-base", f"speechbrain:{MODEL_DIR}"])
    assert both == one and all(n >= 1 for n in one.values())

    df = pd.read_parquet(tmp_path / "_".join(["whisper-base", f"speechbrain:{MODEL_DIR}"]))
    alias = lidframe.models.column_alias(f"speechbrain:{MODEL_DIR}")
    for col in ("lang", "agree", "n_agree", "consensus_prob", "consensus_method"):
        assert col in df.columns
    assert (df["consensus_method"] == "majority[2/2]").all()
    agree = df["whisper_base_lang"] == df[f"{alias}_lang"]
    assert (df["agree"] == agree).all()
    assert (df.loc[agree, "lang"] == df.loc[agree, "whisper_base_lang"]).all()
    assert (df.loc[~agree, "lang"] == "und").all()  # two models that disagree have no majority
    assert (df[f"{alias}_lang"] == df["label"]).mean() >= 0.9
