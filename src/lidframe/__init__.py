"""lidframe: spoken language identification over very large audio collections, on Dask.

Importing lidframe has no side effects: no Dask configuration, environment variable or model is
touched until a function is called. The public names below are imported on first use (PEP 562), so
``import lidframe.audio`` in a decoder process does not pull in Dask, torch or the evaluation code.

Data flows one way, and each package imports only those before it::

    errors settings columns languages dataframes cluster   small modules every package may use
    environment  the fingerprint of a process's environment: what can change an answer
    audio      URI -> mono float32 window (decoders, storage, limits, the decoder pool)
    speech     voice activity: what the models hear, ``und`` without speech
    models     the LidModel interface, the registry, entry points and the built-in families
    manifest   manifests on storage, planned as a stream, read a partition at a time
    results    the results folder: staged Parquet parts, owner marker, provenance, typed reading
    consensus  per-model answers -> one answer per row (row reference, frame operations, cascade)
    kernel     one partition: decode -> listen -> prepare -> forward -> the row's answer
    store      the job database: jobs, partitions, leases, results, evaluations
    job        a resumable run: settings, identity, the driver, and the one module on workers
    eval       scores against ground truth, calibration fitting, comparison, the HTML report
    cli        the ``lidframe`` command: flags -> library calls
    testing    synthetic labelled speech and audio files, for users' tests and ours

Each package's docstring draws its modules' order; modules whose names start with ``_`` are
internal to their package.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from lidframe._lazy import lazy_exports

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
    from lidframe.review import review
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
    "review": "lidframe.review",
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
    "review",
    "run",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


# Functions named as a subpackage is: ``lidframe.consensus(...)``, ``lidframe.review(...)``.
_FUNCTIONS_OVER_PACKAGES = frozenset({"consensus", "review"})


class _Package(types.ModuleType):
    """The ``lidframe`` module: keeps ``lidframe.consensus`` and ``lidframe.review`` the functions.

    Importing the submodule ``lidframe.consensus`` would otherwise bind the module over the function
    of the same name; the submodule stays importable (``from lidframe.consensus import ...``).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FUNCTIONS_OVER_PACKAGES and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
