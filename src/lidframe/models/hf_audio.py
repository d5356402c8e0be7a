"""Any transformers audio-classification model whose classes are languages: ``hf-audio:SOURCE``.

``SOURCE`` is a hub id or a local directory that ``AutoFeatureExtractor`` and
``AutoModelForAudioClassification`` load: the MMS-LID checkpoints (``facebook/mms-lid-126``, ``-256``,
``-1024``, ``-4017``; wav2vec2 with ISO 639-3 class names), fine-tuned wav2vec2, HuBERT, WavLM or
Whisper-encoder classifiers. The model's own feature extractor runs per clip in :meth:`prepare`
(CPU, the kernel's decode threads): it normalises a waveform (wav2vec2) or computes log-mel frames
(Whisper encoder) exactly as the checkpoint was trained. :meth:`forward` runs the classifier on the
padded batch, with an ``attention_mask`` when the extractor says the model takes one (MMS does;
wav2vec2-base-style models with group norm must not get one, and are padded with zeros instead).

The config's ``id2label`` names become canonical codes (:func:`lidframe.languages.canonical`:
``eng`` -> ``en``, ``cmn`` stays ``cmn``; ``'de: German'`` style names are read by their code). A
name that is no language tag fails the load naming it, so a checkpoint whose classes are not
languages (or a config left at ``LABEL_0``) is caught before any row is answered. Classes that
name the same canonical language are merged, their probabilities added.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lidframe.errors import ConfigError, ModelError
from lidframe.languages import canonical
from lidframe.models.base import Batch, LidModel
from lidframe.models.hub import hub_access
from lidframe.models.spec import ModelSpec

if TYPE_CHECKING:
    import torch

__all__ = ["HfAudioLid", "label_to_canonical", "registrations"]

_HINT = (
    "Offline, save the model with save_pretrained() (config.json, the weights and "
    "preprocessor_config.json) and pass --models hf-audio:/path/to/dir."
)
MMS_LID_SIZES = (126, 256, 1024, 4017)


def registrations() -> list[tuple[str, type[LidModel], list[tuple[str, str]]]]:
    """The ``hf-audio`` family and the MMS-LID names (read by the registry on first use)."""
    names = [(f"mms-lid-{n}", f"facebook/mms-lid-{n}") for n in MMS_LID_SIZES]
    return [("hf-audio", HfAudioLid, names)]


def label_to_canonical(label: str) -> str:
    """A classifier's class name as a canonical code; ``ConfigError`` naming it when it is none."""
    text = str(label).strip()
    try:
        return canonical(text)
    except ConfigError:
        head = text.split(":", 1)[0].strip()  # 'de: German'
        if head != text:
            return canonical(head)
        raise


class HfAudioLid(LidModel):
    """A transformers ``AutoModelForAudioClassification`` language classifier."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        import torch
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        local = Path(spec.source).expanduser()
        if local.exists():
            if not (local / "config.json").is_file():
                raise ModelError(f"{local}: no config.json; not a transformers model directory")
            location, local_only = str(local.resolve()), True
        elif spec.source.startswith((".", "/", "~")):
            raise ModelError(f"model directory {spec.source!r} does not exist. {_HINT}")
        else:
            location = spec.source
            local_only = hub_access(location, "config.json", _HINT)
        try:
            extractor = AutoFeatureExtractor.from_pretrained(location, local_files_only=local_only)
            model = AutoModelForAudioClassification.from_pretrained(
                location, dtype=getattr(torch, spec.dtype), local_files_only=local_only
            )
        except (OSError, ValueError, KeyError) as exc:
            text = " ".join(str(exc).split())
            raise ModelError(
                f"cannot load audio classifier {spec.source!r}: {type(exc).__name__}: {text}. {_HINT}"
            ) from exc
        rate = getattr(extractor, "sampling_rate", self.sample_rate)
        if rate != self.sample_rate:
            raise ModelError(
                f"{spec.source}: the model takes {rate} Hz audio; lidframe decodes at "
                f"{self.sample_rate} Hz"
            )
        id2label = model.config.id2label or {}
        raw = [
            str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}")))
            for i in range(model.config.num_labels)
        ]
        codes = []
        for name in raw:
            try:
                codes.append(label_to_canonical(name))
            except ConfigError as exc:
                raise ModelError(
                    f"{spec.source}: class {name!r} of id2label is not a language tag ({exc})"
                ) from None
        self._labels = tuple(dict.fromkeys(codes))  # first-seen order, each code once
        position = {code: i for i, code in enumerate(self._labels)}
        self._merge = torch.tensor([position[c] for c in codes], device=self.device)
        self._raw_labels = tuple(raw)
        self._extractor = extractor
        self._input = extractor.model_input_names[0]
        self._wants_mask = bool(getattr(extractor, "return_attention_mask", False)) and (
            "attention_mask" in extractor.model_input_names
        )
        self._model = model.to(self.device).eval()

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def raw_labels(self) -> tuple[str, ...]:
        """The classifier's own class names (``eng``...), in its output order."""
        return self._raw_labels

    def prepare(self, waveform: np.ndarray) -> np.ndarray:
        """The checkpoint's own features of one clip (its extractor, unpadded)."""
        features: Any = self._extractor(
            np.asarray(waveform, dtype=np.float32),
            sampling_rate=self.sample_rate,
            return_tensors="np",
        )
        return np.asarray(features[self._input][0])

    def forward(self, batch: Batch) -> torch.Tensor:
        import torch

        inputs = {self._input: batch.values}
        if self._wants_mask:
            inputs["attention_mask"] = batch.mask
        logits = self._model(**inputs).logits.float()
        probs = torch.softmax(logits, dim=-1)
        if len(self._labels) == probs.shape[-1]:
            return probs
        merged = torch.zeros(len(batch), len(self._labels), device=probs.device)
        return merged.index_add_(1, self._merge, probs)
