"""Storage for decoding: timeouts on remote stores, and store failures as row errors.

Why this shape:

* **Files through fsspec**, opened as seekable file objects by :func:`~lidframe.audio.decode_window`,
  so a 2-hour file on S3 costs a few range requests, not a download. :func:`locate` finds the store
  and checks the file's size against the limits before anything is read.
* **Bounded time.** Remote stores get connect and read timeouts (:attr:`AudioConfig.io_timeout
  <lidframe.audio.AudioConfig.io_timeout>`, applied by :func:`with_io_timeouts`), so a store that
  accepts connections and never answers fails the read instead of hanging it; the hard limit on a
  whole row (:attr:`AudioConfig.timeout <lidframe.audio.AudioConfig.timeout>`) is enforced by
  the decoder pool, which runs decoding in a child process it can kill.
* **A failure says whose it is.** :func:`storage_error` tells ``timeout`` and ``access_denied``
  (which say something about the whole job) and ``not_found`` apart from other read failures
  (``read_failed``) and from a decoder's failure (``decode_failed``), looking along the chain of
  causes, since stores wrap one exception in another.

:func:`with_io_timeouts` is public: a job opens its manifest with the same timeouts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import fsspec

from lidframe.audio._limits import AudioConfig
from lidframe.errors import AudioError

__all__ = ["locate", "storage_error", "with_io_timeouts"]


def locate(
    uri: str, storage_options: Mapping[str, Any] | None, config: AudioConfig
) -> tuple[fsspec.AbstractFileSystem, str]:
    """The store and path of ``uri``, its size checked against ``config``: ``empty``, ``too_large``."""
    try:
        fs, path = fsspec.core.url_to_fs(
            uri, **with_io_timeouts(uri, storage_options, config.io_timeout)
        )
    except (ValueError, ImportError) as exc:
        raise AudioError("read_failed", f"{uri}: cannot open this URI: {exc}") from exc
    try:
        size = fs.size(path)
    except Exception as exc:
        raise storage_error(uri, "cannot stat", exc) from exc
    if size is None:
        size = -1
    if size == 0:
        raise AudioError("empty", f"{uri}: the file is empty (0 bytes)")
    if size > config.max_bytes:
        raise AudioError(
            "too_large", f"{uri}: {size} bytes exceeds AudioConfig.max_bytes={config.max_bytes}"
        )
    return fs, path


def with_io_timeouts(
    uri: str, storage_options: Mapping[str, Any] | None, io_timeout: float
) -> dict[str, Any]:
    """``storage_options`` plus connect/read timeouts for the store of ``uri`` (S3, HTTP).

    Options the user set win. S3 (botocore): ``connect_timeout``, ``read_timeout`` and two attempts in
    ``config_kwargs`` (s3fs retries timeouts a few more times; the hard per-row limit caps all of
    it). HTTP (aiohttp): ``sock_connect`` and
    ``sock_read``. Other stores keep their own defaults; the hard per-row limit still bounds them.
    """
    options = dict(storage_options or {})
    protocol = uri.split("://", 1)[0].lower() if "://" in uri else "file"
    if protocol in ("s3", "s3a"):
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("connect_timeout", io_timeout)
        config.setdefault("read_timeout", io_timeout)
        config.setdefault("retries", {"max_attempts": 2, "mode": "standard"})
        options["config_kwargs"] = config
    elif protocol in ("http", "https"):
        import aiohttp

        client = dict(options.get("client_kwargs") or {})
        client.setdefault(
            "timeout", aiohttp.ClientTimeout(sock_connect=io_timeout, sock_read=io_timeout)
        )
        options["client_kwargs"] = client
    return options


# Error codes of object stores that mean "these credentials may not read this".
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "403",
        "401",
    }
)
_DENIED_TYPES = frozenset(
    {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}
)
_TIMEOUT_TYPES = frozenset(
    {"FSTimeoutError", "ReadTimeoutError", "ConnectTimeoutError", "ServerTimeoutError"}
)


def storage_error(uri: str, what: str, exc: BaseException) -> AudioError:
    """The row error for an exception from a store or decoder, its category found along the chain.

    ``access_denied`` (refused or missing credentials) and ``timeout`` are told apart from other
    read failures because they say something about the whole job, not this file.
    """
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and all(cause is not seen for seen in chain):
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join((str(exc) or type(exc).__name__).split())
    # The most telling cause wins, wherever it is in the chain: fsspec's HTTP store, for one,
    # raises FileNotFoundError *from* a timeout or a refused connection.
    for category, matches in (
        ("timeout", _is_timeout),
        ("access_denied", _is_denied),
        ("read_failed", _is_connection_error),
    ):
        if any(matches(c) for c in chain):
            return AudioError(category, f"{uri}: {what}: {type(exc).__name__}: {text}")
    if any(isinstance(c, FileNotFoundError) for c in chain):
        return AudioError("not_found", f"{uri}: no such file")
    storage = any(
        isinstance(c, OSError) or type(c).__module__.split(".")[0] in _STORE_MODULES for c in chain
    )
    category = "read_failed" if storage else "decode_failed"
    return AudioError(category, f"{uri}: {what}: {type(exc).__name__}: {text}")


_STORE_MODULES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec", "gcsfs", "adlfs")


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or type(exc).__name__ in _TIMEOUT_TYPES


def _is_denied(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    code = str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
    return (
        isinstance(exc, PermissionError)
        or type(exc).__name__ in _DENIED_TYPES
        or code in _DENIED_CODES
    )


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError) or type(exc).__name__ in (
        "ClientConnectorError",
        "ClientOSError",
        "ServerDisconnectedError",
        "EndpointConnectionError",
    )
