"""Half precision (or int8) checked against float32: top-1 agreement and the largest difference.

Why: float16 and bfloat16 halve a model's memory traffic and run on a GPU's tensor cores, but their
probabilities are not float32's, and how far they drift depends on the model, the weights and the
audio. So half precision is not trusted blindly: :func:`check_fidelity` runs each model in float32
and in the half dtype, on the same device and the same prepared features of the first clips of a
manifest that decode and have speech, and reports per model the clips compared, the share on which
both give the same top-1 language, and the largest absolute difference of any probability. A model
passes when the agreement is at least the threshold, by dtype: 99.5% for float16 (ten bits of
mantissa); 95% for bfloat16, whose seven bits move a close call now and then (on real telephone
speech, bfloat16 on the CPU agreed with float32 on 99.1% of 450 clips at equal accuracy: at 99.5%
a quarter of the jobs' 32-clip checks would have failed, at 95% one clip of 32 may differ, two may
not); 90% for int8, whose rounding is coarser still (torchao's per-token int8 agreed on 98% at
equal accuracy, so one or two of 32 may differ). A broken conversion agrees far less
(benchmarks/RESULTS.md). A job runs this before its
partitions and falls back to float32 when a model fails; ``lidframe check`` runs it alone.

The clips take the kernel's own path (``_prepare``): decoded in the decoder processes, cut to their
speech by voice activity, and prepared by each model's :meth:`~lidframe.models.LidModel.prepare`
(CPU, float32, the same for both dtypes); the forward passes run as the kernel runs them
(``_faults``), with its pass size (as the checking worker settles it) and encoder context. So the
figures are about the job's own clips as the job's models will hear them.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, cast

import numpy as np
import pandas as pd

from lidframe.errors import ConfigError
from lidframe.kernel._config import KernelConfig, Sizes
from lidframe.kernel._faults import PassSize, predict_clips
from lidframe.kernel._prepare import prepared_groups
from lidframe.manifest import Manifest, open_manifest, plan_partitions, read_partition
from lidframe.models import ModelSpec, load_model
from lidframe.models.registry import adopt_factories

__all__ = [
    "DEFAULT_CLIPS",
    "DEFAULT_THRESHOLD",
    "FidelityReport",
    "ModelFidelity",
    "check_fidelity",
    "check_fidelity_settings",
    "compare_prepared",
    "fidelity_lines",
]

# Clips compared per model, and the least top-1 agreement with float32 that passes, by dtype.
DEFAULT_CLIPS = 32
DEFAULT_THRESHOLD = 0.995
DEFAULT_THRESHOLDS = {"float16": DEFAULT_THRESHOLD, "bfloat16": 0.95, "int8": 0.9}
# Manifest rows read per clip wanted, at most: a manifest whose first rows are mostly silence or
# broken files is not read to its end for the check.
ROWS_PER_CLIP = 8


@dataclass(frozen=True)
class ModelFidelity:
    """One model in half precision against itself in float32 on the same clips."""

    alias: str
    model: str
    device: str
    # The half dtype checked (float32 against float32 is allowed: a baseline of 0 difference).
    dtype: str
    clips: int
    # Share of clips whose top-1 language is the same in both dtypes (None: no clip compared).
    agreement: float | None
    # Largest absolute difference of one probability, over every clip and language.
    max_diff: float | None
    passed: bool
    # Clips the model failed on in half precision only (an error, or probabilities that are not
    # finite): counted as disagreeing.
    failed: int = 0
    # Why the half-precision model could not run, if it could not.
    error: str | None = None


@dataclass(frozen=True)
class FidelityReport:
    """Every checked model's figures, and what was asked of them."""

    models: tuple[ModelFidelity, ...]
    threshold: float
    # Clips wanted, and the manifest rows read to find them.
    clips: int
    rows_read: int

    @property
    def passed(self) -> bool:
        """Every model reached the threshold."""
        return all(m.passed for m in self.models)

    def record(self, **extra: Any) -> dict[str, Any]:
        """The JSON stored with a job (``extra``: what the job made of it, e.g. ``fallback``)."""
        return {
            "threshold": self.threshold,
            "clips": self.clips,
            "rows_read": self.rows_read,
            "passed": self.passed,
            **extra,
            "models": [asdict(m) for m in self.models],
        }


