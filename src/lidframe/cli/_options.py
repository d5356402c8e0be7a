"""The options and help texts several ``lidframe`` commands share: ``-m/--models``, ``--version``,
the common commands the top-level help shows.

``-m/--models`` is repeatable and each value comma-separated (``-m a,b -m c``), so a manifest may
come before, between or after the models: an option taking several values (argparse's ``nargs``)
would swallow it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
from collections.abc import Sequence
from typing import Any

__all__ = [
    "COMMON_COMMANDS",
    "EVAL_COMPARE",
    "REVIEW_QUEUES",
    "ModelList",
    "by_argument",
    "embed_audio_arguments",
    "models_argument",
    "positive_seconds",
    "version",
]


COMMON_COMMANDS = """\
common commands:
  lidframe run manifest.csv --out results         identify every clip's language (whisper-base)
  lidframe run manifest.csv --out results -m whisper-base,voxlingua107-ecapa
                                                  several models, and their consensus
  lidframe status --out results                   a job's progress (run the same `run` to resume)
  lidframe eval results                           accuracy against the manifest's label column
  lidframe eval compare old-results new-results   is the new run significantly worse?
  lidframe report results                         the evaluation as one HTML file
  lidframe models                                 model names, which work offline, their weights

A manifest is a CSV, Parquet or JSONL file with an `audio` column (paths or URLs such as s3://);
results are Parquet files. `lidframe COMMAND --help` lists a command's options; lidframe's README
(README.md, also the package's description on its index) explains manifests, models, clusters and
job databases."""

EVAL_COMPARE = """\
to compare two runs on the same clips:
  lidframe eval compare RUN_A RUN_B [--labels MANIFEST] [--alpha 0.05]
  a paired test of RUN_B (new) against RUN_A (baseline); exit status 1 when RUN_B is significantly
  worse (`lidframe compare --help` for its options)"""


# lidframe.review.QUEUE_KINDS (not imported: the parser stays light; a test checks they match).
REVIEW_QUEUES = ["disagreement", "low_margin", "code_switch", "und_near", "language", "random"]


def version() -> str:
    """The installed lidframe's version (its distribution's, else the package's ``__version__``)."""
    try:
        return importlib.metadata.version("lidframe")
    except importlib.metadata.PackageNotFoundError:
        import lidframe

        return str(getattr(lidframe, "__version__", "unknown"))


class ModelList(argparse.Action):
    """``-m a,b -m c``: every use adds its comma-separated names, in order, to one list.

    The first use replaces the default. A model name never holds a comma (nor does a directory
    passed as ``family:/path``).
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        names = [name.strip() for name in str(values).split(",")]
        if not all(names):
            parser.error(f"{option_string}: an empty model name in {values!r}")
        given = getattr(namespace, self.dest, None)
        if given is None or given is self.default:
            given = []
        setattr(namespace, self.dest, [*given, *names])


def models_argument(parser: argparse.ArgumentParser, default: list[str] | None, what: str) -> None:
    """The ``-m/--models`` option: repeatable, each value comma-separated, anywhere on the line."""
    parser.add_argument(
        "-m",
        "--models",
        action=ModelList,
        default=default,
        metavar="NAME[,NAME...]",
        help=f"{what}, comma-separated or repeated (-m a -m b), in order; see `lidframe models` "
        "(a directory whose path holds a comma cannot be passed) (default: "
        + (", ".join(default) if default else "all")
        + ")",
    )


def by_argument(parser: argparse.ArgumentParser) -> None:
    """``--by COLUMN``: repeatable, each value comma-separated; scores per value of each column."""
    parser.add_argument(
        "--by",
        action="append",
        default=[],
        metavar="COLUMN[,COLUMN...]",
        help="also score per value of each column (speaker, source, sample_rate...): the "
        "results' own, else the labels manifest's or the job's manifest's, joined by id; a "
        "number column with more than 50 values is cut into 10 quantile bins",
    )


def positive_seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds (else a one-line usage error)."""
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def embed_audio_arguments(parser: argparse.ArgumentParser) -> None:
    """``--embed-audio`` and ``--embed-max-seconds`` of the HTML report's wrong-row players."""
    parser.add_argument(
        "--embed-audio",
        action="store_true",
        help="embed each wrong row's clip in the page as WAV (it then plays without the audio "
        "files; a larger file) instead of linking the audio file",
    )
    parser.add_argument(
        "--embed-max-seconds",
        type=positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="with --embed-audio: embed at most this many seconds of each clip (default 10)",
    )
