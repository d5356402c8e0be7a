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
    backend_argument,
    by_argument,
    models_argument,
    version,
)

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


# lidframe.models.spec.DTYPES and the aliases dtype_name() accepts (not imported: the parser stays
# light).
_DTYPES = ["auto", "float32", "float16", "bfloat16", "int8", "fp32", "fp16", "bf16"]


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
            or default is False  # a switch (0.0 == False: compared by identity)
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
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="delete another job's results in --out and write this job's there",
    )
    models_argument(run, ["whisper-base"], "models to run")
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes of the local cluster (default: one per GPU, else 1)",
    )
    run.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    run.add_argument(
        "--decode-threads",
        type=int,
        default=None,
        help="decoder processes per worker (default: 4; on a GPU worker, its host's cores per GPU "
        "less one)",
    )
    run.add_argument(
        "--gpu-threads",
        type=int,
        default=2,
        help="partitions in flight per local GPU worker: one decodes while the other is in the "
        "model (default 2)",
    )
    run.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="clips per forward pass (default: 8; on a GPU worker 64, within --batch-seconds 960)",
    )
    run.add_argument(
        "--batch-seconds",
        type=float,
        default=None,
        metavar="S",
        help="at most S seconds of padded input per forward pass (clips x padded length)",
    )
    run.add_argument("--partition-rows", type=int, default=128, help="manifest rows per partition")
    run.add_argument("--top-k", type=int, default=5, help="languages kept in each *_topk column")
    run.add_argument(
        "--device", default="auto", help="auto (a GPU when the worker has one), cpu, cuda or cuda:N"
    )
    backend_argument(run)
    run.add_argument(
        "--dtype",
        default="auto",
        choices=_DTYPES,
        help="auto: bfloat16 on a GPU that supports it, float16 on an older GPU, float32 on the "
        "CPU; int8: the CPU only (the encoder's linear layers in int8, inputs per token, as "
        "faster-whisper's int8); half precision and int8 are checked against float32 first (see "
        "`lidframe check`) and the job runs in float32 when they disagree (default: auto)",
    )
    run.add_argument(
        "--max-window",
        type=float,
        default=30.0,
        help="longest stretch of a file decoded per row, in seconds",
    )
    run.add_argument(
        "--min-speech",
        type=float,
        default=0.25,
        help="seconds of speech below which a row is answered 'und' (no speech); 0: never "
        "(default 0.25: no speech found at all)",
    )
    run.add_argument(
        "--context",
        default="speech",
        metavar="speech|full|SECONDS",
        help="speech: models hear only the speech and Whisper's encoder runs on the frames it "
        "needs, at least 10 s (under 1 s of speech: the whole clip at 30 s); SECONDS: at least "
        "that many; full: "
        "the clip as decoded, Whisper padded to 30 s (faster-whisper's numbers) (default: speech)",
    )
    run.add_argument(
        "--max-windows",
        type=int,
        default=8,
        help="a row without duration whose file is longer than --max-window is heard in up to "
        "this many windows spread over the file (default 8; 1: its start only)",
    )
    run.add_argument(
        "--no-vad",
        action="store_true",
        help="no voice activity detection: models hear every clip whole, nothing is 'und'",
    )
    run.add_argument(
        "--io-timeout",
        type=float,
        default=30.0,
        help="seconds to connect to remote storage and for each read (default 30)",
    )
    run.add_argument(
        "--decode-timeout",
        type=float,
        default=120.0,
        help="seconds one row may take to open, read and decode; then it is a 'timeout' "
        "row error (default 120)",
    )
    run.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fsspec option for the manifest, audio and output (repeatable)",
    )
    run.add_argument(
        "--consensus",
        default="majority",
        choices=["unanimous", "majority", "weighted", "product"],
        help="how several models' answers are combined (default: majority)",
    )
    run.add_argument(
        "--languages",
        default=None,
        metavar="CODES",
        help="candidate languages, comma-separated (e.g. en,es,fr): every model answers one of "
        "them, its probabilities renormalised over them; 'und' still means no speech "
        "(default: any language a model has)",
    )
    run.add_argument(
        "--min-prob",
        type=float,
        default=0.0,
        help="consensus support below which the answer is 'und'",
    )
    run.add_argument(
        "--calibration",
        default=None,
        metavar="FILE",
        help="consensus calibration written by `lidframe calibrate`",
    )
    run.add_argument(
        "--cascade",
        action="store_true",
        help="run the models in the order given, each only on the rows the ones before left "
        "below --escalate-below consensus support (cheap model first)",
    )
    run.add_argument(
        "--escalate-below",
        type=float,
        default=None,
        metavar="P",
        help="with --cascade: send a row on while its consensus support is below P "
        "(default 0.9, see benchmarks/RESULTS.md)",
    )
    run.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    _db_arguments(run)
    run.add_argument(
        "--no-db", action="store_true", help="no job database: no resume, no exactly-once"
    )
    run.add_argument(
        "--job",
        default=None,
        help="job id (default: derived from the manifest, output, models and settings); "
        "running the same job again resumes it",
    )
    run.add_argument(
        "--max-attempts",
        type=int,
        default=3,
        help="tries of one partition before it is given up as dead (default 3)",
    )
    run.add_argument(
        "--lease-seconds",
        type=float,
        default=60.0,
        help="lease length; a crashed run's partitions are taken over after it (default 60)",
    )
    run.add_argument(
        "--stall-seconds",
        type=float,
        default=600.0,
        help="a partition task silent for this long fails its attempt and its worker is "
        "restarted (default 600)",
    )
    run.add_argument(
        "--retry-dead", action="store_true", help="give dead partitions a new set of attempts"
    )
    run.add_argument(
        "--reference",
        default=None,
        metavar="REF",
        help="while working, compare what the models say with REF (another job of the job "
        "database, or a results folder) every --check-every partitions, as `lidframe drift` "
        "does, and warn once when a statistic moves beyond its default threshold",
    )
    run.add_argument(
        "--check-every",
        type=int,
        default=10,
        metavar="N",
        help="partitions between two checks of what the models say: against --reference, and "
        "each worker against the others (default 10)",
    )
    run.add_argument(
        "--quarantine",
        action="store_true",
        help="a worker whose answers depart from the other workers' (language shares, "
        "confidence, agreement, und or error rates) gets no more partitions and none of its "
        "attempts counts: what it computed, and what died of its failures, is redone "
        "elsewhere; without it, it is only named in a warning",
    )
    _fleet_argument(run)
    run.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics while the job works (rows and errors by category, "
        "partitions by state, rows/s, language shares, agreement, und and error rates, drift) "
        "at http://127.0.0.1:PORT/metrics, to requests carrying the job's token; needs "
        "lidframe[metrics]",
    )
    run.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address the metrics endpoint listens on (default 127.0.0.1: this machine only)",
    )
    run.add_argument(
        "--metrics-token-file",
        default=None,
        metavar="PATH",
        help="the token every scrape must carry (Authorization: Bearer, or ?token=) is this "
        "file's content; a missing file is created with a random token (point Prometheus' "
        "credentials_file at it); default: a random token, printed with the URL",
    )
    run.add_argument(
        "--fidelity-clips",
        type=int,
        default=32,
        help="clips with speech on which half precision is checked against float32 (default 32)",
    )
    run.add_argument(
        "--fidelity-threshold",
        type=float,
        default=None,
        help="least top-1 agreement with float32 for half precision or int8; below it the job "
        "runs in float32 (default: 0.995 for half precision, 0.9 for int8)",
    )

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
    ev.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE")
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
    rep.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE")
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
    cmp.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE")

    status = sub.add_parser(
        "status",
        help="a job's progress by partition state and what its models said so far (language "
        "mix, agreement, und and row-error rates)",
    )
    status.add_argument("job", nargs="?", default=None, help="job id (default: the newest job)")
    _fleet_argument(status)
    _db_arguments(status, with_out=True)
    watch = sub.add_parser(
        "watch",
        help="`lidframe status` again every few seconds until the job is no longer running; "
        "exit 0 when it finished, 1 when partitions died",
    )
    watch.add_argument("job", nargs="?", default=None, help="job id (default: the newest job)")
    watch.add_argument(
        "--every", type=float, default=2.0, metavar="SECONDS", help="seconds between two (2)"
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
    cal.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE")

    _check_parser(sub)
    _review_parser(sub)
    sub.add_parser(
        "models", help="the model names: which work offline here, where their weights come from"
    )
    return parser


def _check_parser(sub: Any) -> None:
    check = sub.add_parser(
        "check",
        help="compare half precision or int8 with float32 on a manifest's first clips with speech",
        epilog="exit status:\n  0    every model passed\n  1    a model's top-1 agreement "
        "is below --threshold\n  2    bad input or settings",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("manifest", help="CSV, Parquet or JSONL manifest (local path or URL)")
    models_argument(check, ["whisper-base"], "models to check")
    check.add_argument(
        "--dtype",
        default="bfloat16",
        choices=_DTYPES,
        help="dtype to check: bfloat16, float16 or int8 (auto: what a job on this device would "
        "run; default bfloat16)",
    )
    check.add_argument("--clips", type=int, default=32, help="clips compared (default 32)")
    check.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="least top-1 agreement (default: 0.995 for half precision, 0.9 for int8)",
    )
    check.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    check.add_argument("--batch-size", type=int, default=8, help="clips per forward pass")
    check.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE")


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
    serve.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fsspec option for the rows' audio (repeatable)",
    )
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
    parser.add_argument(
        "--fleet-min-rows",
        type=int,
        default=200,
        metavar="ROWS",
        help="a worker whose answers depart from the other workers' is named once it, and the "
        "rest, have this many rows (default 200)",
    )


def _db_arguments(parser: argparse.ArgumentParser, with_out: bool = False) -> None:
    parser.add_argument(
        "--db",
        default=None,
        help="job database URL: postgresql+psycopg://USER@HOST/DB or sqlite:///FILE "
        "(default: $LIDFRAME_DB, else OUT/_lidframe.sqlite); prefer $LIDFRAME_DB for passwords",
    )
    if with_out:
        parser.add_argument(
            "--out", default=None, help="a run's output folder (its embedded database)"
        )
