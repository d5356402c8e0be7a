"""The package's public surface: explicit API, no import side effects, no import cycles."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import lidframe
from tests.fixtures.paths import ROOT


def test_public_api_is_explicit():
    for name in lidframe.__all__:
        assert hasattr(lidframe, name), name
    assert (
        callable(lidframe.run) and callable(lidframe.identify) and callable(lidframe.read_manifest)
    )


def test_import_has_no_heavy_or_gpu_side_effects():
    code = (
        "import copy, os, sys, dask, distributed, dask.dataframe; before = dict(os.environ);"
        "cfg = copy.deepcopy(dask.config.config);"
        "import lidframe;"
        "heavy = [m for m in ('torch', 'transformers', 'dask_cuda', 'cudf', 'av') if m in sys.modules];"
        "assert not heavy, heavy;"
        "assert dict(os.environ) == before;"
        "assert dask.config.config == cfg"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_torch_and_torchaudio_are_bounded_to_the_same_minor_release():
    """Without the constraints file, pip must still pick a torch/torchaudio pair built together
    (unbounded, it picked torch 2.15 with torchaudio 2.11: different CUDA builds, Whisper failed)."""
    import re

    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = {
        re.split(r"[<>=!~ \[]", d, maxsplit=1)[0]: d for d in project["project"]["dependencies"]
    }

    def bounds(req: str) -> tuple[str, str]:
        low = re.search(r">=\s*([\d.]+)", req)
        high = re.search(r"<\s*([\d.]+)", req)
        assert low and high, f"{req!r} needs a lower and an upper bound"
        return low.group(1), high.group(1)

    torch_low, torch_high = bounds(deps["torch"])
    audio_low, audio_high = bounds(deps["torchaudio"])
    assert torch_low.split(".")[:2] == audio_low.split(".")[:2]
    assert torch_high == audio_high
    major, minor = (int(x) for x in torch_low.split(".")[:2])
    assert torch_high == f"{major}.{minor + 1}", (
        "one minor release: the pair that is built together"
    )


# Import cycles known today, by the package they lie in, each to be removed once broken; a cycle
# anywhere else, or one reaching outside these packages, fails the test.
KNOWN_CYCLES: set[str] = set()


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (folders without ``__init__.py`` are not
    packages: Alembic's migrations are left out)."""
    root = Path(lidframe.__file__).parent
    found = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        folders = (root.parent.joinpath(*rel.parts[:i]) for i in range(1, len(rel.parts)))
        if all((folder / "__init__.py").is_file() for folder in folders):
            parts = rel.with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the lidframe modules it imports anywhere: at the top, in a function, or for type
    checking (``from P import m`` of a submodule ``m`` counts as importing ``P.m``)."""

    def known(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets |= {known(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else known(base))
        graph[name] = targets - {name, ""}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[tuple[str, ...]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_sees_function_level_and_submodule_imports():
    graph = {"p": {"p.a"}, "p.a": {"p.b"}, "p.b": {"p.a"}, "q": {"p"}}
    assert _cycles(graph) == [("p.a", "p.b")]
    modules = _modules()
    assert "lidframe.eval._metrics" in modules and "lidframe.consensus" in modules
    assert not any(".migrations" in name for name in modules)
    graph = _import_graph(modules)
    assert "lidframe.consensus" in graph["lidframe.eval._calibrate"]
    assert (
        "lidframe.eval._metrics" in graph["lidframe.eval._evaluate"]
    )  # `from lidframe.eval import _metrics as metrics`


def test_no_import_cycles_among_lidframe_modules():
    graph = _import_graph(_modules())
    cycles = _cycles(graph)

    def within_known(cycle: tuple[str, ...]) -> bool:
        return any(all(m.startswith(f"{p}.") for m in cycle) for p in KNOWN_CYCLES)

    new = [
        {m: sorted(graph[m] & set(cycle)) for m in cycle}
        for cycle in cycles
        if not within_known(cycle)
    ]
    assert not new, f"import cycles (module -> the modules of its cycle it imports): {new}"
    stale = {
        p for p in KNOWN_CYCLES if not any(all(m.startswith(f"{p}.") for m in c) for c in cycles)
    }
    assert not stale, f"no import cycle in {stale} any more: remove it from KNOWN_CYCLES"


def test_every_module_imports_first_in_a_fresh_interpreter():
    """Each module imported first, with no other lidframe module loaded: a cycle of top-level
    imports fails here with "partially initialized module"."""
    code = (
        "import importlib, json, sys\n"
        "failed = {}\n"
        "for name in sys.argv[1:]:\n"
        "    for m in [m for m in sys.modules if m.split('.')[0] == 'lidframe']:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed[name] = f'{type(exc).__name__}: {exc}'\n"
        "print(json.dumps(failed))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *_modules()], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {}


# -- guard rails of the layout (issue 22) -------------------------------------------------------


def _imports(path: Path, package: str) -> list[tuple[str, str]]:
    """``(module, name)`` for every ``from M import name`` and ``(M, "")`` for every ``import M``
    in ``path`` (function-level and type-checking imports included), relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            found += [(base, alias.name) for alias in node.names]
    return found


