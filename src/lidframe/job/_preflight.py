"""Load every model on a worker before a job's partitions are scheduled.

An unavailable model (weights not downloaded, a family not installed, a device that is not there)
would otherwise fail every partition of the job, each after its audio was read; loaded once up
front, it fails in seconds with one line saying how to provide it. The models stay loaded (and warm)
on that worker. The label sets the loaded models report come back too: consensus and the results'
metadata need them before the first partition runs; and so does the worker's environment with the
loaded models' weights digests (:mod:`lidframe.environment`), which the job records as its own.
"""

from __future__ import annotations

import uuid
from typing import Any

from lidframe.environment import Fingerprint, fingerprint
from lidframe.errors import LidframeError, ModelError
from lidframe.kernel import KernelConfig
from lidframe.models import load_model
from lidframe.models.registry import adopt_factories

__all__ = ["preflight_models"]


def preflight_models(
    client: Any, kernel: KernelConfig, worker: str | None = None
) -> tuple[dict[str, tuple[str, ...]], Fingerprint]:
    """Load every model on one worker (``worker``, else any) before the manifest is scheduled
    (and keep it warm there).

    An unavailable model fails here in seconds with one line saying how to provide it, instead of
    failing every partition of the job. Returns each model's label set by alias (consensus spreads
    the mass a top-k list leaves out over the real number of labels, and the label sets are
    recorded with the results so evaluation never has to guess them), and the worker's
    fingerprint with the weights digest of each model by alias.
    """
    future = client.submit(
        _load_models,
        kernel,
        key=f"lidframe-preflight-{uuid.uuid4().hex[:8]}",
        pure=False,
        workers=None if worker is None else [worker],
    )
    try:
        labels, found = future.result()
        return dict(labels), found
    except LidframeError:
        raise
    except Exception as exc:
        raise ModelError(
            f"the models could not be loaded on a worker: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())}"
        ) from exc
    finally:
        future.release()


def _load_models(kernel: KernelConfig) -> tuple[dict[str, tuple[str, ...]], Fingerprint]:
    adopt_factories(kernel.families)
    labels = {}
    weights = {}
    for spec in kernel.models:
        try:
            model = load_model(spec)
            labels[spec.alias] = tuple(model.labels)
            weights[spec.alias] = model.weights_digest()
        except LidframeError:
            raise
        except Exception as exc:
            raise ModelError(
                f"model {spec.name!r} failed to load: {type(exc).__name__}: "
                f"{' '.join(str(exc).split())}"
            ) from exc
    return labels, fingerprint().with_models(weights)
