"""The exception tree of lidframe.

Every error a user can act on is a :class:`LidframeError`; the subclass says which room of the
pipeline raised it (manifest, audio, model, configuration) and the message names the row, file or
setting concerned.
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "ConfigError",
    "LidframeError",
    "ManifestError",
    "ModelError",
    "StoreError",
]


class LidframeError(Exception):
    """Base class of every error lidframe raises on purpose."""


class ConfigError(LidframeError, ValueError):
    """A setting is invalid: the message names the setting and the accepted values."""


class ManifestError(LidframeError, ValueError):
    """The manifest cannot be used: the message names the file, the column or the row."""


class ModelError(LidframeError):
    """A model cannot be found, loaded or run: the message says how to provide it."""


class AudioError(LidframeError):
    """One clip cannot be turned into a waveform.

    ``category`` is a short, stable machine-readable word (``not_found``, ``empty``,
    ``decode_failed``, ``too_long``, ``too_large``, ``too_many_channels``, ``bad_window``,
    ``read_failed``) that ends up in the ``error`` column of the row; the message says why.
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
