"""The results folder belongs to one job: its owner marker, and the checks before a job writes.

``OUT/_lidframe_job.json`` names the job (:func:`claim_folder`). Another job writing into the folder
is refused unless it is told to replace it (``overwrite``), so two jobs never mix their parts.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from lidframe.errors import ConfigError
from lidframe.results._parts import STAGING, folder_fs, part_files

__all__ = ["MARKER", "check_writable", "claim_folder", "folder_owner"]

MARKER = "_lidframe_job.json"


def check_writable(out: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`ConfigError` unless ``out`` is (or can be made) a folder one can write into."""
    try:
        fs, root = folder_fs(out, storage_options)
        if fs.exists(root) and not fs.isdir(root):
            raise ConfigError(f"--out {out} is a file, not a folder")
        fs.makedirs(root, exist_ok=True)
        probe = f"{root}/.lidframe-probe-{uuid.uuid4().hex}"
        with fs.open(probe, "wb") as fh:
            fh.write(b"lidframe")
        fs.rm(probe)
    except ConfigError:
        raise
    except Exception as exc:
        text = " ".join(str(exc).split())
        raise ConfigError(f"--out {out} is not writable: {type(exc).__name__}: {text}") from exc


def folder_owner(
    out: str, storage_options: Mapping[str, Any] | None = None
) -> tuple[str | None, int]:
    """The job ``out``'s marker names (None: no marker) and how many part files it holds; reads
    only, so a run can refuse another job's folder before it starts any work."""
    fs, root = folder_fs(out, storage_options)
    return _read_owner(fs, f"{root}/{MARKER}"), len(part_files(out, storage_options))


def claim_folder(
    out: str,
    job_id: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    known_owner: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Make ``out`` the folder of ``job_id``, or raise :class:`ConfigError` saying why it is not.

    Refused when ``out`` is a file, cannot be written, or holds another job's parts (named by its
    ``_lidframe_job.json``; ``known_owner`` is the job that the job database says last wrote there,
    for folders written before the marker existed). With ``overwrite``, another job's parts and
    staged files are deleted first. Writing the marker is also the check that ``out`` is writable.
    """
    try:
        fs, root = folder_fs(out, storage_options)
        if fs.exists(root) and not fs.isdir(root):
            raise ConfigError(f"--out {out} is a file, not a folder")
        fs.makedirs(root, exist_ok=True)
        marker = f"{root}/{MARKER}"
        owner = _read_owner(fs, marker)
        parts = part_files(out, storage_options)
        if owner is None and parts:
            owner = known_owner or "an unknown job"
        if owner is not None and owner != job_id:
            if not overwrite:
                raise ConfigError(
                    f"--out {out} holds the results of {_job_words(owner)} ({len(parts)} part "
                    f"files) and a folder holds one job's results: choose another --out, or "
                    f"pass --overwrite to delete them and write job {job_id} there"
                )
            for path in parts:
                fs.rm(path.split("://", 1)[-1])
            if fs.exists(f"{root}/{STAGING}"):
                fs.rm(f"{root}/{STAGING}", recursive=True)
        record = {
            "job_id": job_id,
            "claimed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        record.update(details or {})
        tmp = f"{root}/.{MARKER}.{uuid.uuid4().hex}.tmp"
        with fs.open(tmp, "w") as fh:
            fh.write(json.dumps(record, indent=1, default=str))
        fs.mv(tmp, marker)
        if _read_owner(fs, marker) != job_id:  # another job claimed it at the same moment
            raise ConfigError(f"--out {out} was just claimed by another job; choose another --out")
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"--out {out} is not a writable folder: {type(exc).__name__}: {exc}"
        ) from exc


def _job_words(owner: str) -> str:
    return owner if owner == "an unknown job" else f"job {owner}"


def _read_owner(fs: Any, marker: str) -> str | None:
    try:
        with fs.open(marker, "r") as fh:
            return str(json.load(fh)["job_id"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{marker} is not a lidframe folder marker ({exc}); remove it") from exc
