"""Which model families exist, the names users type, and one loaded instance per worker process.

Families come from three places, looked up in this order:

1. :func:`register_family` in this process (a notebook, a test, a plugin);
2. the built-in ``whisper``, ``speechbrain`` and ``hf-audio`` families;
3. installed packages' entry points in the group ``lidframe.models`` (name = family, value =
   ``factory(spec) -> LidModel``), discovered on first use, so ``pip install`` is all it takes.

A family registered with :func:`register_family` in the process that starts a job is carried to the
workers with the job's kernel settings (:func:`runtime_factories`), so it works on a distributed
cluster without an installed package. :func:`load_model` keeps one instance per ``(spec, device,
dtype)`` per process (dtype ``auto`` resolved there, for the family and the device:
:func:`~lidframe.models.base.resolve_dtype`), so a partition never reloads weights and two models on
one worker never overwrite each other, and checks what the family built: a :class:`LidModel` whose labels are
distinct canonical language codes.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from lidframe.errors import ConfigError, ModelError
from lidframe.models.base import LidModel, implements_contract, resolve_device, resolve_dtype
from lidframe.models.spec import ModelSpec, dtype_name

__all__ = [
    "ENTRY_POINT_GROUP",
    "Factory",
    "Family",
    "available_models",
    "cached_labels",
    "cached_weights",
    "families",
    "load_count",
    "load_model",
    "models_text",
    "parse_model",
    "register_family",
    "register_name",
    "release_model",
    "resolved_spec",
    "runtime_factories",
]

ENTRY_POINT_GROUP = "lidframe.models"
Factory = Callable[[ModelSpec], LidModel]


@dataclass(frozen=True)
class Family:
    """One model family as ``lidframe models`` lists it."""

    name: str
    # ``built-in``, ``registered`` (register_family in this process) or ``entry point PKG VERSION``.
    origin: str
    # Short names registered for it (``whisper-base``...).
    names: tuple[str, ...] = ()
    # Why it cannot be used (an entry point that fails to import), else None.
    error: str | None = None


_BUILTIN = ("whisper", "speechbrain", "hf-audio")
_families: dict[str, Factory] = {}
_origins: dict[str, str] = {}
_broken: dict[str, str] = {}  # family -> why its entry point could not be loaded
_names: dict[str, tuple[str, str]] = {}
_discovered = False
_discover_lock = threading.Lock()


def register_family(family: str, factory: Factory) -> None:
    """Register a model family: ``factory(spec)`` builds a loaded :class:`LidModel`.

    Models of it are named ``family:SOURCE``. Registering a name again replaces the family.
    """
    if not isinstance(family, str) or not family or ":" in family or family != family.strip():
        raise ConfigError(
            f"a model family name must be a non-empty string without ':', got {family!r}"
        )
    if not callable(factory):
        raise ConfigError(f"model family {family!r}: the factory must be callable, got {factory!r}")
    _families[family] = factory
    _origins[family] = "registered"
    _broken.pop(family, None)


def register_name(name: str, family: str, source: str) -> None:
    """Register a short name (``whisper-base``) for ``family:source``."""
    _names[name] = (family, source)


def families() -> list[Family]:
    """Every model family this process knows, with its origin and short names."""
    _discover()
    names: dict[str, list[str]] = {}
    for name, (family, _) in _names.items():
        names.setdefault(family, []).append(name)
    out = [
        Family(f, _origins.get(f, "registered"), tuple(sorted(names.get(f, ()))))
        for f in sorted(_families)
    ]
    out += [Family(f, "entry point", (), why) for f, why in sorted(_broken.items())]
    return out


def models_text() -> str:
    """What ``lidframe models`` prints: the short names, whether each works offline here and where
    its weights come from (:mod:`lidframe.models.availability`), then every family and its origin."""
    from lidframe.models.availability import weights

    _discover()
    width = max([len(n) for n in _names] + [len(f.name) + 7 for f in families()] + [10])
    lines = [f"{'NAME':<{width}}  OFFLINE  WEIGHTS"]
    for name, (family_name, source) in sorted(_names.items()):
        found = weights(family_name, source)
        offline = {True: "yes", False: "no", None: "?"}[found.offline]
        lines.append(f"{name:<{width}}  {offline:<7}  {found.origin}")
    lines.append("")
    for family in families():
        where = f"cannot be used: {family.error}" if family.error else family.origin
        lines.append(f"{family.name + ':SOURCE':<{width}}  {where}")
    lines += [
        "",
        "OFFLINE yes: the weights are on this machine; no: they come from the Hugging Face hub",
        "(once, then from its cache). Every family also takes FAMILY:SOURCE, SOURCE a hub id or a",
        "local directory (offline): -m whisper:/models/whisper-small,speechbrain:/models/vl107",
    ]
    return "\n".join(lines)


def available_models() -> list[str]:
    """Registered short names, then the ``family:SOURCE`` forms."""
    _discover()
    return sorted(_names) + [f"{family}:SOURCE" for family in sorted(_families)]


def parse_model(name: str, device: str = "auto", dtype: str = "float32") -> ModelSpec:
    """Turn a user's model string into a :class:`ModelSpec`; unknown names list the valid ones."""
    _discover()
    dtype = dtype_name(dtype)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"a model name must be a non-empty string, got {name!r}")
    name = name.strip()
    if name in _names:
        family, source = _names[name]
        return ModelSpec(name=name, family=family, source=source, device=device, dtype=dtype)
    family, sep, source = name.partition(":")
    if sep and family in _broken:
        raise ConfigError(f"model family {family!r} cannot be used: {_broken[family]}")
    if sep and family in _families and source:
        return ModelSpec(name=name, family=family, source=source, device=device, dtype=dtype)
    raise ConfigError(
        f"unknown model {name!r}; valid models: {', '.join(available_models())} "
        "(SOURCE is a hub id or a local directory)"
    )


