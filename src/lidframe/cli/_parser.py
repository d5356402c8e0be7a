"""The ``lidframe`` command's flags and help (argparse), apart from what the command does with them.

Usage errors are the same one line as every other error (``lidframe: error: ...``, exit status 2);
:data:`EXIT_STATUSES` is the contract every command's help ends with.
"""

from __future__ import annotations

import argparse
from typing import Any

from lidframe.cli._options import (
    COMMON_COMMANDS,
    EVAL_COMPARE,
    by_argument,
    models_argument,
    version,
)
from lidframe.cli._settings import add_settings
from lidframe.job import RunConfig

__all__ = ["EXIT_STATUSES", "build_parser"]


EXIT_STATUSES = """\
exit status:
  0    the job finished and every row has an answer or its own row error
  1    the job finished with dead partitions, or it stopped on a systemic failure
       (storage refusing the credentials, the job database lost); state is kept
  2    bad input or settings, found before any work (manifest, model, --out, --db)
  130  interrupted (Ctrl-C); 143: terminated (SIGTERM); state is kept, rerun to resume"""


DRIFT_STATUSES = """\
exit status:
  0    no statistic moved beyond its threshold
  1    a statistic moved (each is named with its value and threshold)
  2    bad input: no such job or reference, no behaviour stored, a threshold not above 0"""


