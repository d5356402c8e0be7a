"""Whether a Hugging Face hub id can be loaded here, decided in seconds.

huggingface_hub retries a hub it cannot reach with growing back-off (about 30 s here before it gives
up), and it does so for every file; a model that cannot be loaded should instead fail in seconds
with a line saying how to provide it. So before a family loads a hub id, :func:`hub_access` checks
whether the model's files are in the local Hugging Face cache and whether the hub endpoint
(``HF_ENDPOINT``, huggingface.co by default) accepts a TCP connection at all:

* reachable: load normally (``local_files_only=False``);
* unreachable but cached: load from the cache only (``local_files_only=True``), with no retries;
* unreachable and not cached: :class:`~lidframe.errors.ModelError` at once.

``HF_HUB_OFFLINE=1`` is respected: the cache alone is used.
"""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlsplit

from lidframe.errors import ModelError

__all__ = ["hub_access"]

_PROBE_TIMEOUT = 5.0
_reachable: dict[str, tuple[float, str | None]] = {}  # endpoint -> (checked at, why not)


def _unreachable_reason(endpoint: str) -> str | None:
    """None when ``endpoint`` accepts a TCP connection, else why not (cached for a minute)."""
    checked = _reachable.get(endpoint)
    if checked is not None and time.monotonic() - checked[0] < 60:
        return checked[1]
    parts = urlsplit(endpoint)
    host = parts.hostname or endpoint
    port = parts.port or (443 if parts.scheme != "http" else 80)
    why: str | None = None
    try:
        socket.create_connection((host, port), timeout=_PROBE_TIMEOUT).close()
    except OSError as exc:
        why = f"{host}:{port}: {exc}"
    _reachable[endpoint] = (time.monotonic(), why)
    return why


def hub_access(repo_id: str, filename: str, hint: str) -> bool:
    """Return ``local_files_only`` for loading ``repo_id``, or raise :class:`ModelError` now.

    ``filename`` is a file every snapshot of the model has (``config.json``, ``hyperparams.yaml``).
    """
    from huggingface_hub import constants, try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache(repo_id, filename), str)
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        if not cached:
            raise ModelError(
                f"{repo_id} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set. {hint}"
            )
        return True
    why = _unreachable_reason(constants.ENDPOINT)
    if why is None:
        return False
    if cached:
        return True
    raise ModelError(
        f"cannot load {repo_id}: the Hugging Face hub cannot be reached ({why}) and the model is "
        f"not in the local cache. {hint}"
    )
