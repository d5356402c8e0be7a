"""Write the lock files from pyproject.toml's ranges, as pip resolves them on Linux x86_64 with this
Python (the platform of CI and the containers).

    constraints.txt      every extra but gpu: CPU machines, the CPU container, CI's suite
    constraints-gpu.txt  every extra with gpu: GPU workers, the CUDA container, and CI's second run
                         (scripts/test-gpu-stack.sh): one RAPIDS release and the pandas, dask and
                         distributed it requires

Usage: ``.venv/bin/python scripts/lock.py [--upgrade]``, after changing a range in pyproject.toml;
commit both files. ``scripts/setup.sh`` installs with them (``-c``), and ``tests/test_lock.py``
checks that they agree with pyproject.toml. Nothing is installed: pip resolves with
``--dry-run --report`` into a throwaway target.

Pins stay where pyproject.toml still allows them: pip resolves with the current lock as
constraints, and resolves afresh only when that fails or with ``--upgrade``. The GPU lock keeps the
CPU lock's pins except for what the RAPIDS release holds back (a distribution that resolves older
there, such as pandas or dask), so the two stacks differ only where they must.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {"constraints.txt": "dev,notebook", "constraints-gpu.txt": "dev,notebook,gpu"}


def read_lock(path: Path) -> dict[str, str]:
    """``{name: version}`` of a lock file (``name==version`` lines; ``#`` comments)."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def resolve(extras: str, prefer: dict[str, str] | None) -> dict[str, str] | None:
    """pip's resolution of ``lidframe[extras]`` (None when ``prefer`` cannot be kept)."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        command += ["--quiet", "--target", f"{tmp}/target", "--report", f"{tmp}/report.json"]
        if prefer:
            Path(tmp, "prefer.txt").write_text("".join(f"{n}=={v}\n" for n, v in prefer.items()))
            command += ["-c", f"{tmp}/prefer.txt"]
        done = subprocess.run([*command, f".[{extras}]"], cwd=ROOT, capture_output=True, text=True)
        if done.returncode:
            if prefer:
                return None
            sys.exit(f"lock: pip cannot resolve lidframe[{extras}]:\n{done.stderr}")
        report = json.loads(Path(tmp, "report.json").read_text())
    return {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in report["install"]
        if canonicalize_name(item["metadata"]["name"]) != "lidframe"
    }


def write_lock(path: Path, extras: str, pins: dict[str, str]) -> None:
    header = (
        f"# The lock of lidframe[{extras}]: written by scripts/lock.py from pyproject.toml's ranges\n"
        "# (Linux x86_64, Python 3.11); do not edit by hand. tests/test_lock.py checks it.\n"
    )
    path.write_text(header + "".join(f"{n}=={pins[n]}\n" for n in sorted(pins)))
    print(f"lock: {len(pins)} distributions in {path.name}")


def main() -> None:
    upgrade = "--upgrade" in sys.argv[1:]
    cpu_path, gpu_path = (ROOT / name for name in LOCKS)
    for path, extras in ((cpu_path, LOCKS[cpu_path.name]), (gpu_path, LOCKS[gpu_path.name])):
        print(f"lock: resolving lidframe[{extras}]")
        current = read_lock(path) if path.exists() and not upgrade else None
        pins = resolve(extras, current) if current else None
        if pins is None and path is gpu_path:
            # afresh, then the CPU lock's pins for all that the RAPIDS release does not hold back
            fresh = resolve(extras, None) or {}
            cpu = read_lock(cpu_path)
            kept = {n: v for n, v in cpu.items() if n in fresh and Version(fresh[n]) >= Version(v)}
            pins = resolve(extras, kept) or fresh
        elif pins is None:
            pins = resolve(extras, None)
        assert pins is not None
        write_lock(path, extras, pins)


if __name__ == "__main__":
    main()
