"""Speech regions of a waveform (silero-vad).

Why this model and this runtime: silero-vad ships its weights inside the pip package (no download),
and of its runtimes the batched ("sequence") ONNX model is the one to run beside inference. Measured
on the development machine (2 cores, one thread, 30 s of 16 kHz audio, identical timestamps from
all three): the TorchScript model 206 ms, the streaming ONNX model 157 ms, the sequence ONNX model
46 ms. The streaming models step through 32 ms frames in a Python loop holding the GIL and carry
LSTM state in the model object (one instance per thread); the sequence model runs blocks of up to
512 frames per ONNX call, releases the GIL inside ONNX Runtime, keeps no state between calls (one
session serves every decode thread), and imports no torch.

:func:`speech_regions` gives ``(start, stop)`` sample ranges; :func:`speech_only` joins them into
the waveform the models should hear (leading and trailing silence and long pauses cut, short gaps
kept).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["VadConfig", "speech_only", "speech_regions", "speech_seconds"]

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class VadConfig:
    """How speech is told from the rest (silero-vad's own defaults unless measured otherwise)."""

    # Frame speech probability at or above which a frame is speech.
    threshold: float = 0.5
    # Shorter bursts of speech are dropped (a click, a cough).
    min_speech_s: float = 0.25
    # Shorter pauses do not end a region.
    min_silence_s: float = 0.1
    # Kept on each side of a region, so word edges are not clipped.
    pad_s: float = 0.03


_model: Any = None
_imported = False
_lock = threading.Lock()


def _import_silero() -> None:
    """Import silero-vad without its side effect: its ``model`` module calls
    ``torch.set_num_threads(1)`` when imported, which left the importing thread (and every thread
    that starts torch work after it, such as a worker's later executor thread) running PyTorch on
    one core. The caller's thread count is put back."""
    global _imported
    if _imported:
        return
    with _lock:
        if _imported:
            return
        import torch

        threads = torch.get_num_threads()
        try:
            import silero_vad.sequence_vad  # noqa: F401 - imports the package and its model module
        finally:
            torch.set_num_threads(threads)
        _imported = True


def _session() -> Any:
    """The process's silero-vad sequence model (thread-safe: it keeps no state between calls)."""
    global _model
    _import_silero()
    if _model is None:
        with _lock:
            if _model is None:
                from silero_vad import load_silero_vad

                with warnings.catch_warnings():
                    # silero-vad 6 finds its model with importlib.resources.path (deprecated).
                    warnings.simplefilter("ignore", DeprecationWarning)
                    _model = load_silero_vad(sequence=True)
    return _model


def speech_regions(
    wave: np.ndarray, config: VadConfig | None = None, sample_rate: int = SAMPLE_RATE
) -> list[tuple[int, int]]:
    """``(start, stop)`` sample ranges of speech in a mono ``sample_rate`` waveform, in order."""
    _import_silero()
    from silero_vad.sequence_vad import get_speech_timestamps_sequence

    config = config or VadConfig()
    audio = np.ascontiguousarray(wave, dtype=np.float32)
    if len(audio) == 0:
        return []
    found = get_speech_timestamps_sequence(
        audio,
        _session(),
        threshold=config.threshold,
        sampling_rate=sample_rate,
        min_speech_duration_ms=round(config.min_speech_s * 1000),
        min_silence_duration_ms=round(config.min_silence_s * 1000),
        speech_pad_ms=round(config.pad_s * 1000),
    )
    return [(int(r["start"]), min(int(r["end"]), len(audio))) for r in found]


def speech_seconds(regions: Sequence[tuple[int, int]], sample_rate: int = SAMPLE_RATE) -> float:
    """Total length of ``regions`` in seconds."""
    return sum(stop - start for start, stop in regions) / sample_rate


def speech_only(
    wave: np.ndarray,
    regions: Sequence[tuple[int, int]],
    *,
    keep_gap_s: float = 0.3,
    max_samples: int | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """The speech of ``wave`` joined: pauses up to ``keep_gap_s`` kept, longer ones cut.

    At most ``max_samples`` samples (the window a model takes); empty when there is no speech.
    """
    keep_gap = int(keep_gap_s * sample_rate)
    pieces: list[np.ndarray] = []
    total = 0
    previous_stop: int | None = None
    for start, stop in regions:
        if previous_stop is not None and 0 < start - previous_stop <= keep_gap:
            start = previous_stop  # a short pause stays, as speech rhythm
        piece = wave[start:stop]
        if max_samples is not None:
            piece = piece[: max(0, max_samples - total)]
        if len(piece):
            pieces.append(piece)
            total += len(piece)
        previous_stop = stop
        if max_samples is not None and total >= max_samples:
            break
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(pieces).astype(np.float32, copy=False)
