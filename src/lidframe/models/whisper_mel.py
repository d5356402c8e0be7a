"""Whisper's log-mel spectrogram, per clip on the CPU and batched on any device.

Numbers follow faster-whisper (the peer :mod:`lidframe.models.whisper` is checked against): the
clip (at most 30 s) plus 160 zero samples becomes a log-mel spectrogram normalised by its own
maximum, cut at 3,000 frames. :class:`LogMel` does one clip (the kernel's decode threads, when the
model is on the CPU); :func:`log_mel_batch` does a zero-padded batch at once (on the GPU, where
a batch of 30 s clips costs less than a millisecond), with the same numbers for each clip: the
padding only adds zeros after each clip's own 160, which the frames a clip keeps never reach past,
and the maximum and the padding are taken over each clip's own frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "CHUNK_SAMPLES",
    "HOP",
    "N_FFT",
    "N_FRAMES",
    "SAMPLE_RATE",
    "LogMel",
    "log_mel_batch",
    "mel_frames",
]

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160
CHUNK_SAMPLES = 30 * SAMPLE_RATE
N_FRAMES = CHUNK_SAMPLES // HOP


class LogMel:
    """Whisper's log-mel spectrogram of one clip on the CPU; holds the filters and window."""

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
        """``(n_mels, frames)``, frames = samples // 160 + 1, at most 3,000."""
        import torch

        audio = torch.as_tensor(np.asarray(wave[:CHUNK_SAMPLES], dtype=np.float32))
        audio = torch.nn.functional.pad(audio, (0, HOP))
        spec = torch.stft(audio, N_FFT, HOP, window=self.window, return_complex=True)
        power = spec[:, :-1].abs() ** 2
        logmel = torch.clamp(self.filters @ power, min=1e-10).log10()
        logmel = torch.maximum(logmel, logmel.max() - 8.0)
        frames = min(logmel.shape[-1], N_FRAMES)
        return ((logmel[:, :frames] + 4.0) / 4.0).numpy()


def mel_frames(samples: int) -> int:
    """Frames :class:`LogMel` gives a clip of ``samples`` samples."""
    return min(min(samples, CHUNK_SAMPLES) // HOP + 1, N_FRAMES)


def log_mel_batch(
    waves: torch.Tensor,
    samples: torch.Tensor,
    filters: torch.Tensor,
    window: torch.Tensor,
    width: int,
) -> torch.Tensor:
    """``(n, n_mels, width)`` log-mel of zero-padded clips ``waves`` ``(n, longest)`` whose
    lengths are ``samples`` ``(n,)``, on their device: each clip's frames are :class:`LogMel`'s,
    followed by zeros (and cut at ``width``). ``filters`` and ``window`` are :class:`LogMel`'s,
    on the same device.
    """
    import torch

    samples = samples.clamp(max=CHUNK_SAMPLES)
    audio = torch.nn.functional.pad(waves[:, :CHUNK_SAMPLES].float(), (0, HOP))
    spec = torch.stft(audio, N_FFT, HOP, window=window, return_complex=True)
    power = spec[..., :-1].abs() ** 2
    logmel = torch.clamp(filters @ power, min=1e-10).log10()  # (n, n_mels, frames)
    steps = torch.arange(logmel.shape[-1], device=logmel.device)
    outside = (steps[None, :] > samples[:, None] // HOP)[:, None, :]  # past a clip's own frames
    peak = logmel.masked_fill(outside, float("-inf")).amax(dim=(1, 2), keepdim=True)
    logmel = ((torch.maximum(logmel, peak - 8.0) + 4.0) / 4.0).masked_fill(outside, 0.0)
    logmel = logmel[..., : min(width, N_FRAMES)]
    return torch.nn.functional.pad(logmel, (0, width - logmel.shape[-1]))
