"""The fingerprint of an environment: what can change an answer, and the rest, reported.

Two digests, each the first 16 hex digits of a sha256 over canonical JSON:

* :attr:`Fingerprint.digest` over what can change an answer: Python, the machine's architecture,
  the answer packages' versions (:data:`~lidframe.environment._collect.ANSWER_PACKAGES`), the
  native audio libraries, and the GPU with its driver and CUDA libraries. It is known when a
  process starts, before any model is loaded, so ``lidframe env`` on a node prints the digest that
  the parts made there carry in their provenance: ``grep`` the fleet for it.
* :attr:`Fingerprint.distributions_digest` over every installed distribution (name and version):
  a new linter or notebook widget changes it, and no answer.

The models' weights digests (:mod:`lidframe.models.digest`) are part of the fingerprint too
(:attr:`Fingerprint.models`, by column alias) but not of :attr:`~Fingerprint.digest`: they are known
only once a process has loaded the models, and a part's provenance records each model's already.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["Fingerprint", "fingerprint"]


@dataclass(frozen=True)
class Fingerprint:
    """One process's environment (see the module docstring for what each digest covers)."""

    # "CPython 3.11.2"
    python: str
    # The CPU architecture (platform.machine(): x86_64, aarch64).
    machine: str
    # Versions of the distributions that can change an answer, those installed, by name.
    packages: Mapping[str, str] = field(default_factory=dict)
    # libsndfile, libsoxr and FFmpeg as the modules that load them report them (None: absent).
    libraries: Mapping[str, str | None] = field(default_factory=dict)
    # gpu, driver, cuda_runtime, cudnn, cublas of the GPU the process computes on; None on the CPU.
    accelerator: Mapping[str, str | None] | None = None
    # Weights digest of each model by column alias, once loaded (lidframe.models.digest).
    models: Mapping[str, str | None] = field(default_factory=dict)
    # Reported, never compared: where it ran.
    host: str = ""
    platform: str = ""
    # Every installed distribution by name (empty when only its digest was kept).
    distributions: Mapping[str, str] = field(default_factory=dict)
    # The digest of ``distributions`` when they were dropped (None: computed from them).
    kept_distributions_digest: str | None = None

    @property
    def digest(self) -> str:
        """The digest of what can change an answer (the models' weights apart)."""
        return _digest(
            {
                "python": self.python,
                "machine": self.machine,
                "packages": dict(self.packages),
                "libraries": dict(self.libraries),
                "accelerator": None if self.accelerator is None else dict(self.accelerator),
            }
        )

    @property
    def distributions_digest(self) -> str:
        """The digest of every installed distribution's name and version."""
        if self.kept_distributions_digest is not None:
            return self.kept_distributions_digest
        return _digest(dict(self.distributions))

    def with_models(self, models: Mapping[str, str | None]) -> Fingerprint:
        """This fingerprint with the weights digests of ``models`` (by alias)."""
        return replace(self, models=dict(models))

    def compact(self) -> Fingerprint:
        """Without the list of every distribution (its digest kept): what a task carries."""
        return replace(self, distributions={}, kept_distributions_digest=self.distributions_digest)

    def record(self) -> dict[str, Any]:
        """As JSON-ready values, both digests included (what a job and ``lidframe env --json``
        record)."""
        return {
            "digest": self.digest,
            "python": self.python,
            "machine": self.machine,
            "packages": dict(self.packages),
            "libraries": dict(self.libraries),
            "accelerator": None if self.accelerator is None else dict(self.accelerator),
            "models": dict(self.models),
            "host": self.host,
            "platform": self.platform,
            "distributions_digest": self.distributions_digest,
            "distributions": dict(self.distributions),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> Fingerprint | None:
        """The fingerprint :meth:`record` wrote; None for a record without one (a job made before
        lidframe fingerprinted environments stored only versions and host)."""
        if not record or "digest" not in record or "machine" not in record:
            return None
        distributions = dict(record.get("distributions") or {})
        return cls(
            python=str(record["python"]),
            machine=str(record["machine"]),
            packages=dict(record.get("packages") or {}),
            libraries=dict(record.get("libraries") or {}),
            accelerator=None if record.get("accelerator") is None else dict(record["accelerator"]),
            models=dict(record.get("models") or {}),
            host=str(record.get("host") or ""),
            platform=str(record.get("platform") or ""),
            distributions=distributions,
            kept_distributions_digest=None if distributions else record.get("distributions_digest"),
        )

    def text(self) -> str:
        """Human-readable, one thing a line, for ``lidframe env`` (what can change an answer
        first)."""
        lines = [
            f"environment {self.digest} (what can change an answer)",
            f"  python          {self.python} on {self.machine}",
        ]
        lines += [f"  {name:<15} {version}" for name, version in self.packages.items()]
        lines += [f"  {name:<15} {version or 'absent'}" for name, version in self.libraries.items()]
        if self.accelerator is None:
            lines.append("  gpu             none (CPU)")
        else:
            lines += [
                f"  {name:<15} {value or 'unknown'}" for name, value in self.accelerator.items()
            ]
        lines += [f"  weights         {alias}: {digest}" for alias, digest in self.models.items()]
        count = f"{len(self.distributions)} " if self.distributions else ""
        lines += [
            f"distributions {self.distributions_digest} (all {count}installed; reported, not "
            "compared)",
            f"host          {self.host} ({self.platform})",
        ]
        return "\n".join(lines)


@functools.lru_cache(maxsize=1)
def fingerprint() -> Fingerprint:
    """This process's fingerprint, without models, read once per process (what a process loaded
    does not change while it runs; a package installed meanwhile is not what it runs)."""
    from lidframe.environment._collect import collect

    return Fingerprint(**collect())


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
