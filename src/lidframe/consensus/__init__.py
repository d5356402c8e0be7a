"""Consensus: per-model language columns reduced to one answer per row, with its support.

Agreement between models is the confidence proxy: single models are often confidently wrong, and
differently so. Each model contributes its ``{alias}_topk`` list (a truncated distribution); codes
are compared through a :class:`~lidframe.languages.LanguageEquivalence` (Norwegian ``no``/``nb``/
``nn`` count as one language by default), and the answer is written in the group's representative
code. Policies (``policy=``):

``unanimous``  every model that answered has the same top-1 language, else ``und``
``majority``   more than half of the models that answered have the same top-1, else ``und``
``weighted``   the weighted sum of the models' distributions (the "sum rule"); weights default to 1
``product``    the weighted product of the distributions, renormalised over the candidates
               (a naive-Bayes combination; ``weights`` act as exponents)

Columns added: ``lang`` (consensus code or ``und``), ``agree`` (all answering models' top-1 are the
same language), ``n_agree`` (models whose top-1 is ``lang``), ``consensus_prob`` (the policy's
support for the best candidate, in [0, 1], also when ``lang`` is ``und``; with a calibration that has
a final map, the calibrated probability that the best candidate is right) and ``consensus_method``
(``policy[answered/total]``: a row where a model errored says so).

Modules, each importing only those above it:

* ``_final``: :class:`FinalMap`, the calibration of the final consensus probability (a temperature
  on the final distribution, or an isotonic map of the top probability): the answer stays, its
  probability becomes one that means what it says.
* ``_settings``: :class:`ConsensusConfig` and the constants both implementations share.
* ``_calibration``: :class:`Calibration`, fitted temperatures, weights and final map read from their
  JSON file (fitting one is evaluation's: :func:`lidframe.fit_calibration`).
* ``_rows``: :func:`decide`, one row's consensus: the reference.
* ``_frames``: the same reduction as frame operations on a whole partition, on pandas or cuDF.
* ``_apply``: :func:`consensus_frame` (one partition, choosing the implementation),
  :func:`consensus` (a lazy Dask frame) and :func:`consensus_config` (settings as users give them).
* ``_cascade``: :class:`Cascade`, cheap model first: the kernel asks a later model only about the
  rows the earlier ones left unsure.
"""

from lidframe.consensus._apply import (
    CONSENSUS_COLUMNS,
    FRAME_OPS_ROWS,
    consensus,
    consensus_config,
    consensus_frame,
    consensus_meta,
)
from lidframe.consensus._calibration import CALIBRATION_FORMAT, Calibration, load_calibration
from lidframe.consensus._cascade import ESCALATE_BELOW, Cascade, check_threshold
from lidframe.consensus._final import FINAL_KINDS, REST_TOLERANCE, FinalMap, isotonic_knots
from lidframe.consensus._rows import Decision, consensus_rows, decide, supports, topk_pairs
from lidframe.consensus._settings import POLICIES, UNDETERMINED, ConsensusConfig

__all__ = [
    "CALIBRATION_FORMAT",
    "CONSENSUS_COLUMNS",
    "ESCALATE_BELOW",
    "FINAL_KINDS",
    "FRAME_OPS_ROWS",
    "POLICIES",
    "REST_TOLERANCE",
    "UNDETERMINED",
    "Calibration",
    "Cascade",
    "ConsensusConfig",
    "Decision",
    "FinalMap",
    "check_threshold",
    "consensus",
    "consensus_config",
    "consensus_frame",
    "consensus_meta",
    "consensus_rows",
    "decide",
    "isotonic_knots",
    "load_calibration",
    "supports",
    "topk_pairs",
]
