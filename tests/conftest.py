"""The tests' configuration: every cache and scratch folder under pytest's temporary root, the shared
fixtures (``tests/fixtures``), and one workaround for SpeechBrain's placeholders.

Tests mirror the package (``tests/<package>/test_<module>.py``); tests that run whole jobs, the
command, the examples and the demo are in ``tests/e2e``.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.audio",
    "tests.fixtures.clusters",
    "tests.fixtures.environments",
    "tests.fixtures.kernels",
    "tests.fixtures.postgres",
    "tests.fixtures.storage",
]


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Point every cache and scratch folder the tests (and the processes they start) would write to
    under pytest's temporary root, never the home directory, the checkout or a fixed /tmp path.

    Model caches (converted Whisper weights, SpeechBrain copies: ``$LIDFRAME_CACHE``), Hugging
    Face, torch, matplotlib and other XDG caches, and Hypothesis' example database live in one
    folder beside pytest's numbered ``pytest-N`` folders, so a later session reuses the converted
    weights instead of converting them again; with ``--basetemp`` they live in that folder.
    Set here, before collection, so worker processes and subprocesses inherit the variables.
    """
    from hypothesis.configuration import set_hypothesis_home_dir

    basetemp = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    root = (basetemp if config.option.basetemp else basetemp.parent) / "lidframe-test-home"
    patch = pytest.MonkeyPatch()
    config.add_cleanup(patch.undo)
    for variable, folder in {
        "LIDFRAME_CACHE": "cache/lidframe",
        "XDG_CACHE_HOME": "cache",
        "XDG_CONFIG_HOME": "config",
        "XDG_DATA_HOME": "data",
        "HF_HOME": "cache/huggingface",
        "TORCH_HOME": "cache/torch",
        "MPLCONFIGDIR": "config/matplotlib",
    }.items():
        path = root / folder
        path.mkdir(parents=True, exist_ok=True)
        patch.setenv(variable, str(path))
    set_hypothesis_home_dir(root / "hypothesis")
    config.add_cleanup(lambda: set_hypothesis_home_dir(None))
    # Dask workers' scratch space (lock files, spilled data): this session's folder, not /tmp.
    scratch = basetemp / "dask-scratch"
    scratch.mkdir(exist_ok=True)
    patch.setenv("DASK_TEMPORARY_DIRECTORY", str(scratch))
    import dask

    settings = dask.config.set({"temporary-directory": str(scratch)})
    config.add_cleanup(lambda: settings.__exit__(None, None, None))


@pytest.fixture(autouse=True)
def _drop_unloadable_speechbrain_placeholders() -> None:
    """Remove speechbrain's not-yet-loaded ``LazyModule`` placeholders from ``sys.modules``.

    Once speechbrain is imported (any test that loads the SpeechBrain model), ``sys.modules`` holds
    placeholders for optional integrations (k2, ...) whose attribute access raises ImportError when
    the dependency is missing. Hypothesis scans new modules with ``getattr(module, "__file__",
    None)`` and trips over them, so property tests that run after a SpeechBrain test would fail.
    Dropping unloaded placeholders is safe: a real import of them still works or fails as usual.
    """
    import sys

    for name, module in list(sys.modules.items()):
        cls = type(module)
        if (
            cls.__module__ == "speechbrain.utils.importutils"
            and "lazy_module" in vars(module)
            and vars(module)["lazy_module"] is None
        ):
            del sys.modules[name]


# -- a PostgreSQL server that asks for a password --------------------------------------------------


# -- a storage endpoint that never answers -------------------------------------------------------


# -- local Dask clusters ---------------------------------------------------------------------------