def default_threshold(dtype: str) -> float:
    """The least top-1 agreement with float32 that ``dtype`` needs when none is given."""
    return DEFAULT_THRESHOLDS.get(dtype, DEFAULT_THRESHOLD)


def check_fidelity_settings(clips: Any, threshold: Any) -> None:
    """Raise :class:`ConfigError` naming a bad clip count or threshold (None: by dtype)."""
    if isinstance(clips, bool) or not isinstance(clips, int) or clips <= 0:
        raise ConfigError(f"fidelity clips must be a positive integer, got {clips!r}")
    if threshold is None:
        return
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not threshold >= 0:
        raise ConfigError(
            f"fidelity threshold must be a share of clips >= 0 (above 1 always falls back), "
            f"got {threshold!r}"
        )


def check_fidelity(
    manifest: Manifest | str | os.PathLike[str],
    specs: Sequence[ModelSpec],
    dtype: str,
    *,
    clips: int = DEFAULT_CLIPS,
    threshold: float | None = None,
    settings: KernelConfig | None = None,
) -> FidelityReport:
    """Compare ``specs`` in ``dtype`` with float32 on the first ``clips`` clips of ``manifest`` with
    speech (a long file's windows count one each).

    ``settings``: decoding, voice activity, encoder context, batch size, storage options and
    carried families, as a job's kernel has them (its models are ignored; default: the defaults).
    Loads each model in both dtypes in this process (see :func:`~lidframe.models.load_model`).
    """
    check_fidelity_settings(clips, threshold)
    threshold = default_threshold(dtype) if threshold is None else threshold
    if not specs:
        raise ConfigError("at least one model is required")
    base = settings or KernelConfig(models=tuple(specs))
    if not isinstance(manifest, Manifest):
        manifest = open_manifest(manifest, storage_options=base.storage_options)
    full = tuple(replace(s, dtype="float32") for s in specs)
    config = replace(base, models=full)
    adopt_factories(config.families)
    sizes = config.sizes()
    features, rows_read = _first_features(manifest, config, sizes, clips)
    found = compare_prepared(
        specs,
        dtype,
        features,
        batch_size=sizes.batch_size,
        context=config.speech.min_context,
        threshold=threshold,
    )
    return FidelityReport(tuple(found), float(threshold), clips, rows_read)


