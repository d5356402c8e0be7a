"""Versions and host of the process that writes a job or an evaluation, stored with it."""

from __future__ import annotations

import platform
import socket
import sys
from importlib import metadata
from typing import Any

__all__ = ["environment"]

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