def runtime_factories(specs: Iterable[ModelSpec]) -> dict[str, Factory]:
    """The factories of ``specs``' families registered in this process with :func:`register_family`.

    Built-in and entry-point families are found again on every worker; these are not, so the job
    carries them (cloudpickle sends a notebook's class by value).
    """
    _discover()
    return {
        s.family: _families[s.family]
        for s in specs
        if _origins.get(s.family) == "registered" and s.family in _families
    }


def adopt_factories(factories: Mapping[str, Factory]) -> None:
    """On a worker: register the families a job carries that this process does not have."""
    for family, factory in factories.items():
        if _families.get(family) is not factory:
            register_family(family, factory)


_cache: dict[ModelSpec, LidModel] = {}
_loads: Counter[ModelSpec] = Counter()
_lock = threading.Lock()


def resolved_spec(spec: ModelSpec, *, cpu_half: bool = False) -> ModelSpec:
    """``spec`` with its device and dtype as this process resolves ``auto`` (what it would load);
    ``cpu_half``: a job large enough for bfloat16 on a CPU that runs it natively, where the family
    measured it (:func:`~lidframe.models.base.resolve_dtype`)."""
    _discover()
    device = resolve_device(spec.device)
    family = _families.get(spec.family)
    half = bool(getattr(family, "half_precision", True))
    cpu_half = cpu_half and bool(getattr(family, "cpu_bfloat16", False))
    dtype = resolve_dtype(spec.dtype, device, half, cpu_half=cpu_half)
    return replace(spec, device=device, dtype=dtype)


