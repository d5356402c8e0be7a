"""Moving padded batches to a model's device and its answers back, without stalling the GPU.

On a CUDA device a batch is padded into page-locked (pinned) host memory and copied with
``non_blocking=True`` on a side stream, so the copy of the next batch runs while the previous
batch's forward pass computes; the compute stream waits for the copy (``wait_stream``) before it
reads the batch. Answers go back once per pass, into pinned memory, with an event the caller waits
on only when it needs the numbers (after it has queued the next pass). On the CPU every step is
the plain one: no pinning, no streams, answers are numpy arrays at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["DeviceCopier"]


class DeviceCopier:
    """Host-to-device and device-to-host copies for one model's device (not thread-safe: the
    model's lock serialises its callers)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.cuda = device.startswith("cuda")
        self._stream: Any = None  # the side stream copies run on, made on first use

    def zeros(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> torch.Tensor:
        """A zeroed host tensor to pad a batch into; pinned on CUDA so its copy can be async."""
        import torch

        kind = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
        return torch.zeros(shape, dtype=kind, pin_memory=self.cuda)

    def to_device(self, host: torch.Tensor) -> torch.Tensor:
        """``host`` on the device, usable on the current (compute) stream in queue order.

        On CUDA the copy is queued on the side stream; the compute stream waits for it, and the
        device tensor is marked as used by the compute stream so its memory is not reused early.
        """
        import torch

        if not self.cuda:
            return host.to(self.device)
        if not host.is_pinned():
            host = host.pin_memory()
        compute = torch.cuda.current_stream(torch.device(self.device))
        if self._stream is None:
            self._stream = torch.cuda.Stream(torch.device(self.device))
        with torch.cuda.stream(self._stream):
            values = host.to(self.device, non_blocking=True)
        compute.wait_stream(self._stream)
        values.record_stream(compute)
        return values

    def to_host(self, probs: torch.Tensor | np.ndarray) -> Callable[[], np.ndarray]:
        """Queue the copy of a pass's answers back; the returned function waits for them.

        On CUDA the copy goes into pinned memory behind the pass on the compute stream, and an
        event marks its end, so waiting for this pass does not wait for a pass queued after it.
        """
        import torch

        if not isinstance(probs, torch.Tensor):
            ready = np.asarray(probs, dtype=np.float32)
            return lambda: ready
        if probs.device.type != "cuda":
            done = probs.float().cpu().numpy()
            return lambda: done
        host = torch.empty(tuple(probs.shape), dtype=torch.float32, pin_memory=True)
        host.copy_(probs.float(), non_blocking=True)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(probs.device))

        def wait() -> np.ndarray:
            event.synchronize()
            return host.numpy()

        return wait
