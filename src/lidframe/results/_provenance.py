"""What every result part says about how it was made, and reading it back.

Each Parquet part carries, as JSON under the key ``lidframe`` of its key-value metadata (readable
with any Parquet tool: ``pyarrow.parquet.read_schema(part).metadata[b"lidframe"]``):

* ``lidframe_version``, ``created`` (UTC ISO time the part was written), ``job_id``, ``partition``
  and ``lease_token`` (the lease it was written under: :mod:`lidframe.results._parts`);
* ``environment``: the digest of the environment of the process that wrote it, what can change
  an answer (:attr:`lidframe.environment.Fingerprint.digest`; ``lidframe env`` on a node prints
  its own), absent in parts written before lidframe fingerprinted environments;
* ``settings``: the job's identifying settings (:meth:`lidframe.RunConfig.identity`, what the job
  id derives from);
* ``models``: per column alias, ``name``, ``family``, ``source``, ``dtype`` (what the worker ran),
  ``labels`` (its label set) and ``weights`` (``sha256:HEX`` of the weights the worker had
  loaded, :mod:`lidframe.models.digest`; null when the process that wrote the part had not loaded
  the model: a partition given up on);
* ``dtypes`` and ``labels`` by alias, as earlier versions wrote them (kept for their readers).

So a results folder copied away from its job database still says what produced it.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
from collections.abc import Mapping, Sequence
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from lidframe.errors import ConfigError
from lidframe.models.spec import ModelSpec

__all__ = ["KEY", "part_provenance", "read_provenance"]

# Key of the provenance JSON in a part's Parquet key-value metadata.
KEY = b"lidframe"


def part_provenance(
    job_id: str,
    partition: int,
    token: str,
    specs: Sequence[ModelSpec],
    labels: Mapping[str, Sequence[str]],
    settings: Mapping[str, Any],
    *,
    environment: str | None = None,
) -> dict[str, Any]:
    """The provenance of one part, written in this process now (weights as it loaded them;
    ``environment``: this process's fingerprint digest)."""
    from lidframe.models.registry import cached_weights

    return {
        "lidframe_version": _version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "job_id": job_id,
        "partition": partition,
        "lease_token": token,
        "environment": environment,
        "settings": dict(settings),
        "models": {
            m.alias: {
                "name": m.name,
                "family": m.family,
                "source": m.source,
                "dtype": m.dtype,
                "labels": list(labels.get(m.alias, ())),
                "weights": cached_weights(m),
            }
            for m in specs
        },
        "dtypes": {m.alias: m.dtype for m in specs},
        "labels": {alias: list(codes) for alias, codes in labels.items()},
    }


def _version() -> str:
    """The installed lidframe's version (``lidframe.__version__`` is the same, from pyproject)."""
    try:
        return importlib.metadata.version("lidframe")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def read_provenance(
    path: str | Any, storage_options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The provenance of one part file, or of a results folder (its first part's: every part of a
    job records the same models and settings; ``partition``, ``lease_token`` and ``created`` are
    the first part's own). Raises :class:`~lidframe.errors.ConfigError` naming the path when there
    is no part, or the part has no lidframe metadata."""
    from lidframe.results._parts import part_files

    path = str(path)
    try:
        fs, root = fsspec.core.url_to_fs(path, **dict(storage_options or {}))
        if fs.isdir(root):
            parts = part_files(path, storage_options)
            if not parts:
                raise ConfigError(
                    f"{path}: no part-*.parquet files (is it a lidframe results folder?)"
                )
            root = parts[0].split("://", 1)[-1]
        with fs.open(root, "rb") as fh:
            metadata = pq.ParquetFile(fh).schema_arrow.metadata or {}
    except ConfigError:
        raise
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        raise ConfigError(f"cannot read {path}: {' '.join(str(exc).split())}") from exc
    if KEY not in metadata:
        raise ConfigError(f"{root}: no lidframe provenance in its Parquet metadata")
    try:
        record = json.loads(metadata[KEY])
    except ValueError as exc:
        raise ConfigError(f"{root}: its lidframe metadata is not JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise ConfigError(f"{root}: its lidframe metadata is not a JSON object")
    return record
