"""SpeechBrain language classifiers (VoxLingua107 ECAPA-TDNN) as a batched :class:`LidModel`.

Loading and inference go through SpeechBrain's own ``EncoderClassifier``: ``from_hparams`` reads a
hub id (``speechbrain/lang-id-voxlingua107-ecapa``) or any local directory of that layout
(``hyperparams.yaml``, ``embedding_model.ckpt``, ``classifier.ckpt``, ``label_encoder.txt``), and
``classify_batch(wavs, wav_lens)`` runs the whole padded batch at once, with relative lengths so the
padding is ignored by the statistics pooling. Its output is log-posteriors; a softmax turns them into
probabilities (exact for log-softmax outputs, a normalisation for any other score).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from lidframe.errors import ModelError
from lidframe.languages import voxlingua_to_canonical
from lidframe.models.base import Batch, LidModel
from lidframe.models.hub import hub_access
from lidframe.models.spec import ModelSpec
from lidframe.models.whisper_weights import cache_dir

if TYPE_CHECKING:
    import torch

__all__ = ["SpeechBrainLid", "registrations"]

VOXLINGUA107_HUB_ID = "speechbrain/lang-id-voxlingua107-ecapa"
_HINT = (
    "Offline, pass a local directory of the VoxLingua107 layout (hyperparams.yaml, "
    "embedding_model.ckpt, classifier.ckpt, label_encoder.txt) as --models speechbrain:/path/to/dir."
)


def registrations() -> list[tuple[str, type[LidModel], list[tuple[str, str]]]]:
    """The ``speechbrain`` family and the ``voxlingua107-ecapa`` name (read by the registry)."""
    return [("speechbrain", SpeechBrainLid, [("voxlingua107-ecapa", VOXLINGUA107_HUB_ID)])]


class SpeechBrainLid(LidModel):
    """A SpeechBrain ``EncoderClassifier`` whose labels are languages (``'de: German'``)."""

    # ECAPA-TDNN's reflect-padded convolutions need 5 frames of 10 ms (measured: 600 samples fail).
    min_samples = 640
    # SpeechBrain's ECAPA-TDNN runs in float32 only: dtype ``auto`` gives it float32.
    half_precision = False

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        if spec.dtype != "float32":
            raise ModelError(f"{spec.name}: SpeechBrain models run in float32, not {spec.dtype}")
        from speechbrain.inference.classifiers import EncoderClassifier

        source = spec.source
        local = Path(source).expanduser()
        overrides: dict[str, str] = {}
        if local.exists():
            if not (local / "hyperparams.yaml").is_file():
                raise ModelError(f"{local}: no hyperparams.yaml; not a SpeechBrain model directory")
            source = str(local.resolve())
            # The hub's hyperparams.yaml points `pretrained_path` at the hub id; a local copy must
            # load its checkpoints from where it is.
            if "pretrained_path:" in (local / "hyperparams.yaml").read_text():
                overrides["pretrained_path"] = source
        elif source.startswith((".", "/", "~")):
            raise ModelError(f"SpeechBrain model directory {source!r} does not exist. {_HINT}")
        else:
            hub_access(source, "hyperparams.yaml", _HINT)  # fails in seconds when unreachable
        savedir = cache_dir() / "speechbrain" / hashlib.sha256(source.encode()).hexdigest()[:24]
        try:
            classifier = EncoderClassifier.from_hparams(
                source=source,
                savedir=str(savedir),
                overrides=overrides,
                run_opts={"device": spec.device},
            )
        except Exception as exc:
            text = " ".join(str(exc).split())
            raise ModelError(
                f"cannot load SpeechBrain model {spec.source!r}: {type(exc).__name__}: {text}. {_HINT}"
            ) from exc
        if classifier is None:
            raise ModelError(f"cannot load SpeechBrain model {spec.source!r}. {_HINT}")
        classifier.eval()
        encoder = classifier.hparams.label_encoder
        try:
            raw = [encoder.ind2lab[i] for i in range(len(encoder.ind2lab))]
        except KeyError as exc:
            raise ModelError(f"{spec.source}: label_encoder.txt has a gap at index {exc}") from exc
        self._labels = tuple(voxlingua_to_canonical(str(label)) for label in raw)
        if len(set(self._labels)) != len(self._labels):
            raise ModelError(f"{spec.source}: two labels map to the same language: {raw}")
        self._raw_labels = tuple(raw)
        self._classifier = classifier

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def raw_labels(self) -> tuple[str, ...]:
        """The model's own labels (``'de: German'``), aligned with :attr:`labels`."""
        return self._raw_labels

    def forward(self, batch: Batch) -> torch.Tensor:
        import torch

        # The waveforms as prepared (the default: float32), zero-padded; relative lengths make the
        # statistics pooling ignore the padding.
        scores, _, _, _ = self._classifier.classify_batch(batch.values, batch.relative_lengths)
        return torch.softmax(scores.float(), dim=-1)
