"""The model interface and registry: shared batching in the base class, what a family must give, and
families found through installed packages' entry points.

The entry-point tests put a real ``*.dist-info`` folder (with ``entry_points.txt``) on the
``PYTHONPATH`` of a fresh interpreter, so ``importlib.metadata`` finds it exactly as it finds an
installed package; nothing in the registry is patched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from lidframe.errors import ConfigError, ModelError
from lidframe.models import (
    Batch,
    LidModel,
    ModelSpec,
    available_models,
    families,
    load_model,
    models_text,
    parse_model,
    register_family,
    register_name,
)


class MeanLid(LidModel):
    """Scores two labels from the mean of the valid samples: padding would change the answer."""

    batches: ClassVar[list[list[int]]] = []  # lengths of each forward pass

    @property
    def labels(self) -> tuple[str, ...]:
        return ("en", "de")

    def forward(self, batch: Batch) -> torch.Tensor:
        MeanLid.batches.append(batch.lengths.tolist())
        mask = batch.mask.to(batch.values.dtype)
        mean = (batch.values.abs() * mask).sum(-1) / mask.sum(-1)
        return torch.stack([mean, 1 - mean], dim=-1).clamp(0, 1)


def _load(family: str, cls: type[LidModel], source: str = "x") -> LidModel:
    register_family(family, cls)
    return load_model(ModelSpec(name=f"{family}:{source}", family=family, source=source))


def test_base_class_pads_buckets_and_masks():
    model = _load("test-mean", MeanLid)
    rng = np.random.default_rng(0)
    lengths = [16_000, 800, 15_000, 900, 30_000, 1_000]
    waves = [(0.5 * rng.random(n)).astype(np.float32) for n in lengths]
    MeanLid.batches.clear()
    together = model.predict_prepared([model.prepare(w) for w in waves], batch_size=2)
    # sorted by length, then cut into passes of 2: short clips are not padded to 30,000 samples
    assert MeanLid.batches == [[800, 900], [1_000, 15_000], [16_000, 30_000]]
    alone = np.stack([model.predict_batch([w])[0] for w in waves])
    np.testing.assert_allclose(together, alone, rtol=1e-6)  # answers in the caller's order
    expected = np.array([np.abs(w).mean() for w in waves], dtype=np.float32)
    np.testing.assert_allclose(together[:, 0], expected, rtol=1e-5)


def test_batch_helpers_and_pad_to():
    class Padded(MeanLid):
        pad_to = 50

    model = _load("test-padded", Padded)
    batch = model.collate([np.ones(3, np.float32), np.ones(5, np.float32)])
    assert tuple(batch.values.shape) == (2, 50) and batch.values.dtype == torch.float32
    assert batch.lengths.tolist() == [3, 5]
    assert batch.mask.sum(-1).tolist() == [3, 5]
    np.testing.assert_allclose(batch.relative_lengths.numpy(), [3 / 50, 5 / 50])
    assert str(batch.values.device) == model.device or model.device.startswith("cuda")


class Labelled(LidModel):
    codes: ClassVar[tuple[str, ...]] = ("en",)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.codes

    def predict_batch(self, waveforms):  # type: ignore[no-untyped-def]
        return np.full((len(waveforms), len(self.codes)), 1 / len(self.codes), np.float32)


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        (("en", "eng"), "label 'eng' is not a canonical language code; use 'en'"),
        (("en", "klingon!"), "label 'klingon!' is not a language tag"),
        (("en", "de", "en"), "labels appear more than once: en"),
        ((), "the model has no labels"),
    ],
)
def test_a_family_with_bad_labels_fails_to_load_naming_them(codes, message):
    cls = type("Bad", (Labelled,), {"codes": codes})
    family = f"test-bad-{len(codes)}-{abs(hash(codes)) % 1000}"
    with pytest.raises(ModelError) as err:
        _load(family, cls)
    assert message in str(err.value) and f"{family}:x" in str(err.value)


def test_what_a_factory_builds_is_checked():
    class Nothing(LidModel):
        @property
        def labels(self) -> tuple[str, ...]:
            return ("en",)

    with pytest.raises(ModelError, match="implements neither forward\\(\\) nor predict_batch"):
        _load("test-nothing", Nothing)
    with pytest.raises(ModelError, match="built a dict, not a lidframe.models.LidModel"):
        _load("test-dict", lambda spec: {})  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError, match="without ':'"):
        register_family("a:b", Labelled)


def test_built_in_families_and_names():
    listed = {f.name: f for f in families()}
    assert {"whisper", "speechbrain", "hf-audio"} <= set(listed)
    assert listed["hf-audio"].origin == "built-in"
    assert "mms-lid-4017" in listed["hf-audio"].names
    spec = parse_model("mms-lid-126")
    assert (spec.family, spec.source, spec.alias) == (
        "hf-audio",
        "facebook/mms-lid-126",
        "mms_lid_126",
    )


def test_a_short_name_registered_for_a_family_and_source_is_a_model_name():
    register_family("test-named", Labelled)
    register_name("test-named-small", "test-named", "/models/small")
    spec = parse_model(" test-named-small ", device="cpu")
    assert (spec.name, spec.family, spec.source, spec.alias) == (
        "test-named-small",
        "test-named",
        "/models/small",
        "test_named_small",
    )
    assert "test-named-small" in available_models()
    assert {f.name: f for f in families()}["test-named"].names == ("test-named-small",)
    assert any(line.startswith("test-named-small ") for line in models_text().splitlines())


def _dist_info(site: Path, name: str, entry_points: dict[str, str], module: str = "") -> None:
    """A real installed-package record: what ``pip install`` leaves in site-packages."""
    info = site / f"{name.replace('-', '_')}-0.3.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.3.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[lidframe.models]\n{lines}")
    if module:
        (site / f"{name.replace('-', '_')}.py").write_text(textwrap.dedent(module))


def _child(site: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(site)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def test_entry_points_register_families_and_a_broken_one_is_reported(tmp_path):
    site = tmp_path / "site"
    _dist_info(
        site,
        "lid-plugin",
        {"const": "lid_plugin:factory", "whisper": "lid_plugin:factory"},
        module="""
            import numpy as np
            from lidframe.models import LidModel

            class Const(LidModel):
                labels = ("fr", "it")
                def predict_batch(self, waveforms):
                    return np.tile(np.array([[0.25, 0.75]], np.float32), (len(waveforms), 1))

            def factory(spec):
                return Const(spec)
        """,
    )
    _dist_info(site, "lid-broken", {"broken": "lid_broken_missing:factory"})
    proc = _child(
        site,
        """
        import json
        import numpy as np
        from lidframe.models import families, load_model, parse_model
        from lidframe.errors import ConfigError
        out = {f.name: [f.origin, f.error] for f in families()}
        model = load_model(parse_model("const:anything"))
        out["labels"] = list(model.labels)
        out["answer"] = model.predict_batch([np.zeros(1600, np.float32)]).tolist()
        from lidframe.models import registry
        out["whisper"] = registry._families["whisper"].__name__
        try:
            parse_model("broken:x")
        except ConfigError as exc:
            out["broken_error"] = str(exc)
        print(json.dumps(out))
        """,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["const"] == ["entry point lid-plugin 0.3.0", None]
    assert out["labels"] == ["fr", "it"] and out["answer"] == [[0.25, 0.75]]
    assert out["whisper"] == "WhisperLid"  # an entry point cannot replace a built-in family
    assert out["broken"][0] == "entry point"
    assert "lid_broken_missing:factory: ModuleNotFoundError" in out["broken"][1]
    assert out["broken_error"].startswith(
        "model family 'broken' cannot be used: lid_broken_missing"
    )


def test_bad_families_stop_a_run_with_one_line_and_exit_2(tmp_path):
    """From the command line: a plugin that cannot be imported, and one whose labels are not
    canonical codes (found when the worker loads it), each give one error line and exit 2."""
    site = tmp_path / "site"
    _dist_info(
        site,
        "lid-eng",
        {"eng": "lid_eng:factory"},
        module="""
            import numpy as np
            from lidframe.models import LidModel

            class Eng(LidModel):
                labels = ("eng", "deu")
                def predict_batch(self, waveforms):
                    return np.full((len(waveforms), 2), 0.5, np.float32)

            def factory(spec):
                return Eng(spec)
        """,
    )
    _dist_info(site, "lid-broken", {"broken": "lid_broken_missing:factory"})
    from lidframe.testing import sine, write_wav

    write_wav(tmp_path / "a.wav", sine(1.0), 16_000)
    (tmp_path / "m.csv").write_text(f"audio\n{tmp_path / 'a.wav'}\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    for model, words in (
        ("broken:x", ["model family 'broken' cannot be used", "lid_broken_missing"]),
        ("eng:x", ["eng:x", "label 'eng' is not a canonical language code; use 'en'"]),
    ):
        proc = subprocess.run(
            [
                sys.executable, "-m", "lidframe.cli", "run", str(tmp_path / "m.csv"),
                "--out", str(tmp_path / model.replace(":", "_")), "--models", model,
                "--workers", "1", "--no-progress",
            ],
            capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lidframe: error: "), proc.stderr
        assert all(w in lines[0] for w in words), lines[0]
