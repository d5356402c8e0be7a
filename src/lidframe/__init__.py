"""lidframe: spoken language identification over very large audio collections, on Dask.

Importing lidframe has no side effects: no Dask configuration, environment variable or model is
touched until a function is called. The public names below are imported on first use (PEP 562), so
``import lidframe.audio`` in a decoder process does not pull in Dask, torch or the evaluation code.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lidframe.audio import AudioConfig, decode_window
    from lidframe.consensus import Calibration, consensus, load_calibration
    from lidframe.errors import (
        AudioError,
        ConfigError,
        JobFailed,
        JobInterrupted,
        LidframeError,
        ManifestError,
        ModelError,
    )
    from lidframe.eval import Evaluation, evaluate, fit_calibration
    from lidframe.job import RunConfig, RunSummary, run
    from lidframe.kernel import identify
    from lidframe.manifest import open_manifest, read_manifest
    from lidframe.models import LidModel, ModelSpec, available_models, load_model, parse_model
    from lidframe.results import read_provenance, read_results
    from lidframe.speech import SpeechConfig

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "AudioConfig": "lidframe.audio",
    "decode_window": "lidframe.audio",
    "Calibration": "lidframe.consensus",
    "fit_calibration": "lidframe.eval",
    "load_calibration": "lidframe.consensus",
    "consensus": "lidframe.consensus",
    "AudioError": "lidframe.errors",
    "ConfigError": "lidframe.errors",
    "JobFailed": "lidframe.errors",
    "JobInterrupted": "lidframe.errors",
    "LidframeError": "lidframe.errors",
    "ManifestError": "lidframe.errors",
    "ModelError": "lidframe.errors",
    "Evaluation": "lidframe.eval",
    "evaluate": "lidframe.eval",
    "open_manifest": "lidframe.manifest",
    "read_manifest": "lidframe.manifest",
    "LidModel": "lidframe.models",
    "ModelSpec": "lidframe.models",
    "available_models": "lidframe.models",
    "load_model": "lidframe.models",
    "parse_model": "lidframe.models",
    "RunConfig": "lidframe.job._config",
    "RunSummary": "lidframe.job._summary",
    "SpeechConfig": "lidframe.speech",
    "identify": "lidframe.kernel",
    "run": "lidframe.job._run",
    "read_provenance": "lidframe.results",
    "read_results": "lidframe.results",
}

__all__ = [
    "AudioConfig",
    "AudioError",
    "Calibration",
    "ConfigError",
    "Evaluation",
    "JobFailed",
    "JobInterrupted",
    "LidModel",
    "LidframeError",
    "ManifestError",
    "ModelError",
    "ModelSpec",
    "RunConfig",
    "RunSummary",
    "SpeechConfig",
    "__version__",
    "available_models",
    "consensus",
    "decode_window",
    "evaluate",
    "fit_calibration",
    "identify",
    "load_calibration",
    "load_model",
    "open_manifest",
    "parse_model",
    "read_manifest",
    "read_provenance",
    "read_results",
    "run",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lidframe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


class _Package(types.ModuleType):
    """The ``lidframe`` module: keeps ``lidframe.consensus`` the function.

    Importing the submodule ``lidframe.consensus`` would otherwise bind the module over the function
    of the same name; the submodule stays importable (``from lidframe.consensus import ...``).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "consensus" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
