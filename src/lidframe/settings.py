"""Settings declared once: each field of a run's configuration says whether it changes results.

A field made with :func:`setting` carries ``identity`` in its metadata: ``True`` (its value is part of
the job's identity), ``False`` (speed, limits on waiting, credentials: a job can resume with another
value), or a function giving the value to record (a calibration file -> its fitted parameters).
:func:`identity` walks a configuration (dataclasses nest) and returns the identifying part, which
:mod:`lidframe.job` hashes into the job id. A field without the declaration is refused when the class
is used, so a new setting cannot be added without deciding whether it changes results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

__all__ = ["identity", "setting"]

_KEY = "lidframe.identity"
_OMIT = "lidframe.identity.omit_default"


def setting(
    default: Any = dataclasses.MISSING,
    *,
    identity: bool | Callable[[Any], Any],
    factory: Callable[[], Any] | None = None,
    omit_default: bool = False,
) -> Any:
    """A dataclass field that declares whether it is part of a job's identity.

    ``omit_default``: an identifying setting added after jobs were started leaves the identity
    untouched at its default, so those jobs keep their ids (and resume).
    """
    metadata = {_KEY: identity, _OMIT: omit_default}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def identity(config: Any) -> dict[str, Any]:
    """The identifying settings of a dataclass instance, nested dataclasses included.

    Raises ``TypeError`` naming a field that does not declare whether it is identifying.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        if _KEY not in f.metadata:
            raise TypeError(
                f"{type(config).__name__}.{f.name} does not declare whether it changes results "
                "(make it with lidframe.settings.setting(identity=...))"
            )
        declared = f.metadata[_KEY]
        if declared is False:
            continue
        value = getattr(config, f.name)
        if f.metadata.get(_OMIT) and value == f.default:
            continue
        if callable(declared):
            value = declared(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = identity(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out
