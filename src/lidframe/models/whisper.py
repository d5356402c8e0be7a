"""Whisper language identification in PyTorch with transformers' model classes.

On the CPU, log-mel features are computed per clip in :meth:`WhisperLid.prepare` (the kernel's
decode threads, overlapping inference); on a GPU, ``prepare`` keeps the waveform and
:meth:`WhisperLid.collate` computes a whole batch's log-mel on the device
(:mod:`lidframe.models.whisper_mel`: the same numbers). One forward pass per batch: the encoder runs
once, the decoder takes one step from ``<|startoftranscript|>``, and a softmax over the language
tokens alone gives each clip's language distribution (what ``whisper.detect_language`` and
faster-whisper's ``detect_language`` compute). Only the language rows of the output projection are
multiplied, not the 51k-token vocabulary.

Features follow faster-whisper exactly (the peer this model is checked against): the clip (at most
30 s) plus 160 zero samples is turned into a log-mel spectrogram normalised by its own maximum, then
padded with zeros to 3,000 frames. openai/whisper pads the *audio* to 30 s instead; on short clips
the two conventions can disagree on low-confidence answers.

**Encoder context.** With full context (``--context full``) every batch is padded to 3,000 frames,
as above. Otherwise the encoder runs on the frames the batch's longest clip needs, rounded up to
one of :data:`CONTEXT_FRAMES` and never below the context asked for (``--context``): the
convolutions take any length, and the positional embedding is cut to the encoder's output length
(what whisper.cpp's ``audio_ctx`` does). The default minimum was chosen by measuring accuracy
against context (``benchmarks/context.py``, ``benchmarks/RESULTS.md``; see
:data:`lidframe.speech.SPEECH_CONTEXT`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lidframe.errors import ModelError
from lidframe.languages import whisper_to_canonical
from lidframe.models.base import Batch, LidModel, quantize_int8
from lidframe.models.hub import hub_access
from lidframe.models.spec import ModelSpec
from lidframe.models.whisper_mel import (
    CHUNK_SAMPLES,
    HOP,
    N_FRAMES,
    SAMPLE_RATE,
    LogMel,
    log_mel_batch,
    mel_frames,
)
from lidframe.models.whisper_weights import resolve_whisper_source

if TYPE_CHECKING:
    import torch

__all__ = ["CONTEXT_FRAMES", "N_FRAMES", "WhisperLid", "registrations"]

# Encoder input lengths (mel frames, 100 per second) a batch is padded up to without full context:
# few, so batches of similar clips share shapes (and, on a GPU, compiled kernels).
CONTEXT_FRAMES = (200, 300, 400, 600, 800, 1000, 1200, 1500, 2000, 2500, 3000)

_LOAD_HINT = (
    "Offline, use --models whisper-base after `pip install 'lidframe[whisper-base]'`, or "
    "--models whisper:/path/to/dir (a transformers or faster-whisper directory)."
)
# The standard OpenAI checkpoints, by short name. whisper-base also ships offline (see RECIPES).
_HUB_SIZES = ("tiny", "small", "medium", "large-v2", "large-v3", "large-v3-turbo")


def registrations() -> list[tuple[str, type[LidModel], list[tuple[str, str]]]]:
    """The ``whisper`` family and its short names (read by the registry on first use)."""
    names = [("whisper-base", "packaged:whisper-base")]
    names += [(f"whisper-{size}", f"openai/whisper-{size}") for size in _HUB_SIZES]
    return [("whisper", WhisperLid, names)]


class WhisperLid(LidModel):
    """Whisper's language detection: log-mel features in :meth:`prepare`, one step in :meth:`forward`."""

    # With full context the encoder takes 30 s of frames: every batch is padded to that.
    pad_to = N_FRAMES
    # Mel frames per second (the unit of padded_length and of a batch_seconds budget).
    steps_per_second = SAMPLE_RATE / HOP
    # int8 on the CPU: the encoder's linear layers, where the time goes (benchmarks/RESULTS.md,
    # "int8 per token"); the one decoder step and the language rows stay float32.
    int8 = True
    # bfloat16 on a CPU with native bfloat16: about twice the encoder's speed at equal accuracy on
    # real speech (benchmarks/RESULTS.md, "bfloat16 on the CPU"); ``auto`` gives it to large jobs.
    cpu_bfloat16 = True

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        import torch
        from transformers import WhisperForConditionalGeneration

        location = resolve_whisper_source(spec.source)
        dtype = self.load_dtype
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a bar per worker per model is noise in job logs
        local_only = Path(location).is_dir() or hub_access(location, "config.json", _LOAD_HINT)
        try:
            model = WhisperForConditionalGeneration.from_pretrained(
                location, dtype=dtype, local_files_only=local_only
            )
        except OSError as exc:
            text = " ".join(str(exc).split())
            raise ModelError(
                f"cannot load Whisper weights {spec.source!r} ({text}). {_LOAD_HINT}"
            ) from exc
        self._model = model.to(self.device).eval()  # type: ignore[arg-type]
        codes, token_ids = _language_tokens(location)
        if not codes:
            raise ModelError(
                f"{spec.source}: this Whisper model has no language tokens (English-only?)"
            )
        self._codes = tuple(whisper_to_canonical(c) for c in codes)
        self._whisper_codes = tuple(codes)
        self._lang_ids = torch.tensor(token_ids, device=self.device)
        self._sot = torch.tensor(
            [[_token_id(location, "<|startoftranscript|>")]], device=self.device
        )
        self._lang_proj = self._model.proj_out.weight[self._lang_ids].detach()
        if spec.dtype == "int8":  # the encoder; the decoder step and language rows stay float32
            quantize_int8(self._model.model.encoder)
        self._mel = LogMel(self._model.config.num_mel_bins)
        # Whether collate computes the batch's log-mel on the device from waveforms (on CUDA),
        # rather than prepare per clip on the CPU; a CPU test turns it on to check its numbers.
        self.mel_on_device = self.device.startswith("cuda")
        self._mel_filters = self._mel.filters.to(self.device)
        self._mel_window = self._mel.window.to(self.device)

    @property
    def labels(self) -> tuple[str, ...]:
        return self._codes

    @property
    def whisper_codes(self) -> tuple[str, ...]:
        """Whisper's own codes (``jw``, ``haw``...), aligned with :attr:`labels`."""
        return self._whisper_codes

    def prepare(self, waveform: np.ndarray) -> np.ndarray:
        """The clip's normalised log-mel spectrogram, ``(n_mels, frames)`` with frames <= 3,000;
        on a GPU the clip's first 30 s instead (:meth:`collate` computes the log-mel there)."""
        if self.mel_on_device:
            return np.asarray(waveform[:CHUNK_SAMPLES], dtype=np.float32)
        return self._mel(waveform)

    def input_steps(self, feature: Any) -> int:
        if self.mel_on_device:
            return mel_frames(int(np.shape(feature)[-1]))
        return super().input_steps(feature)

    def collate(self, features: Sequence[np.ndarray], *, context: float | None = None) -> Batch:
        """On a GPU: pad the waveforms, copy them there and compute their log-mel as a batch."""
        if not self.mel_on_device:
            return super().collate(features, context=context)
        import torch

        samples = np.array([np.shape(f)[-1] for f in features], dtype=np.int64)
        frames = np.array([mel_frames(int(n)) for n in samples], dtype=np.int64)
        longest = self.padded_length(int(frames.max()), context)
        waves = self.to_device(self.pad_host(features, int(samples.max())))
        mel = log_mel_batch(
            waves,
            self.to_device(torch.from_numpy(samples)),
            self._mel_filters,
            self._mel_window,
            longest,
        )
        lengths = self.to_device(torch.from_numpy(np.minimum(frames, longest)))
        return Batch(mel.to(self.input_dtype), lengths)

    def padded_length(self, longest: int, context: float | None = None) -> int:
        if context is None:
            return N_FRAMES
        # L seconds of audio give 100 L + 1 frames: the last one may be cut to stay in L's bucket.
        wanted = max(longest - 1, min(round(context * SAMPLE_RATE / HOP), N_FRAMES))
        return next((f for f in CONTEXT_FRAMES if f >= wanted), N_FRAMES)

    def forward(self, batch: Batch) -> torch.Tensor:
        import torch

        encoded = _encode(self._model.model.encoder, batch.values)
        sot = self._sot.expand(len(batch), 1)
        hidden = self._model.model.decoder(
            input_ids=sot, encoder_hidden_states=encoded, use_cache=False
        ).last_hidden_state[:, -1]
        logits = hidden.float() @ self._lang_proj.float().T
        return torch.softmax(logits, dim=-1)


