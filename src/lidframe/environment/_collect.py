"""What this process runs on, read once: versions from the installed distributions' metadata, the
native libraries from the modules that load them, the GPU from ``nvidia-smi``.

* **Versions from metadata, not imports.** ``importlib.metadata`` reads a distribution's version
  from its ``METADATA`` file, the first one on ``sys.path``, which is the one ``import`` finds too
  (a different soxr placed first on a worker's ``PYTHONPATH`` is what that worker runs and what it
  reports). Nothing is imported just to ask its version: torch, transformers and SpeechBrain take
  seconds to import.
* **Native libraries from their modules.** A wheel's version does not say which libsndfile it
  loaded (soundfile uses the system's when there is one), nor which FFmpeg PyAV bundles: those are
  asked of ``soundfile``, ``soxr`` and ``av`` themselves, the light modules lidframe decodes with.
* **The GPU from ``nvidia-smi``**, which comes with the driver: the model and driver of the first
  device ``CUDA_VISIBLE_DEVICES`` shows this process (what PyTorch calls ``cuda``), without
  initialising CUDA in it. The CUDA runtime, cuDNN and cuBLAS are the versions of the NVIDIA
  wheels PyTorch loads (``nvidia-cuda-runtime-cu12`` ...), else the CUDA version PyTorch was built
  with (read from ``torch/version.py``, not imported). None without a visible GPU.

Measured on the development machine (2 shared cores, load 2.7): about 0.9 s, most of it importing
soundfile (numpy and cffi) and PyAV; a worker that decodes audio imports them anyway. Read once per
process (:func:`~lidframe.environment.fingerprint`), when a worker joins.
"""

from __future__ import annotations

import ast
import os
import platform
import re
import shutil
import socket
import subprocess
from importlib import metadata
from importlib.util import find_spec
from typing import Any

__all__ = ["ANSWER_PACKAGES", "collect", "gpu_of", "normalise"]

# Distributions whose version can change an answer: lidframe itself, the models' runtime (torch,
# its int8 and audio companions, transformers and its tokenizers and weight format, SpeechBrain,
# CTranslate2 and faster-whisper), the numerics (numpy, scipy), the decoders and the resampler
# (soundfile, PyAV, soxr), voice activity (silero-vad on ONNX Runtime) and language codes
# (langcodes maps the models' labels to the codes answered). A model family installed through an
# entry point adds its own distribution (see collect()).
ANSWER_PACKAGES = (
    "lidframe",
    "torch",
    "torchaudio",
    "torchao",
    "transformers",
    "tokenizers",
    "safetensors",
    "speechbrain",
    "ctranslate2",
    "faster-whisper",
    "numpy",
    "scipy",
    "soundfile",
    "av",
    "soxr",
    "silero-vad",
    "onnxruntime",
    "onnxruntime-gpu",
    "langcodes",
)

# The NVIDIA runtime wheels PyTorch's CUDA builds load, by what they are.
_CUDA_WHEELS = {
    "cuda_runtime": ("nvidia-cuda-runtime-cu12", "nvidia-cuda-runtime-cu13", "nvidia-cuda-runtime"),
    "cudnn": ("nvidia-cudnn-cu12", "nvidia-cudnn-cu13", "nvidia-cudnn"),
    "cublas": ("nvidia-cublas-cu12", "nvidia-cublas-cu13", "nvidia-cublas"),
}


def normalise(name: str) -> str:
    """A distribution's name as PEP 503 compares them (``Silero_VAD`` -> ``silero-vad``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def collect() -> dict[str, Any]:
    """This process's environment now: the fields of :class:`~lidframe.environment.Fingerprint`
    without models (:func:`~lidframe.environment.fingerprint` keeps it for the process)."""
    distributions = _distributions()
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "machine": platform.machine(),
        "packages": _packages(distributions),
        "libraries": _libraries(),
        "accelerator": _accelerator(distributions),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "distributions": distributions,
    }


def _distributions() -> dict[str, str]:
    """Every installed distribution's version by normalised name, the first on ``sys.path``
    winning (the one ``import`` finds), sorted by name."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            found.setdefault(normalise(name), dist.version)
    return dict(sorted(found.items()))


