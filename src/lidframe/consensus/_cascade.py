"""Cheap model first: a row goes on to the next model only while the models so far are unsure.

With a cascade (``--cascade``, ``run(cascade=P)``) the kernel runs the job's models in the order
given, each on a group of rows at once (so batching is kept), and after each model decides for
every row whether it is settled: the consensus support of the models that have answered so far
(:func:`~lidframe.consensus.decide`, with the job's policy, weights, temperatures and final map) is
at least ``escalate_below``; with a calibration that has a final map the threshold compares the
calibrated probability, as ``consensus_prob`` reports it (the map was fitted on the consensus of
every model a labelled row reached, and is applied here to the models so far as well). Only the
rows that are not settled go to the next model. A row the last model answered, or that no model
could answer, is not sent further: there is nowhere to go.

The row's ``models_asked`` column lists the models it was sent to, and the consensus of a cascaded
row is taken over those models only (so ``majority[1/1]`` is a row the first model settled alone).
Models a row was not sent to have null columns and no error. A row without speech is sent to none
(``models_asked`` is empty) and is ``und`` as without a cascade.

What the threshold buys is measured, not assumed: ``benchmarks/cascade.py`` runs every model on a
labelled corpus, replays the cascade at a range of thresholds, and prints the accuracy and the share
of calls to the later (expensive) models each one keeps; ``benchmarks/RESULTS.md`` has the curve
and :data:`ESCALATE_BELOW` is chosen from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lidframe.consensus._rows import decide
from lidframe.consensus._settings import ConsensusConfig
from lidframe.errors import ConfigError

__all__ = ["ESCALATE_BELOW", "Cascade", "check_threshold"]

# The default threshold of ``--escalate-below`` (see benchmarks/RESULTS.md, "Cascade").
ESCALATE_BELOW = 0.9


def check_threshold(value: float) -> float:
    """``value`` as a threshold in [0, 1], or a :class:`ConfigError` naming the setting."""
    try:
        p = float(value)
    except (TypeError, ValueError):
        p = math.nan
    if isinstance(value, bool) or not (0.0 <= p <= 1.0):
        raise ConfigError(f"cascade (--escalate-below) must be a number in [0, 1], got {value!r}")
    return p


@dataclass(frozen=True)
class Cascade:
    """How the kernel decides that a row needs no further model."""

    # A row is settled once the consensus support of the models so far is at least this.
    escalate_below: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "escalate_below", check_threshold(self.escalate_below))

    def settled(
        self, answers: Mapping[str, Sequence[tuple[str, float]] | None], consensus: ConsensusConfig
    ) -> bool:
        """Whether a row with these answers (alias -> top-k pairs, None: failed), combined by the
        job's ``consensus``, stops here."""
        if not any(answers.values()):
            return False  # nobody answered yet: the next model may
        return decide(answers, consensus).prob >= self.escalate_below