def compare_prepared(
    specs: Sequence[ModelSpec],
    dtype: str,
    features: Sequence[Sequence[Any]],
    *,
    batch_size: int = 8,
    context: float | None = None,
    threshold: float | None = None,
) -> list[ModelFidelity]:
    """Each model's figures on clips already prepared: ``features[i][m]`` is clip ``i`` as
    ``specs[m]`` prepares it.

    Batches run as in the kernel (:func:`lidframe.kernel._faults.predict_clips`: a batch a model fails on is
    split down to the clips it fails on). A clip the model fails on in float32 is left out (it is
    that row's error in any dtype); one it fails on only in ``dtype`` (an error, or probabilities
    that are not finite) counts as disagreeing; a model that cannot run in ``dtype`` at all fails
    the check with the error, and one broken in float32 raises :class:`ModelError`.
    """
    threshold = default_threshold(dtype) if threshold is None else threshold
    out = []
    for m, spec in enumerate(specs):
        full = load_model(replace(spec, dtype="float32"))
        answers = predict_clips(
            spec.alias, full, [f[m] for f in features], PassSize(batch_size, None), context
        )
        kept = [i for i, a in enumerate(answers) if not isinstance(a, str)]
        clips = [features[i][m] for i in kept]
        ref = np.array([answers[i] for i in kept]).reshape(len(kept), len(full.labels))
        blank = ModelFidelity(
            spec.alias, spec.name, full.device, dtype, len(clips), None, None, False
        )
        try:
            half = load_model(replace(spec, dtype=dtype))
            got = predict_clips(spec.alias, half, clips, PassSize(batch_size, None), context)
        except Exception as exc:  # noqa: BLE001 - a model that cannot run in half precision fails
            out.append(replace(blank, failed=len(clips), error=_text(exc)))
            continue
        ok = np.array([not isinstance(a, str) for a in got], dtype=bool)
        half_p = np.array([a if ok[i] else ref[i] for i, a in enumerate(got)]).reshape(ref.shape)
        same = ok & (ref.argmax(axis=1) == half_p.argmax(axis=1))
        agreement = float(same.mean()) if len(clips) else None
        diff = float(np.abs(ref[ok] - half_p[ok]).max()) if ok.any() else None
        out.append(
            replace(
                blank,
                device=half.device,
                agreement=agreement,
                max_diff=diff,
                passed=agreement is not None and agreement >= threshold,
                failed=int((~ok).sum()),
            )
        )
    return out


def fidelity_lines(record: Mapping[str, Any]) -> list[str]:
    """One line per model of a stored check (:meth:`FidelityReport.record`), then the job's
    fallback when there was one."""
    lines = []
    for m in record.get("models", ()):
        head = (
            f"fidelity {m['alias']}: {m['dtype']} vs float32 on {m['device']}, {m['clips']} clips"
        )
        if m.get("error"):
            lines.append(f"{head}: failed: {m['error']}")
            continue
        if m["agreement"] is None:
            lines.append(f"{head}: failed: no clip with speech in the first rows")
            continue
        figures = f"top-1 agreement {100 * m['agreement']:.1f}%"
        if m["max_diff"] is not None:
            figures += f", max prob diff {m['max_diff']:.4f}"
        if m.get("failed"):
            figures += f", {m['failed']} failed in {m['dtype']} only"
        verdict = "passed" if m["passed"] else f"failed (below {100 * record['threshold']:g}%)"
        lines.append(f"{head}: {figures}: {verdict}")
    if record.get("fallback"):
        lines.append("fidelity check failed: the job runs in float32 instead")
    return lines


def _first_features(
    manifest: Manifest, config: KernelConfig, sizes: Sizes, clips: int
) -> tuple[list[list[Any]], int]:
    """The first ``clips`` windows with speech that every model prepared, and the rows read."""
    features: list[list[Any]] = []
    rows_read = 0
    models = [load_model(spec) for spec in config.models]
    for rows in _manifest_rows(manifest, clips * ROWS_PER_CLIP, max(clips, 8)):
        rows_read += len(rows)
        errors: list[str | None] = [None] * len(rows)
        groups = cast(
            Generator[Any, None, None],
            prepared_groups(rows, config, sizes, models, errors, lambda n: None),
        )
        try:
            for group in groups:
                for _, windows in group:
                    for window in windows:
                        prepared = window.prepared
                        if prepared and not any(isinstance(p, str) for p in prepared):
                            features.append(list(prepared))
                if len(features) >= clips:
                    return features[:clips], rows_read
        finally:
            groups.close()  # cancels the decoding of rows not needed
    return features, rows_read


def _manifest_rows(manifest: Manifest, limit: int, chunk: int) -> Iterator[pd.DataFrame]:
    """The manifest's first ``limit`` rows (about), ``chunk`` at a time, without its bad rows."""
    read = 0
    for part in plan_partitions(manifest, chunk):
        rows = read_partition(manifest, part)
        read += len(rows)
        usable = rows[rows["error"].isna()].drop(columns="error")
        if len(usable):
            yield usable
        if read >= limit:
            return


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
