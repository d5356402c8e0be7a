"""A digest of the weights a process actually loaded, for the provenance of its results.

The digest is a sha256 over every tensor of the model's torch modules (their ``state_dict``: name,
dtype, shape and bytes, in the modules' own order), as they sit in memory after loading: in the
dtype and with the values the model answers with. So it names what produced an answer whatever the
weights' file format, download route or conversion (packaged whisper-base goes through a
CTranslate2 to transformers conversion), and two workers that loaded different weights under the
same name disagree. The same weights loaded in another dtype (bfloat16 on a GPU) give another
digest: they are other numbers; the dtype is recorded beside it.

Measured on the development machine (2 shared CPU cores): 0.3 to 0.6 s for whisper-base (400 MB of
float32 tensors, its tied embedding counted twice) against 6 to 7 s to load it, once per process and
model; 5 ms for the test ECAPA. The packaged model.bin's own sha256 takes 0.17 s but names a file,
not what the process holds after conversion.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

__all__ = ["PREFIX", "tensors_digest", "torch_modules"]

PREFIX = "sha256:"


def torch_modules(owner: object) -> list[tuple[str, Any]]:
    """The torch modules held in ``owner``'s attributes, by attribute name (sorted)."""
    try:
        import torch
    except ImportError:  # a family without torch has no tensors to hash
        return []
    return sorted(
        (name, value) for name, value in vars(owner).items() if isinstance(value, torch.nn.Module)
    )


def _tensors(items: Iterable[tuple[str, Any]]) -> Iterable[tuple[str, Any]]:
    """The plain tensors of a ``state_dict``'s items, those packed in tuples and those inside a
    tensor subclass too (an int8 layer's weight is a torchao tensor whose integers, scales and zero
    points are its inner tensors, named by ``__tensor_flatten__``)."""
    import torch

    for name, value in items:
        if isinstance(value, torch.Tensor) and hasattr(value, "__tensor_flatten__"):
            inner, _ = value.__tensor_flatten__()
            yield from _tensors((f"{name}.{attr}", getattr(value, attr)) for attr in inner)
        elif isinstance(value, torch.Tensor):
            yield name, value
        elif isinstance(value, (tuple, list)):
            yield from _tensors((f"{name}.{i}", v) for i, v in enumerate(value))


def tensors_digest(modules: Iterable[tuple[str, Any]]) -> str | None:
    """``sha256:HEX`` over the tensors of ``modules`` (``(name, torch module)``); None when there
    are none."""
    import torch

    digest = hashlib.sha256()
    count = 0
    for prefix, module in modules:
        for name, tensor in _tensors(module.state_dict(keep_vars=False).items()):
            flat = tensor.detach().to("cpu").contiguous().reshape(-1)
            header = f"{prefix}.{name}|{flat.dtype}|{tuple(tensor.shape)}\n"
            digest.update(header.encode())
            digest.update(flat.view(torch.uint8).numpy().data)
            count += 1
    return PREFIX + digest.hexdigest() if count else None
