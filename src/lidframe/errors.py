"""The exception tree of lidframe.

Every error a user can act on is a :class:`LidframeError`; the subclass says which room of the
pipeline raised it (manifest, audio, model, configuration) and the message names the row, file or
setting concerned. :func:`describe_failure` turns an exception nobody raised on purpose (a task
that failed, planning that broke) into the one line the job database keeps for it.
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "ConfigError",
    "EnvironmentMismatch",
    "JobFailed",
    "JobInterrupted",
    "LidframeError",
    "ManifestError",
    "ModelError",
    "StorageAccessDenied",
    "StoreError",
    "describe_failure",
]


class LidframeError(Exception):
    """Base class of every error lidframe raises on purpose.

    ``exit_status`` is what the ``lidframe`` command exits with when this error ends it: 2 for bad
    input or settings found before any work (the default), 1 for a job that failed while working.
    """

    exit_status: int = 2


class ConfigError(LidframeError, ValueError):
    """A setting is invalid: the message names the setting and the accepted values."""


class ManifestError(LidframeError, ValueError):
    """The manifest cannot be used: the message names the file, the column or the row."""


class ModelError(LidframeError):
    """A model cannot be found, loaded or run: the message says how to provide it."""


class AudioError(LidframeError):
    """One clip cannot be turned into a waveform.

    ``category`` is a short, stable machine-readable word that ends up in the ``error`` column of
    the row (``category: message``); the message names the file and says why. Categories:
    ``not_found``, ``empty``, ``access_denied``, ``read_failed``, ``timeout``, ``bad_header``,
    ``decode_failed``, ``decoder_crashed``, ``truncated``, ``too_long``, ``too_large``,
    ``too_many_channels``, ``bad_window``, ``too_short``.
    """

    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.category = category

    def __str__(self) -> str:
        return f"{self.category}: {super().__str__()}"

    def __reduce__(self) -> tuple[type[AudioError], tuple[str, str]]:
        # Keep the category when the error crosses a process boundary (Dask pickles errors).
        return (type(self), (self.category, self.args[0]))


class StoreError(LidframeError):
    """The job database is unreachable, refused a write, or holds a conflicting job."""


class StorageAccessDenied(LidframeError):
    """Storage refused every row of a partition (missing, expired or wrong credentials).

    Raised on a worker instead of giving every row an ``access_denied`` error: one unreadable file is
    that row's problem, but a partition in which nothing can be read means the credentials are wrong,
    and the job stops so they can be fixed and the job resumed.
    """

    exit_status = 1


class EnvironmentMismatch(LidframeError):
    """A partition task found its worker's environment differs from the job's in something that
    can change an answer (:mod:`lidframe.environment`); it computed nothing, or kept nothing.

    ``worker`` and ``host`` say where; the message is the difference (``soxr 1.0.0 != 1.1.0 of
    the job``). The job's driver gives that worker no more partitions and the partition to another.
    """

    def __init__(self, message: str, worker: str | None = None, host: str | None = None) -> None:
        super().__init__(message)
        self.worker, self.host = worker, host

    def __reduce__(self) -> tuple[type[EnvironmentMismatch], tuple[str, str | None, str | None]]:
        # Keep where it happened when the error crosses a process boundary (Dask pickles errors).
        return (type(self), (self.args[0], self.worker, self.host))


class JobFailed(LidframeError):
    """A job stopped on a systemic failure while working; its state is kept for a resume."""

    exit_status = 1


class JobInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM from the ``lidframe`` command) stopped a job; its state is kept.

    A :class:`KeyboardInterrupt`, so a notebook or a script sees the interrupt it caused; the message
    says how to resume. ``exit_status`` is 130 for SIGINT and 143 for SIGTERM.
    """

    def __init__(self, message: str, exit_status: int = 130) -> None:
        super().__init__(message)
        self.exit_status = exit_status


def describe_failure(exc: BaseException | None) -> str:
    """One line for what ended a partition task or the planning (None: the task was cancelled)."""
    if exc is None:
        return "cancelled"
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    if name == "KilledWorker":
        text = "the task's worker process died (every time it was tried): " + text
    return f"{name}: {text}"[:2000]
