"""The environment a process runs in, fingerprinted, so that a fleet computes with one.

"A single container image across all workers": small differences in libraries, CUDA or
dependencies give answers that differ without an error. A :class:`Fingerprint` records what can
change an answer (Python, the answer packages, the native audio libraries, the GPU and CUDA
libraries, the models' weights) and, apart, every installed distribution. A job records the
fingerprint it started with; its driver gives a worker whose fingerprint differs in what can change
an answer no partitions, and every part's provenance names the digest of the worker that made it.
``lidframe env`` prints this machine's.

It is its own package, not a part of ``store`` (which only keeps the job's record) nor of ``observe``
(which watches what the models *said*): a fingerprint is read on workers, compared by the driver,
written into parts and printed by the command, and it imports nothing of lidframe, so each of them
may use it. Modules, each importing only those above it:

* ``_collect``: what this process runs on (versions from metadata, native libraries from their
  modules, the GPU from ``nvidia-smi``), :data:`ANSWER_PACKAGES`.
* ``_fingerprint``: :class:`Fingerprint`, its two digests, and :func:`fingerprint`, this process's.
* ``_compare``: :func:`differences` between two fingerprints (:class:`Difference`, the rule of what
  can change an answer), :func:`describe` and :func:`worker_line`, a worker's difference in one
  line.
* ``_plugin``: :class:`EnvironmentPlugin`, the Dask worker plugin that reads a worker's fingerprint
  when it joins, and :func:`worker_fingerprint`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lidframe._lazy import lazy_exports

if TYPE_CHECKING:
    from lidframe.environment._collect import ANSWER_PACKAGES
    from lidframe.environment._compare import Difference, describe, differences, worker_line
    from lidframe.environment._fingerprint import Fingerprint, fingerprint
    from lidframe.environment._plugin import TOPIC, EnvironmentPlugin, worker_fingerprint

_EXPORTS = {
    "ANSWER_PACKAGES": "lidframe.environment._collect",
    "Difference": "lidframe.environment._compare",
    "EnvironmentPlugin": "lidframe.environment._plugin",
    "Fingerprint": "lidframe.environment._fingerprint",
    "TOPIC": "lidframe.environment._plugin",
    "describe": "lidframe.environment._compare",
    "differences": "lidframe.environment._compare",
    "fingerprint": "lidframe.environment._fingerprint",
    "worker_fingerprint": "lidframe.environment._plugin",
    "worker_line": "lidframe.environment._compare",
}
__all__ = [
    "ANSWER_PACKAGES",
    "TOPIC",
    "Difference",
    "EnvironmentPlugin",
    "Fingerprint",
    "describe",
    "differences",
    "fingerprint",
    "worker_fingerprint",
    "worker_line",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
