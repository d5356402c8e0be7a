"""lidframe: spoken language identification over very large audio collections, on Dask.

Importing lidframe has no side effects: no Dask configuration, environment variable or model is
touched until a function is called.
"""

from lidframe.audio import AudioConfig, decode_window

# Bound last: the function `lidframe.consensus` (its module stays importable as lidframe.consensus).
from lidframe.calibration import Calibration, fit_calibration, load_calibration
from lidframe.consensus import consensus
from lidframe.errors import AudioError, ConfigError, LidframeError, ManifestError, ModelError
from lidframe.eval import Evaluation, evaluate
from lidframe.manifest import read_manifest
from lidframe.models import LidModel, ModelSpec, available_models, load_model, parse_model
from lidframe.pipeline import RunSummary, identify, run

__version__ = "0.1.0"

__all__ = [
    "AudioConfig",
    "Calibration",
    "AudioError",
    "ConfigError",
    "Evaluation",
    "LidModel",
    "LidframeError",
    "ManifestError",
    "ModelError",
    "ModelSpec",
    "RunSummary",
    "__version__",
    "available_models",
    "consensus",
    "decode_window",
    "evaluate",
    "fit_calibration",
    "identify",
    "load_calibration",
    "load_model",
    "parse_model",
    "read_manifest",
    "run",
]