def load_model(spec: ModelSpec) -> LidModel:
    """Return the process-wide instance for ``spec``, loading it on first use (thread-safe)."""
    spec = resolved_spec(spec)
    model = _cache.get(spec)
    if model is not None:
        return model
    with _lock:
        model = _cache.get(spec)
        if model is None:
            factory = _families.get(spec.family)
            if factory is None:
                why = _broken.get(spec.family)
                raise ModelError(
                    f"model family {spec.family!r} cannot be used: {why}"
                    if why
                    else f"no model family {spec.family!r}; known: {sorted(_families)}"
                )
            model = factory(spec)
            _check_model(spec, model)
            _cache[spec] = model
            _loads[spec] += 1
    return model


def cached_labels(spec: ModelSpec) -> tuple[str, ...] | None:
    """The labels of ``spec`` if this process has loaded it, without loading anything."""
    model = _cache.get(resolved_spec(spec))
    return None if model is None else tuple(model.labels)


def cached_weights(spec: ModelSpec) -> str | None:
    """The weights digest of ``spec`` as this process loaded it (:meth:`LidModel.weights_digest`),
    without loading anything: None when it is not loaded here, or holds no torch tensors."""
    model = _cache.get(resolved_spec(spec))
    return None if model is None else model.weights_digest()


def release_model(spec: ModelSpec) -> bool:
    """Drop this process's instance of ``spec`` (its memory is freed once nothing holds it).

    For a worker that loaded a model it will not use again (the fidelity check loads a model in
    two dtypes; the job keeps one). Returns whether one was loaded.
    """
    with _lock:
        return _cache.pop(resolved_spec(spec), None) is not None


def load_count() -> dict[str, int]:
    """How many times this process loaded each model (``name@device/dtype``); for tests and metrics."""
    return {f"{s.name}@{s.device}/{s.dtype}": n for s, n in _loads.items()}


def _check_model(spec: ModelSpec, model: object) -> None:
    """What a family built must be a usable :class:`LidModel` with canonical, distinct labels."""
    from lidframe.languages import canonical

    if not isinstance(model, LidModel):
        raise ModelError(
            f"{spec.name}: the {spec.family!r} family built a {type(model).__name__}, "
            "not a lidframe.models.LidModel"
        )
    if not implements_contract(type(model)):
        raise ModelError(
            f"{spec.name}: {type(model).__name__} implements neither forward() nor predict_batch()"
        )
    labels = tuple(model.labels)
    if not labels:
        raise ModelError(f"{spec.name}: the model has no labels")
    for label in labels:
        try:
            code = canonical(label) if isinstance(label, str) else None
        except ConfigError as exc:
            raise ModelError(
                f"{spec.name}: label {label!r} is not a language tag ({exc})"
            ) from None
        if code != label:
            raise ModelError(
                f"{spec.name}: label {label!r} is not a canonical language code"
                + (f"; use {code!r} (lidframe.languages.canonical)" if code else "")
            )
    seen = Counter(labels)
    twice = sorted(code for code, n in seen.items() if n > 1)
    if twice:
        raise ModelError(f"{spec.name}: labels appear more than once: {', '.join(twice)}")


def _discover() -> None:
    """Register the built-in families, then installed entry points (once per process)."""
    global _discovered
    if _discovered:
        return
    with _discover_lock:
        if _discovered:
            return
        from lidframe.models import hf_audio, speechbrain, whisper

        for module in (whisper, speechbrain, hf_audio):
            for family, factory, names in module.registrations():
                _families.setdefault(family, factory)
                _origins.setdefault(family, "built-in")
                for name, source in names:
                    _names.setdefault(name, (family, source))
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if entry.name in _families or entry.name in _BUILTIN:
                continue  # registered in this process, or a built-in: those win
            dist = getattr(entry, "dist", None)
            origin = f"entry point {dist.name} {dist.version}" if dist else "entry point"
            try:
                factory = entry.load()
            except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the others
                _broken[entry.name] = f"{entry.value}: {type(exc).__name__}: {exc}"
                continue
            if not callable(factory):
                _broken[entry.name] = f"{entry.value} is not callable"
                continue
            _families[entry.name] = factory
            _origins[entry.name] = origin
        _discovered = True