def _owner(module: str) -> str | None:
    """The package a private module belongs to (``lidframe.kernel._config`` -> ``lidframe.kernel``),
    None for a public path."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def test_no_module_outside_a_package_imports_its_private_modules():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for module, imported in _imports(path, package):
            if not module.startswith("lidframe"):
                continue
            target = f"{module}.{imported}" if imported.startswith("_") else module
            owner = _owner(target)
            if owner is not None and not (name == owner or name.startswith(f"{owner}.")):
                wrong.append(f"{name} imports {target}")
    assert not wrong, wrong


def test_no_module_imports_a_private_name_of_another_module():
    """Names starting with ``_`` stay in their module (a private module's helpers are named
    without the underscore: the module is what is private)."""
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for module, imported in _imports(path, package):
            if not module.startswith("lidframe") or not imported.startswith("_"):
                continue
            if f"{module}.{imported}" in modules:
                continue  # a module of a package, checked by the test above
            wrong.append(f"{name} imports {module}.{imported}")
    assert not wrong, wrong


def test_the_packages_import_each_other_one_way():
    """Modules collapsed to their package (``lidframe.kernel._config`` -> ``lidframe.kernel``,
    top-level modules stay themselves): no cycle among them. ``lidframe`` itself only names the
    public API and is left out."""
    graph: dict[str, set[str]] = {}
    for module, targets in _import_graph(_modules()).items():
        if module == "lidframe":
            continue
        top = ".".join(module.split(".")[:2])
        graph.setdefault(top, set()).update(
            ".".join(t.split(".")[:2]) for t in targets if t != "lidframe"
        )
    for top, targets in graph.items():
        targets.discard(top)
    assert _cycles(graph) == []


def _loaded_by(statement: str) -> set[str]:
    code = f"import json, sys; {statement}; print(json.dumps(sorted(m for m in sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_the_worker_module_takes_nothing_of_the_driver_planner_leases_or_job_store():
    loaded = _loaded_by("import lidframe.job._worker")
    driver_side = {
        "lidframe.job._run",
        "lidframe.job._driver",
        "lidframe.job._planner",
        "lidframe.job._stalls",
        "lidframe.job._promotion",
        "lidframe.job._database",
        "lidframe.job._queries",
        "lidframe.store.jobs",
        "lidframe.store.leases",
        "lidframe.store.planning",
        "lidframe.store.engine",
    }
    assert "lidframe.job._worker" in loaded and "lidframe.store.results" in loaded
    assert not loaded & driver_side, sorted(loaded & driver_side)


def test_audio_imports_no_dask_torch_or_pandas():
    loaded = _loaded_by("from lidframe.audio import decode_window, decoder_pool")  # lazy names
    heavy = {m for m in loaded if m.split(".")[0] in ("dask", "distributed", "torch", "pandas")}
    assert "lidframe.audio._pool" in loaded and not heavy, sorted(heavy)[:10]


def test_every_package_states_its_api():
    """Each package's ``__init__`` has a docstring and an explicit ``__all__`` whose every name
    resolves."""
    import importlib

    packages = [n for n, p in _modules().items() if p.name == "__init__.py"]
    assert {"lidframe.audio", "lidframe.job", "lidframe.kernel", "lidframe.eval.report"} <= set(
        packages
    )
    for name in packages:
        if name.endswith(".migrations"):
            continue
        module = importlib.import_module(name)
        assert module.__doc__, name
        exported = getattr(module, "__all__", None)
        assert exported, f"{name} has no __all__"
        for public in exported:
            assert getattr(module, public, None) is not None, f"{name}.{public}"
