"""How per-model answers are combined: :class:`ConsensusConfig`, and the constants that the row
reference and the frame operations share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from lidframe.consensus._final import FinalMap
from lidframe.errors import ConfigError
from lidframe.languages import DEFAULT_EQUIVALENCE, LanguageEquivalence

__all__ = ["DEFAULT_LABEL_COUNT", "LOG_FLOOR", "POLICIES", "UNDETERMINED", "ConsensusConfig"]

POLICIES = ("unanimous", "majority", "weighted", "product")
UNDETERMINED = "und"
# Labels a model has when the caller does not say (Whisper has 99, VoxLingua107 has 107).
DEFAULT_LABEL_COUNT = 100
# The ``product`` policy takes the log of max(p, LOG_FLOOR): a zero never makes a candidate -inf.
LOG_FLOOR = 1e-9


@dataclass(frozen=True)
class ConsensusConfig:
    """How per-model answers are combined."""

    # One of POLICIES.
    policy: str = "majority"
    # Below this support the answer is ``und`` (0 keeps every answer).
    min_prob: float = 0.0
    # Per-model weight by column alias (vote weight or product exponent, >= 0); missing ones weigh 1.
    weights: Mapping[str, float] = field(default_factory=dict)
    # Per-model temperature by alias (from calibration): p ** (1 / T), renormalised. Default 1.
    temperatures: Mapping[str, float] = field(default_factory=dict)
    # Number of labels of each model, to spread the mass its top-k leaves out (default 100).
    label_counts: Mapping[str, int] = field(default_factory=dict)
    # Which codes count as the same language.
    equivalence: LanguageEquivalence = DEFAULT_EQUIVALENCE
    # The map from the combined top probability to a calibrated one (from calibration), applied
    # after the policy and before ``min_prob``; it never changes the answer. None: no map.
    final: FinalMap | None = None

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"consensus policy must be one of {POLICIES}, got {self.policy!r}")
        if not (0.0 <= self.min_prob <= 1.0):
            raise ConfigError(f"consensus min_prob must be in [0, 1], got {self.min_prob!r}")
        for alias, value in self.weights.items():
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"consensus weights[{alias!r}] must be >= 0, got {value!r}")
        for alias, value in self.temperatures.items():
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(
                    f"consensus temperatures[{alias!r}] must be positive, got {value!r}"
                )
        if self.final is not None and not isinstance(self.final, FinalMap):
            raise ConfigError(f"consensus final must be a FinalMap, got {self.final!r}")
