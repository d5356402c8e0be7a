"""What identifies a job: its manifest (what storage says of its files: names, sizes, ETags or
modification times, :attr:`lidframe.manifest.Manifest.identity`), its output, its models and every
setting that changes results (:meth:`lidframe.RunConfig.identity`, declared on each field). Two runs
with the same of all of these are the same job, so running a command again resumes.

Settings that only change speed (batch size, workers, decode threads, device) are not part of it: a
job can be resumed on other hardware.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lidframe.errors import ConfigError
from lidframe.manifest import Manifest

__all__ = ["JobSpec", "check_job_id"]


@dataclass(frozen=True)
class JobSpec:
    """One job: what its id is derived from (changing how would strand every job started before)."""

    manifest: str
    manifest_digest: str
    out: str
    models: tuple[str, ...]
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls, source: Manifest, out: str, models: Sequence[str], settings: Mapping[str, Any]
    ) -> JobSpec:
        """The job of running ``models`` (names as parsed) over ``source`` into ``out`` with the
        identifying ``settings`` (:meth:`~lidframe.RunConfig.identity`). Local paths are made
        absolute: a job is the same from any working directory."""
        return cls(
            manifest=_absolute(source.url),
            manifest_digest=source.identity,
            out=_absolute(out),
            models=tuple(models),
            config=dict(settings),
        )

    @property
    def fingerprint(self) -> str:
        payload = json.dumps(
            {
                "manifest": self.manifest,
                "manifest_digest": self.manifest_digest,
                "out": self.out,
                "models": list(self.models),
                "config": self.config,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()

    @property
    def derived_id(self) -> str:
        """``job-`` and 12 hex digits of the fingerprint."""
        return f"job-{self.fingerprint[:12]}"

    def job_id(self, given: str | None = None) -> str:
        """``given`` (checked), else :attr:`derived_id`."""
        return check_job_id(given) if given else self.derived_id


def check_job_id(job_id: str) -> str:
    """A job id given by the user (``--job``), stripped; a :class:`ConfigError` when unusable."""
    job_id = job_id.strip()
    if not job_id or len(job_id) > 200 or any(ord(c) < 32 for c in job_id):
        raise ConfigError(f"--job must be 1-200 printable characters, got {job_id!r}")
    return job_id


def _absolute(url: str) -> str:
    """Local paths made absolute; URLs unchanged."""
    return url if "://" in url else os.path.abspath(url)
