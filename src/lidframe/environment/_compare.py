"""How two fingerprints differ, and which differences can change an answer.

The rule (:func:`differences` marks each :class:`Difference` with ``changes_answers``):

* **Can change an answer, refused:** Python (implementation and version), the CPU architecture, the
  version of any answer package (:data:`~lidframe.environment._collect.ANSWER_PACKAGES` and the
  distributions of entry-point model families; installed on one side only counts), libsndfile,
  libsoxr or FFmpeg, the GPU model, its driver, the CUDA runtime, cuDNN or cuBLAS (a GPU on one side
  only counts), and a model's weights digest (compared only where both sides loaded the model).
* **Cannot, reported:** the host, the platform string (kernel release), and any other installed
  distribution (a linter, a notebook widget, a newer Dask), named one by one when both lists are
  at hand and by their digest otherwise; and the GPU, its driver and the CUDA libraries when every
  model of the job runs on the CPU (``accelerator=False``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lidframe.environment._fingerprint import Fingerprint

__all__ = ["Difference", "describe", "differences", "worker_line"]

# How the accelerator's fields are named in a difference.
_ACCELERATOR_NAMES = {
    "gpu": "GPU",
    "driver": "NVIDIA driver",
    "cuda_runtime": "CUDA runtime",
    "cudnn": "cuDNN",
    "cublas": "cuBLAS",
}


@dataclass(frozen=True)
class Difference:
    """One thing two environments hold differently: theirs (a worker's) and ours (the job's)."""

    what: str
    theirs: str | None
    ours: str | None
    changes_answers: bool

    def __str__(self) -> str:
        return f"{self.what} {self.theirs or 'absent'} != {self.ours or 'absent'}"


def differences(
    theirs: Fingerprint, ours: Fingerprint, *, accelerator: bool = True
) -> list[Difference]:
    """What ``theirs`` (a worker's environment) holds differently from ``ours`` (the job's), those
    that can change an answer first. ``accelerator``: whether the GPU and CUDA libraries can
    change an answer (False when every model of the job runs on the CPU)."""
    found: list[Difference] = []

    def add(what: str, a: object, b: object, changes: bool = True) -> None:
        if a != b:
            text = [None if v is None else str(v) for v in (a, b)]
            found.append(Difference(what, text[0], text[1], changes))

    add("python", theirs.python, ours.python)
    add("machine", theirs.machine, ours.machine)
    for name in sorted(set(theirs.packages) | set(ours.packages)):
        add(name, theirs.packages.get(name), ours.packages.get(name))
    for name in sorted(set(theirs.libraries) | set(ours.libraries)):
        add(name, theirs.libraries.get(name), ours.libraries.get(name))
    found += _accelerator(theirs.accelerator, ours.accelerator, accelerator)
    for alias in sorted(set(theirs.models) & set(ours.models)):
        a, b = theirs.models[alias], ours.models[alias]
        if a is not None and b is not None:
            add(f"weights of {alias}", _short(a), _short(b))
    found += _distributions(theirs, ours)
    return sorted(found, key=lambda d: not d.changes_answers)  # stable: in the order above


def _accelerator(
    theirs: Mapping[str, str | None] | None, ours: Mapping[str, str | None] | None, counts: bool
) -> list[Difference]:
    if theirs == ours:
        return []
    if theirs is None or ours is None:
        gpu = [None if a is None else a.get("gpu") or "unknown" for a in (theirs, ours)]
        return [Difference("GPU", gpu[0] or "none", gpu[1] or "none", counts)]
    keys = set(theirs) | set(ours)
    ordered = [k for k in _ACCELERATOR_NAMES if k in keys] + sorted(keys - set(_ACCELERATOR_NAMES))
    return [
        Difference(_ACCELERATOR_NAMES.get(k, k), theirs.get(k), ours.get(k), counts)
        for k in ordered
        if theirs.get(k) != ours.get(k)
    ]


def _distributions(theirs: Fingerprint, ours: Fingerprint) -> list[Difference]:
    """The other installed distributions, one by one when both lists are known."""
    if theirs.distributions_digest == ours.distributions_digest:
        return []
    if not theirs.distributions or not ours.distributions:
        return [
            Difference(
                "installed distributions",
                theirs.distributions_digest,
                ours.distributions_digest,
                False,
            )
        ]
    compared = set(theirs.packages) | set(ours.packages)
    names = set(theirs.distributions) | set(ours.distributions)
    return [
        Difference(name, theirs.distributions.get(name), ours.distributions.get(name), False)
        for name in sorted(names - compared)
        if theirs.distributions.get(name) != ours.distributions.get(name)
    ]


def _short(digest: str) -> str:
    """``sha256:0123456789ab`` (the first 12 hex digits say enough in a line)."""
    prefix, _, hexdigits = digest.rpartition(":")
    return f"{prefix}:{hexdigits[:12]}" if prefix else hexdigits[:12]


def describe(found: Sequence[Difference], *, of: str = "the job", limit: int = 4) -> str:
    """``soxr 1.0.0 != 1.1.0, numpy 2.4.6 != 2.4.5 of the job`` (the first ``limit``, then how
    many more); '' for none. The phrase a one-line warning about a worker adds."""
    if not found:
        return ""
    shown = ", ".join(str(d) for d in found[:limit])
    more = f" and {len(found) - limit} more" if len(found) > limit else ""
    return f"{shown}{more} of {of}" if of else f"{shown}{more}"


def worker_line(
    worker: str, host: str | None, found: Sequence[Difference], *, allowed: bool = False
) -> str | None:
    """The one line naming how ``worker`` differs from the job, None when it does not:

    * ``worker tcp://10.0.0.7:4567 (host h): soxr 1.0.0 != 1.1.0 of the job; no partitions
      (--allow-mixed-environments to allow)``, or ``...; allowed (--allow-mixed-environments)``
      when mixed environments are allowed;
    * ``worker ... (host h): pytest 8.3.0 != 8.4.1 of the job; cannot change an answer, not
      refused`` when nothing that can change an answer differs.
    """
    answers = [d for d in found if d.changes_answers]
    where = f"worker {worker} (host {host or '?'})"
    if answers:
        what = describe(answers)
        if allowed:
            return f"{where}: {what}; allowed (--allow-mixed-environments)"
        return f"{where}: {what}; no partitions (--allow-mixed-environments to allow)"
    if found:
        return f"{where}: {describe(found, limit=3)}; cannot change an answer, not refused"
    return None