def _packages(distributions: dict[str, str]) -> dict[str, str]:
    """The versions of :data:`ANSWER_PACKAGES` and of the distributions providing model families
    (entry points ``lidframe.models``), those installed."""
    names = [normalise(n) for n in ANSWER_PACKAGES]
    try:
        families = metadata.entry_points(group="lidframe.models")
    except Exception:  # noqa: BLE001 - a broken distribution's metadata names no family
        families = ()  # type: ignore[assignment]
    for entry in families:
        dist = getattr(entry, "dist", None)
        if dist is not None and dist.metadata and dist.metadata["Name"]:
            names.append(normalise(dist.metadata["Name"]))
    return {name: distributions[name] for name in sorted(set(names)) if name in distributions}


def _libraries() -> dict[str, str | None]:
    """The native libraries audio is decoded and resampled with, as the modules report them."""
    return {"libsndfile": _libsndfile(), "libsoxr": _libsoxr(), "ffmpeg": _ffmpeg()}


def _libsndfile() -> str | None:
    try:
        import soundfile
    except (ImportError, OSError):  # OSError: the library itself is missing
        return None
    return str(soundfile.__libsndfile_version__)


def _libsoxr() -> str | None:
    try:
        import soxr
    except ImportError:
        return None
    return str(getattr(soxr, "__libsoxr_version__", None) or "") or None


def _ffmpeg() -> str | None:
    """PyAV's FFmpeg: its version and the versions of the libraries decoding goes through."""
    try:
        import av
    except ImportError:
        return None
    libraries = getattr(av, "library_versions", {}) or {}
    parts = [
        f"{name} {'.'.join(str(v) for v in libraries[name])}"
        for name in ("libavcodec", "libavformat", "libswresample")
        if name in libraries
    ]
    version = str(getattr(av, "ffmpeg_version_info", "") or "?")
    return f"{version} ({', '.join(parts)})" if parts else version


def _accelerator(distributions: dict[str, str]) -> dict[str, str | None] | None:
    """The GPU this process computes on and the CUDA libraries it loads; None without one."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return None
    gpu = gpu_of(_nvidia_smi(), visible)
    if gpu is None:
        return None
    found: dict[str, str | None] = {"gpu": gpu[0], "driver": gpu[1]}
    for what, wheels in _CUDA_WHEELS.items():
        found[what] = next((distributions[w] for w in wheels if w in distributions), None)
    if found["cuda_runtime"] is None:
        found["cuda_runtime"] = _torch_cuda()
    return found


def _nvidia_smi() -> str:
    """``nvidia-smi``'s list of GPUs (index, uuid, name, driver), '' without one."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ""
    try:
        done = subprocess.run(
            [smi, "--query-gpu=index,uuid,name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


def gpu_of(listing: str, visible: str | None) -> tuple[str, str] | None:
    """``(model, driver)`` of the GPU a process computes on, from ``nvidia-smi``'s CSV listing
    (``index, uuid, name, driver`` per line) and ``CUDA_VISIBLE_DEVICES`` (its first entry, an index
    or a UUID prefix, is the process's ``cuda`` device; unset: the first GPU). None when that GPU is
    not listed."""
    gpus = []
    for line in listing.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 4:
            gpus.append(fields)
    if not gpus:
        return None
    first = (visible or "").split(",")[0].strip()
    if not first:
        return gpus[0][2], gpus[0][3]
    for index, uuid, name, driver, *_ in gpus:
        if first == index or (first.startswith("GPU-") and uuid.startswith(first)):
            return name, driver
    return None


def _torch_cuda() -> str | None:
    """The CUDA version PyTorch was built with, read from ``torch/version.py`` (importing torch
    takes seconds); None for a CPU build or without torch."""
    spec = find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, "version.py")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        for node in tree.body:
            if isinstance(node, ast.AnnAssign):
                targets: list[ast.expr] = [node.target]
            elif isinstance(node, ast.Assign):
                targets = node.targets
            else:
                continue
            named = any(isinstance(t, ast.Name) and t.id == "cuda" for t in targets)
            if named and node.value is not None:
                try:
                    cuda = ast.literal_eval(node.value)
                except ValueError:
                    return None
                return str(cuda) if cuda else None
    return None