class _WithDefaults(argparse.RawDescriptionHelpFormatter):
    """Each option's help ends with its default, unless the help says it already, or the default
    is nothing to show (a switch that is off, no value, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or not action.option_strings
            or default is None
            or isinstance(default, bool)  # a switch
            or default is argparse.SUPPRESS
            or default == []
        ):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as the same one line as every other error (exit status 2)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"lidframe: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``lidframe`` command's flags: one subcommand per library call."""
    parser = _Parser(
        prog="lidframe",
        description="Identify the spoken language of every clip in an audio collection, on one "
        "machine or a Dask cluster.",
        epilog=f"{COMMON_COMMANDS}\n\n{EXIT_STATUSES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"lidframe {version()}",
        help="print lidframe's version and exit",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logs on errors"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    run = sub.add_parser(
        "run",
        help="identify the language of every clip of a manifest",
        epilog=EXIT_STATUSES,
        formatter_class=_WithDefaults,
    )
    run.add_argument(
        "manifest", help="CSV, Parquet or JSONL manifest (local path or URL, e.g. s3://)"
    )
    run.add_argument(
        "--out",
        required=True,
        help="output folder for part-NNNNN.parquet files; it belongs to one job",
    )
    # Every setting of lidframe.run, from its one declaration (lidframe.settings).
    add_settings(run, RunConfig, grouped=True)

    ev = sub.add_parser(
        "eval",
        help="score a run's results against ground truth (`eval compare`: two runs)",
        epilog=EVAL_COMPARE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("results", help="a run's Parquet folder")
    ev.add_argument(
        "--labels", default=None, help="labelled manifest joined by id (default: the label column)"
    )
    models_argument(ev, None, "models to score")
    ev.add_argument(
        "--confident",
        type=float,
        default=0.9,
        help="probability at or above which a wrong answer counts as confidently wrong",
    )
    ev.add_argument("--target-accuracy", type=float, default=0.95, help="for the threshold picker")
    by_argument(ev)
    _storage_argument(ev, "the results and labels")
    ev.add_argument(
        "--name", default="latest", help="stored as RESULTS/_lidframe_evaluations/NAME.json"
    )
    ev.add_argument(
        "--db",
        default=None,
        help="the results' job database: the job's manifest for --by is read from it, and the "
        "evaluation is stored in it too (default: the embedded one of a local results folder)",
    )
    ev.add_argument(
        "--calibration",
        default=None,
        metavar="FILE",
        help="a calibration (`lidframe calibrate`) whose consensus before and after is checked on "
        "the labelled rows (default: the one the run applied, if any)",
    )
    ev.add_argument("--no-save", action="store_true", help="print only, store nothing")

    rep = sub.add_parser("report", help="a self-contained HTML evaluation report")
    rep.add_argument("results", help="a run's Parquet folder")
    rep.add_argument(
        "--html",
        default=None,
        help="the HTML file to write (default: RESULTS-report.html beside the results folder)",
    )
    rep.add_argument("--labels", default=None, help="labelled manifest (default: the label column)")
    models_argument(rep, None, "models to report")
    rep.add_argument("--title", default=None, help="report title (default: the results folder)")
    rep.add_argument("--target-accuracy", type=float, default=0.95, help="marked on the curves")
    by_argument(rep)
    _storage_argument(rep, "the results, labels and audio")
    rep.add_argument(
        "--calibration",
        default=None,
        metavar="FILE",
        help="a calibration (`lidframe calibrate`) whose consensus before and after the report "
        "shows (default: the one the run applied, if any)",
    )
    from lidframe.cli._options import embed_audio_arguments

    embed_audio_arguments(rep)

    cmp = sub.add_parser(
        "compare",
        help="paired test of run B against run A; exit 1 on a significant regression "
        "(also `lidframe eval compare A B`)",
    )
    cmp.add_argument("run_a", help="baseline results folder")
    cmp.add_argument("run_b", help="new results folder")
    cmp.add_argument("--labels", default=None, help="labelled manifest (default: label columns)")
    cmp.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    _storage_argument(cmp, "the two results and the labels")

    status = sub.add_parser(
        "status",
        help="a job's progress by partition state and what its models said so far (language "
        "mix, agreement, und and row-error rates)",
        formatter_class=_WithDefaults,
    )
    status.add_argument("job", nargs="?", default=None, help="job id (default: the newest job)")
    _fleet_argument(status)
    _db_arguments(status, with_out=True)
    watch = sub.add_parser(
        "watch",
        help="`lidframe status` again every few seconds until the job is no longer running; "
        "exit 0 when it finished, 1 when partitions died",
        formatter_class=_WithDefaults,
    )
    watch.add_argument("job", nargs="?", default=None, help="job id (default: the newest job)")
    watch.add_argument(
        "--every", type=float, default=2.0, metavar="SECONDS", help="seconds between two"
    )
    _fleet_argument(watch)
    _db_arguments(watch, with_out=True)
    drift = sub.add_parser(
        "drift",
        help="what moved between a job's answers and a reference's: language shares, "
        "confidence, agreement, und and row-error rates; exit 1 when a statistic moved",
        epilog=DRIFT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    drift.add_argument("job", nargs="?", default=None, help="job id (default: the newest job)")
    drift.add_argument(
        "--reference",
        required=True,
        metavar="REF",
        help="another job of the same job database, or a results folder (its newest job)",
    )
    drift.add_argument(
        "--max-js",
        type=float,
        default=0.1,
        help="language shares moved above this Jensen-Shannon distance, base 2 (default 0.1, "
        "as Evidently)",
    )
    drift.add_argument(
        "--max-psi",
        type=float,
        default=0.1,
        help="confidence (top-1 probability histogram) moved above this population stability "
        "index (default 0.1, as Evidently)",
    )
    drift.add_argument(
        "--max-rate",
        type=float,
        default=0.05,
        help="agreement, und and row-error rates moved by more than this (default 0.05)",
    )
    _db_arguments(drift, with_out=True)
    jobs = sub.add_parser("jobs", help="list the jobs of a job database")
    _db_arguments(jobs, with_out=True)

    cal = sub.add_parser(
        "calibrate",
        help="fit consensus temperatures and weights, then the final map of the consensus "
        "probability, on labelled results",
    )
    cal.add_argument("results", help="a run's Parquet folder (rows need a label)")
    cal.add_argument("--out", required=True, help="calibration JSON to write")
    models_argument(cal, None, "models to combine")
    cal.add_argument("--policy", default="product", choices=["weighted", "product"])
    cal.add_argument(
        "--folds",
        type=int,
        default=5,
        help="folds of the held-out figures and of the choice of the final map (0: none; "
        "default 5)",
    )
    cal.add_argument(
        "--final",
        default="auto",
        choices=["auto", "temperature", "isotonic", "none"],
        help="the final map: chosen by held-out ECE (auto, the default), that kind, or none",
    )
    _storage_argument(cal, "the results")

    _check_parser(sub)
    _review_parser(sub)
    sub.add_parser(
        "models", help="the model names: which work offline here, where their weights come from"
    )
    env = sub.add_parser(
        "env",
        help="this machine's environment fingerprint: what can change an answer (packages, "
        "audio libraries, GPU and CUDA) and a digest of every installed distribution",
    )
    env.add_argument("--json", action="store_true", help="all of it as JSON, to diff two nodes")
    return parser


def _check_parser(sub: Any) -> None:
    check = sub.add_parser(
        "check",
        help="compare half precision or int8 with float32 on a manifest's first clips with speech",
        epilog="exit status:\n  0    every model passed\n  1    a model's top-1 agreement "
        "is below --threshold\n  2    bad input or settings",
        formatter_class=_WithDefaults,
    )
    check.add_argument("manifest", help="CSV, Parquet or JSONL manifest (local path or URL)")
    add_settings(check, RunConfig, CHECK_SETTINGS, overrides=_CHECK_OVERRIDES)


# The settings of lidframe.run that ``lidframe check`` takes too, and how it differs.
CHECK_SETTINGS = (
    "models",
    "dtype",
    "fidelity_clips",
    "fidelity_threshold",
    "device",
    "batch_size",
    "storage_options",
)
_CHECK_OVERRIDES: dict[str, dict[str, Any]] = {
    "models": {"what": "models to check"},
    "dtype": {
        "default": "bfloat16",
        "help": "dtype to check: bfloat16, float16 or int8 (auto: what a job on this device "
        "would run)",
    },
    "fidelity_clips": {"flag": "--clips", "help": "clips compared"},
    "fidelity_threshold": {
        "flag": "--threshold",
        "help": "least top-1 agreement (default: 0.995 for float16, 0.95 for bfloat16, 0.9 for int8)",
    },
    "batch_size": {"default": 8, "help": "clips per forward pass"},
    "storage_options": {"help": "fsspec options for the manifest and audio"},
}


# ``lidframe review SUBCOMMAND``; anything else after ``review`` is ``review serve ...``.
REVIEW_SUBCOMMANDS = ("serve", "status", "export", "import", "queue")


def review_argv(argv: list[str], at: int) -> list[str]:
    """``lidframe review RESULTS ...`` (``argv[at]`` is ``review``) as ``review serve RESULTS ...``:
    the page is the command's default, its other subcommands stay as they are."""
    after = argv[at + 1 : at + 2]
    if after and after[0] not in (*REVIEW_SUBCOMMANDS, "-h", "--help"):
        return [*argv[: at + 1], "serve", *argv[at + 1 :]]
    return argv


def _review_parser(sub: Any) -> None:
    """``lidframe review RESULTS`` (the listening page; also ``review serve RESULTS``) and
    ``lidframe review status|export|import|queue RESULTS``."""
    from lidframe.cli._options import REVIEW_QUEUES

    review = sub.add_parser(
        "review",
        help="human review of a job's answers: the listening page, queues, status, export, import",
        usage="%(prog)s RESULTS [options]   (the listening page; or: %(prog)s SUBCOMMAND ...)",
    )
    commands = review.add_subparsers(
        dest="review_command", required=True, metavar="SUBCOMMAND", title="subcommands"
    )

    def results(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("results", help="a run's output folder (its job's database)")
        _db_arguments(parser)
        parser.add_argument(
            "--job", default=None, help="job id (default: the newest job that wrote RESULTS)"
        )

    serve = commands.add_parser(
        "serve",
        help="the listening page (the default: `lidframe review RESULTS`): one URL with an access "
        "token, on 127.0.0.1",
    )
    results(serve)
    serve.add_argument("--reviewer", default=None, help="who reviews (default: your login name)")
    serve.add_argument(
        "--queue", default=None, help="the queue to serve, by name (default: every queue)"
    )
    serve.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; any other warns: whoever reaches it and "
        "has the URL can listen and answer)",
    )
    _storage_argument(serve, "the rows' audio")
    serve.add_argument(
        "--lease-seconds",
        type=float,
        default=120.0,
        help="how long a reviewer holds a row before anyone else may take it (default 120)",
    )
    status = commands.add_parser(
        "status",
        help="rows by queue and reviewer, Cohen's kappa, the job's accuracy estimated from the "
        "random queue",
    )
    results(status)
    status.add_argument(
        "--confidence", type=float, default=0.95, help="of the accuracy's interval (default 0.95)"
    )
    export = commands.add_parser(
        "export", help="the reviewed labels as a manifest (for `eval --labels`) or Label Studio"
    )
    results(export)
    export.add_argument(
        "--out", required=True, help="FILE.csv or FILE.parquet (manifest), FILE.json (label-studio)"
    )
    export.add_argument(
        "--format",
        default="manifest",
        choices=["manifest", "label-studio"],
        help="(default manifest)",
    )
    imported = commands.add_parser(
        "import", help="store the annotations of a Label Studio JSON export as answers"
    )
    results(imported)
    imported.add_argument("file", help="Label Studio JSON (a list of tasks with annotations)")
    queue = commands.add_parser("queue", help="build (or extend) a queue of rows to review")
    results(queue)
    queue.add_argument("--queue", required=True, choices=REVIEW_QUEUES, help="which rows")
    queue.add_argument("--name", default=None, help="queue name (default: the kind)")
    queue.add_argument("--limit", type=int, default=None, help="at most N rows (default: all)")
    queue.add_argument(
        "--second-share",
        type=float,
        default=0.05,
        help="share of the rows a second reviewer also answers (default 0.05)",
    )
    queue.add_argument("--seed", type=int, default=0, help="of the queue's random order")
    queue.add_argument("--language", default=None, help="with --queue language: the language")
    queue.add_argument(
        "--max-margin", type=float, default=None, help="with --queue low_margin (default 0.2)"
    )
    queue.add_argument(
        "--band",
        type=float,
        default=None,
        help="with --queue und_near: seconds of speech above --min-speech (default 0.5)",
    )


def _fleet_argument(parser: argparse.ArgumentParser) -> None:
    """``--fleet-min-rows``: the setting of lidframe.run, as status and watch apply it too."""
    add_settings(parser, RunConfig, ["fleet_min_rows"])


def _storage_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--storage-option KEY=VALUE`` (repeatable), as lidframe run's, for ``what``."""
    add_settings(
        parser,
        RunConfig,
        ["storage_options"],
        overrides={"storage_options": {"help": f"fsspec options for {what}"}},
    )


def _db_arguments(parser: argparse.ArgumentParser, with_out: bool = False) -> None:
    """``--db`` (the setting of lidframe.run, without ``--no-db``) and, ``with_out``, ``--out``:
    where a command finds the job database."""
    add_settings(parser, RunConfig, ["db"], overrides={"db": {"off_switch": False}})
    if with_out:
        parser.add_argument(
            "--out", default=None, help="a run's output folder (its embedded database)"
        )
