"""The lock files agree with pyproject.toml: one truth (pyproject.toml's ranges), one resolution of
it per stack (written by scripts/lock.py, never by hand).

``constraints.txt`` locks every extra but ``gpu`` (what scripts/setup.sh, CI and the CPU container
install); ``constraints-gpu.txt`` locks every extra with ``gpu`` (GPU workers, the CUDA container,
scripts/test-gpu-stack.sh). Each must pin every distribution pyproject.toml names, at a version its
range allows; the GPU extra must name one RAPIDS release, and the GPU lock may differ from the CPU
lock only where that release holds a distribution back.
"""

from __future__ import annotations

import re

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.fixtures.paths import ROOT

LOCKS = {"constraints.txt": {"dev", "notebook"}, "constraints-gpu.txt": {"dev", "notebook", "gpu"}}
RAPIDS = ("cudf-cu12", "dask-cudf-cu12", "dask-cuda", "rapids-dask-dependency")
# The platform the locks are resolved for (scripts/lock.py): markers are evaluated there.
PLATFORM = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"}
PLATFORM |= {"python_version": "3.11", "python_full_version": "3.11.2", "extra": ""}


def read_lock(name: str) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for number, line in enumerate((ROOT / name).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        assert match, f"{name}:{number}: not a name==version pin: {line!r}"
        dist = canonicalize_name(match[1])
        assert dist not in pins, f"{name}:{number}: {dist} pinned twice"
        pins[dist] = Version(match[2])
    return pins


def requirements(extras: set[str]) -> list[Requirement]:
    """pyproject.toml's dependencies and those of ``extras`` (lidframe[...] followed), for the
    locked platform."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(text) for text in project["dependencies"]]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in project["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == "lidframe":
                todo.extend(requirement.extras)
            else:
                found.append(requirement)
    return [r for r in found if r.marker is None or r.marker.evaluate(PLATFORM)]


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_direct_dependency_is_locked_within_its_range(lock):
    pins = read_lock(lock)
    problems = []
    for requirement in requirements(LOCKS[lock]):
        version = pins.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name} is not pinned")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name}=={version} is outside {requirement}")
    assert not problems, f"{lock} disagrees with pyproject.toml (run scripts/lock.py): {problems}"


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_the_lock_is_written_by_the_script(lock):
    names = list(read_lock(lock))
    assert names == sorted(names), f"{lock} is not sorted by name: written by hand?"
    assert "scripts/lock.py" in (ROOT / lock).read_text().splitlines()[0]
    assert "lidframe" not in read_lock(lock)


def test_the_gpu_extra_is_one_rapids_release():
    gpu = {canonicalize_name(r.name): r for r in requirements({"gpu"})}
    releases = {name: str(gpu[name].specifier) for name in RAPIDS}
    assert len(set(releases.values())) == 1, f"mixed RAPIDS releases: {releases}"
    (release,) = set(releases.values())
    assert re.fullmatch(r"==\d+\.\d+\.\*", release), release
    locked = read_lock("constraints-gpu.txt")
    assert {f"{locked[name].major}.{locked[name].minor}" for name in RAPIDS} == {release[2:-2]}


def test_the_gpu_lock_differs_only_where_rapids_holds_a_version_back():
    cpu, gpu = read_lock("constraints.txt"), read_lock("constraints-gpu.txt")
    ahead = {
        name: (cpu[name], gpu[name]) for name in cpu.keys() & gpu.keys() if gpu[name] > cpu[name]
    }
    assert not ahead, f"the GPU lock is ahead of the CPU lock (run scripts/lock.py): {ahead}"
    assert cpu.keys() <= gpu.keys(), cpu.keys() - gpu.keys()