def _encode(encoder: Any, mel: torch.Tensor) -> torch.Tensor:
    """transformers' ``WhisperEncoder.forward`` for any number of frames up to 3,000.

    The same operations in the same order (so 3,000 frames give its numbers exactly), with the
    positional embedding cut to the output length instead of a check that the input is 30 s.
    """
    import torch

    gelu = torch.nn.functional.gelu
    hidden = gelu(encoder.conv2(gelu(encoder.conv1(mel)))).permute(0, 2, 1)
    hidden = hidden + encoder.embed_positions.weight[: hidden.shape[1]]
    for layer in encoder.layers:
        hidden = layer(hidden, None)
        if isinstance(hidden, tuple):  # older transformers return (hidden, attentions)
            hidden = hidden[0]
    return encoder.layer_norm(hidden)


def _tokenizer(location: str):
    from tokenizers import Tokenizer

    path = Path(location) / "tokenizer.json"
    if not path.is_file():
        from huggingface_hub import hf_hub_download, try_to_load_from_cache

        cached = try_to_load_from_cache(location, "tokenizer.json")
        try:
            path = Path(
                cached if isinstance(cached, str) else hf_hub_download(location, "tokenizer.json")
            )
        except Exception as exc:
            raise ModelError(f"{location}: cannot find tokenizer.json ({exc})") from exc
    return Tokenizer.from_file(str(path))


def _token_id(location: str, token: str) -> int:
    tid = _tokenizer(location).token_to_id(token)
    if tid is None:
        raise ModelError(f"{location}: tokenizer has no {token} token")
    return int(tid)


def _language_tokens(location: str) -> tuple[list[str], list[int]]:
    """Whisper codes and token ids of the language tokens the model was trained with."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    tokenizer = _tokenizer(location)
    pairs = []
    for code in LANGUAGES:
        tid = tokenizer.token_to_id(f"<|{code}|>")
        if tid is not None:
            pairs.append((int(tid), code))
    meta = Path(location) / "lidframe.json"
    if meta.is_file():
        # A converted faster-whisper model states which language tokens it has (99 for all but v3).
        allowed = set(json.loads(meta.read_text()).get("lang_ids") or [])
        if allowed:
            pairs = [(tid, code) for tid, code in pairs if tid in allowed]
    pairs.sort()
    return [code for _, code in pairs], [tid for tid, _ in pairs]
