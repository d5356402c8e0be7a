"""Candidate languages: every model answers one of them, its probabilities renormalised over them.

Real whisper-base weights on real (espeak-ng) speech; a family registered here for a model whose
labels hold none of the candidates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lidframe.errors import ConfigError
from lidframe.kernel import KernelConfig, identify_partition
from lidframe.languages import candidate_labels, candidate_languages
from lidframe.models import LidModel, parse_model, register_family
from lidframe.testing import TEXTS, synthesize, write_wav


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("candidates")
    rows = []
    for lang in ("en", "de"):
        path = folder / f"{lang}.wav"
        synthesize(TEXTS[lang][0], lang, path)
        rows.append({"id": lang, "audio": str(path)})
    silence = folder / "silence.wav"
    write_wav(silence, np.zeros(48_000, dtype=np.float32), 16_000)
    rows.append({"id": "silence", "audio": str(silence)})
    return pd.DataFrame(rows)


def _run(clips: pd.DataFrame, **settings: object) -> pd.DataFrame:
    config = KernelConfig.for_models(["whisper-base"], batch_size=4, **settings)  # type: ignore[arg-type]
    return identify_partition(clips, config).set_index("id")


def test_answers_are_renormalised_over_the_candidates(clips: pd.DataFrame) -> None:
    everything = _run(clips, top_k=100)
    only = _run(clips, languages=("fr", "de"))
    for row in ("en", "de"):
        full = {p["lang"]: p["prob"] for p in everything.loc[row, "whisper_base_topk"]}
        top = only.loc[row, "whisper_base_topk"]
        # the top-k names only candidates (two of them, though top_k is 5), and sums to one
        assert sorted(p["lang"] for p in top) == ["de", "fr"]
        assert sum(p["prob"] for p in top) == pytest.approx(1.0, abs=1e-5)
        for p in top:
            assert p["prob"] == pytest.approx(full[p["lang"]] / (full["fr"] + full["de"]), rel=1e-3)
        assert only.loc[row, "whisper_base_lang"] == top[0]["lang"]
        assert only.loc[row, "whisper_base_prob"] == pytest.approx(top[0]["prob"])
    # a German clip is still German among the candidates; silence is still no speech
    assert only.loc["de", "whisper_base_lang"] == "de"
    assert only.loc["silence", "whisper_base_lang"] == "und"
    assert pd.isna(only.loc["silence", "whisper_base_prob"])


def test_an_answer_already_among_the_candidates_stays(clips: pd.DataFrame) -> None:
    free = _run(clips)
    among = _run(clips, languages="en,de,es")
    assert list(among["whisper_base_lang"]) == list(free["whisper_base_lang"])
    assert (
        among.loc[["en", "de"], "whisper_base_prob"] >= free.loc[["en", "de"], "whisper_base_prob"]
    ).all()


def test_a_candidate_keeps_the_labels_that_are_its_language() -> None:
    """Candidate ``no`` keeps Norwegian, Bokmål and Nynorsk (the default equivalence)."""
    assert candidate_languages(" nob, NO ,no") == ("nb", "no")
    labels = ("en", "no", "nn", "nb", "sv")
    assert candidate_labels(labels, ["no"]) == (1, 2, 3)
    assert candidate_labels(labels, ["nn", "sv"]) == (1, 2, 3, 4)
    assert candidate_labels(labels, ["fr"]) == ()


@pytest.mark.parametrize(
    ("given", "named"), [("en,xx", "'xx'"), ("en,und", "'und'"), (",", "names no language")]
)
def test_a_bad_candidate_is_one_line_naming_it(given: str, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        KernelConfig.for_models(["whisper-base"], languages=given)
    message = str(caught.value)
    assert named in message and "--languages" in message and "\n" not in message


class EnglishGerman(LidModel):
    @property
    def labels(self) -> tuple[str, ...]:
        return ("en", "de")

    def predict_batch(self, waveforms):  # type: ignore[no-untyped-def]
        return np.tile(np.array([[0.7, 0.3]], dtype=np.float32), (len(waveforms), 1))


def test_a_model_without_any_candidate_is_refused(clips: pd.DataFrame, tmp_path: Path) -> None:
    register_family("test-en-de", EnglishGerman)
    config = KernelConfig(models=(parse_model("test-en-de:x"),), languages=("fr", "it"))
    with pytest.raises(ConfigError, match="knows none of the candidate languages fr,it"):
        identify_partition(clips, config)
    # one candidate it has: every answer is that one, with all the probability
    config = KernelConfig(models=(parse_model("test-en-de:x"),), languages=("de", "fr"))
    out = identify_partition(clips.head(2), config)
    assert list(out["test_en_de_x_lang"]) == ["de", "de"]
    assert list(out["test_en_de_x_prob"]) == [1.0, 1.0]
