"""Whisper language identification in PyTorch with transformers' model classes.

Log-mel features are computed per clip on the CPU in :meth:`WhisperLid.prepare` (the kernel's decode
threads, overlapping inference). One forward pass per batch: the encoder runs once, the decoder
takes one step from ``<|startoftranscript|>``, and a softmax over the language tokens alone gives
each clip's language distribution (what ``whisper.detect_language`` and faster-whisper's
``detect_language`` compute). Only the language rows of the output projection are multiplied, not
the 51k-token vocabulary.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lidframe.errors import ModelError
from lidframe.languages import whisper_to_canonical
from lidframe.models.base import Batch, LidModel
from lidframe.models.hub import hub_access
from lidframe.models.spec import ModelSpec
from lidframe.models.whisper_weights import resolve_whisper_source

if TYPE_CHECKING:
    import torch

__all__ = ["WhisperLid", "registrations"]

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160
CHUNK_SAMPLES = 30 * SAMPLE_RATE
N_FRAMES = CHUNK_SAMPLES // HOP
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

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        import torch
        from transformers import WhisperForConditionalGeneration

        location = resolve_whisper_source(spec.source)
        dtype = getattr(torch, spec.dtype)
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
        self._mel = _LogMel(self._model.config.num_mel_bins)

    @property
    def labels(self) -> tuple[str, ...]:
        return self._codes

    @property
    def whisper_codes(self) -> tuple[str, ...]:
        """Whisper's own codes (``jw``, ``haw``...), aligned with :attr:`labels`."""
        return self._whisper_codes

    def prepare(self, waveform: np.ndarray) -> np.ndarray:
        """The clip's normalised log-mel spectrogram, ``(n_mels, frames)`` with frames <= 3,000."""
        return self._mel(waveform)

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


class _LogMel:
    """Whisper's log-mel spectrogram of one clip on the CPU (numbers as in faster-whisper)."""

    def __init__(self, n_mels: int) -> None:
        import torch
        from transformers.audio_utils import mel_filter_bank

        filters = mel_filter_bank(
            num_frequency_bins=N_FFT // 2 + 1,
            num_mel_filters=n_mels,
            min_frequency=0.0,
            max_frequency=SAMPLE_RATE / 2,
            sampling_rate=SAMPLE_RATE,
            norm="slaney",
            mel_scale="slaney",
        )
        self.filters = torch.tensor(filters.T, dtype=torch.float32)
        self.window = torch.hann_window(N_FFT)

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        import torch

        audio = torch.as_tensor(np.asarray(wave[:CHUNK_SAMPLES], dtype=np.float32))
        audio = torch.nn.functional.pad(audio, (0, HOP))
        spec = torch.stft(audio, N_FFT, HOP, window=self.window, return_complex=True)
        power = spec[:, :-1].abs() ** 2
        logmel = torch.clamp(self.filters @ power, min=1e-10).log10()
        logmel = torch.maximum(logmel, logmel.max() - 8.0)
        frames = min(logmel.shape[-1], N_FRAMES)
        return ((logmel[:, :frames] + 4.0) / 4.0).numpy()


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
