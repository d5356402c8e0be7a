"""``bands:CODES``: a tiny lidframe model family that lives outside lidframe.

It shows the whole extension point and nothing else. The "model" scores each language by a fixed
random projection of a clip's log band energies, so its answers mean nothing; what matters is the
shape a real family has:

* a :class:`lidframe.models.LidModel` subclass with ``labels`` (canonical codes), ``prepare`` (CPU,
  one clip, runs in lidframe's decode threads) and ``forward`` (a padded batch on the device);
* a ``factory(spec)`` registered as an entry point in the group ``lidframe.models`` (see this
  package's pyproject.toml), so after ``pip install`` the family is usable as
  ``--models bands:en+de+fr`` on every worker, listed by ``lidframe models``.

``SOURCE`` is the ``+``-separated list of language codes the model answers (``,`` works too from
Python, not on the command line, where a comma separates models): its label set, which lidframe
records with the results and uses in consensus and evaluation.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from lidframe.languages import canonical
from lidframe.models import Batch, LidModel, ModelSpec

__all__ = ["BandEnergyLid", "factory"]

FRAME = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms
BANDS = 16


class BandEnergyLid(LidModel):
    """Log energies in ``BANDS`` frequency bands, averaged over time, projected onto the labels."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        codes = [code.strip() for code in re.split(r"[+,]", spec.source) if code.strip()]
        self._labels = tuple(canonical(code) for code in codes)
        rng = np.random.default_rng(len(codes))
        weights = rng.standard_normal((BANDS, len(codes))).astype(np.float32)
        self._weights = torch.from_numpy(weights).to(self.device)

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    def prepare(self, waveform: np.ndarray) -> np.ndarray:
        """``(BANDS, frames)`` log band energies of one clip (numpy, on the CPU)."""
        wave = np.asarray(waveform, dtype=np.float32)
        frames = 1 + max(0, len(wave) - FRAME) // HOP
        index = np.arange(FRAME)[None, :] + HOP * np.arange(frames)[:, None]
        power = np.abs(np.fft.rfft(wave[index] * np.hanning(FRAME), axis=1)) ** 2
        bands = np.array_split(power, BANDS, axis=1)
        energy = np.stack([b.sum(axis=1) for b in bands])  # (BANDS, frames)
        return np.log(energy + 1e-8).astype(np.float32)

    def forward(self, batch: Batch) -> torch.Tensor:
        mask = batch.mask[:, None, :].to(batch.values.dtype)  # padding frames do not count
        mean = (batch.values * mask).sum(-1) / mask.sum(-1)  # (n, BANDS)
        mean = mean - mean.mean(dim=1, keepdim=True)
        return torch.softmax(mean.float() @ self._weights, dim=-1)


def factory(spec: ModelSpec) -> LidModel:
    """What the ``lidframe.models`` entry point names: build the model for ``spec``."""
    return BandEnergyLid(spec)
