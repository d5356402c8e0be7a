"""What identifies a job: its manifest (what storage says of its files: names, sizes, ETags or
modification times, :attr:`lidframe.manifest.Manifest.identity`), its output, its models and every
setting that changes results (:meth:`lidframe.run_config.RunConfig.identity`, declared on each
field). Two runs with the same of all of these are the same job, so running a command again resumes.

Settings that only change speed (batch size, workers, decode threads, device) are not part of it: a
job can be resumed on other hardware.
"""

from __future__ import annotations

import hashlib
import json
import platform
import socket
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from lidframe.errors import ConfigError

__all__ = ["JobSpec", "environment"]

_PACKAGES = (
    "lidframe",
    "torch",
    "torchaudio",
    "transformers",
    "speechbrain",
    "numpy",
    "pandas",
    "pyarrow",
    "dask",
    "distributed",
    "sqlalchemy",
)


@dataclass(frozen=True)
class JobSpec:
    manifest: str
    manifest_digest: str
    out: str
    models: tuple[str, ...]
    config: dict[str, Any] = field(default_factory=dict)

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


def check_job_id(job_id: str) -> str:
    job_id = job_id.strip()
    if not job_id or len(job_id) > 200 or any(ord(c) < 32 for c in job_id):
        raise ConfigError(f"--job must be 1-200 printable characters, got {job_id!r}")
    return job_id


def environment() -> dict[str, Any]:
    """Versions and host of this process, stored with a job."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "packages": versions,
    }
