"""Running one model over a group's clips so that a failure costs only the clips it is about.

* When a model raises on a batch, the clips are split in halves until the clips it fails on are
  alone; each of those gets ``model_failed: {alias}: ...`` and the others keep their answers. If
  every clip of a batch fails alone, the model is run once on a known-good clip (a canary): when
  that fails too the model itself is broken, and the partition fails with :class:`ModelError`
  instead of giving every row of the job an error.
* CUDA running out of memory is no clip's fault: the same clips are tried again in passes half
  the size (clips and seconds of padded input); only a clip that does not fit alone gets the error.
  The smaller size is kept while it works, and grows back towards the job's size after a few
  calls that fit (:class:`PassSize`): one clip too long for the device, or a moment of memory
  pressure from another process, must not leave the rest of the partition in passes of one clip.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lidframe.errors import ModelError
from lidframe.models import LidModel

__all__ = ["GROW_AFTER", "PassSize", "model_failure", "predict_clips"]


# Calls that must fit in a row before a shrunken pass size doubles again; doubled itself each time
# a size it grew to ran out of memory (so memory that is really short costs few failed passes).
GROW_AFTER = 2


@dataclass
class PassSize:
    """The most clips and seconds of padded input one forward pass of a model may hold in this
    partition: halved on each CUDA out-of-memory error, doubled back (never above the job's size)
    after :data:`GROW_AFTER` calls in a row that fit; a size that grew and then ran out of memory
    makes the next growth wait twice as long (additive patience, multiplicative back-off)."""

    clips: int
    seconds: float | None
    # the job's size, the most this ever grows back to (set from the first two)
    most_clips: int = field(init=False)
    most_seconds: float | None = field(init=False)
    patience: int = field(init=False, default=GROW_AFTER)
    _fits: int = field(init=False, default=0)
    _grew: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.most_clips, self.most_seconds = self.clips, self.seconds

    def halve(self, clips: int) -> None:
        """Halve after a pass of at most ``clips`` clips (the call held no more) ran out of memory."""
        self.clips = max(1, min(self.clips, clips) // 2)
        if self.seconds is not None:
            self.seconds /= 2
        if self._grew:
            self.patience *= 2
        self._fits, self._grew = 0, False

    def fitted(self) -> None:
        """A call ran without running out of memory: after enough of them, grow back."""
        self._grew = False  # the size it grew to (if it did) held
        if self.clips >= self.most_clips and self.seconds == self.most_seconds:
            return
        self._fits += 1
        if self._fits < self.patience:
            return
        self.clips = min(self.most_clips, self.clips * 2)
        if self.seconds is not None and self.most_seconds is not None:
            self.seconds = min(self.most_seconds, self.seconds * 2)
        self._fits, self._grew = 0, True

    def restore(self, clips: int, seconds: float | None) -> None:
        """Back to a size from before a clip that does not fit alone shrank it: that clip, not the
        device, ran out of memory (if the device did too, the next call halves again)."""
        self.clips = max(self.clips, clips)
        if self.seconds is not None and seconds is not None:
            self.seconds = max(self.seconds, seconds)
        self._fits, self._grew = 0, False


def predict_clips(
    alias: str, model: LidModel, features: Sequence[Any], size: PassSize, context: float | None
) -> list[np.ndarray | str]:
    """Each clip's probabilities, or its ``model_failed`` error; bisects a batch the model fails on."""
    if not features:
        return []
    answers = _bisect(alias, model, list(features), size, context)
    if len(features) > 1 and all(isinstance(a, str) for a in answers):
        try:
            _check_output(model, model.predict_batch([_canary(model)]), 1)
        except Exception as exc:
            raise ModelError(
                f"model {alias} fails on every clip of a batch and on a known-good clip "
                f"({type(exc).__name__}: {exc}); the model or its device is broken"
            ) from exc
    return answers


def _bisect(
    alias: str, model: LidModel, features: list[Any], size: PassSize, context: float | None
) -> list[np.ndarray | str]:
    """Run ``features`` through the model, working around the clips it fails on.

    A range of clips the model fails on is split in halves until the failing clips are alone.
    CUDA running out of memory is no clip's fault: the passes are made smaller (``size`` halves)
    and the same clips tried again, until a pass holds one clip; only a clip that does not fit
    alone gets the error, and the size goes back to what it was before that clip shrank it. Every
    retry happens after the failed attempt has returned, so its
    exception, traceback and the device tensors their frames hold are gone by then.
    """
    answers: list[np.ndarray | str | None] = [None] * len(features)
    before = (size.clips, size.seconds)
    todo = [(0, len(features))]  # ranges of clips still to answer, the next one last
    while todo:
        lo, hi = todo.pop()
        got, out_of_memory = _attempt(alias, model, features[lo:hi], size, context)
        if isinstance(got, np.ndarray):
            size.fitted()
            answers[lo:hi] = [
                row
                if np.isfinite(row).all()
                else f"model_failed: {alias}: non-finite probabilities"
                for row in got
            ]
            continue
        if out_of_memory:
            _free_device_memory()
            if hi - lo > 1 and size.clips > 1:
                size.halve(hi - lo)
                todo.append((lo, hi))
                continue
        if hi - lo == 1:
            answers[lo] = got
            if out_of_memory:
                size.restore(*before)
        else:
            mid = (lo + hi) // 2
            todo += [(mid, hi), (lo, mid)]
    return answers  # type: ignore[return-value]  # every range was answered


def _attempt(
    alias: str, model: LidModel, features: list[Any], size: PassSize, context: float | None
) -> tuple[np.ndarray | str, bool]:
    """The clips' probabilities, or the failure as text and whether it was CUDA out of memory.

    Only text leaves the ``except`` block: the exception (and the frames it references) dies here.
    """
    try:
        p = model.predict_prepared(
            features, size.clips, context=context, batch_seconds=size.seconds
        )
        return _check_output(model, p, len(features)), False
    except Exception as exc:  # noqa: BLE001 - a model failure on some clips is those rows' error
        return model_failure(alias, exc), _is_out_of_memory(exc)


def _is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's CUDA out-of-memory error (torch is not imported for this: a
    model that raised it has imported torch already)."""
    torch = sys.modules.get("torch")
    oom = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    return oom is not None and isinstance(exc, oom)


def _free_device_memory() -> None:
    """Collect unreachable objects (a cycle may still hold device tensors) and give the CUDA
    caching allocator's free blocks back, so the smaller retry finds the memory."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def model_failure(alias: str, exc: BaseException, stage: str = "") -> str:
    """A row's ``model_failed`` error for ``exc`` (one line, at most 500 characters of message)."""
    text = " ".join(str(exc).split())[:500]
    return f"model_failed: {alias}: {stage}{type(exc).__name__}: {text}"


def _check_output(model: LidModel, p: Any, n: int) -> np.ndarray:
    """``p`` as float32, checked to be one row of probabilities per clip."""
    p = np.asarray(p, dtype=np.float32)
    if p.shape != (n, len(model.labels)):
        raise ModelError(
            f"the model returned shape {p.shape} for {n} clips and {len(model.labels)} labels"
        )
    return p


def _canary(model: LidModel) -> np.ndarray:
    """One second of quiet noise at the model's rate: any working model can answer it."""
    rng = np.random.default_rng(0)
    return (0.01 * rng.standard_normal(model.sample_rate)).astype(np.float32)
