"""The ``lidframe`` command: identify, evaluate and report on the languages of audio collections.

Flags become a library call; what this module adds is the command-line contract: one line
``lidframe: error: ...`` for every failure (a traceback only with ``--debug``), and exit statuses that
a pipeline can act on (see :data:`EXIT_STATUSES`).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from lidframe.errors import JobInterrupted, LidframeError

__all__ = ["main"]


def _storage_options(pairs: Sequence[str]) -> dict[str, object]:
    """``KEY=VALUE`` pairs; VALUE is parsed as JSON when it can be (numbers, booleans, objects)."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LidframeError(f"--storage-option expects KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


EXIT_STATUSES = """\
exit status:
  0    the job finished and every row has an answer or its own row error
  1    the job finished with dead partitions, or it stopped on a systemic failure
       (storage refusing the credentials, the job database lost); state is kept
  2    bad input or settings, found before any work (manifest, model, --out, --db)
  130  interrupted (Ctrl-C); 143: terminated (SIGTERM); state is kept, rerun to resume"""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as the same one line as every other error (exit status 2)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"lidframe: error: {message} (see `{self.prog} --help`)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lidframe",
        description="Spoken language identification over large audio collections, on Dask.",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logs on errors"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="identify the language of every clip of a manifest",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    run.add_argument(
        "--models",
        nargs="+",
        default=["whisper-base"],
        help="model names (see `lidframe models`); default: whisper-base",
    )
    run.add_argument("--workers", type=int, default=None, help="local worker processes")
    run.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    run.add_argument("--batch-size", type=int, default=8, help="clips per forward pass")
    run.add_argument("--partition-rows", type=int, default=128, help="manifest rows per partition")
    run.add_argument("--top-k", type=int, default=5, help="languages kept in each *_topk column")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    run.add_argument(
        "--max-window",
        type=float,
        default=30.0,
        help="longest stretch of a file decoded per row, in seconds",
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

    ev = sub.add_parser("eval", help="score a run's results against ground truth")
    ev.add_argument("results", help="a run's Parquet folder")
    ev.add_argument(
        "--labels", default=None, help="labelled manifest joined by id (default: the label column)"
    )
    ev.add_argument("--models", nargs="+", default=None, help="models to score (default: all)")
    ev.add_argument(
        "--confident",
        type=float,
        default=0.9,
        help="probability at or above which a wrong answer counts as confidently wrong",
    )
    ev.add_argument("--target-accuracy", type=float, default=0.95, help="for the threshold picker")
    ev.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE")
    ev.add_argument(
        "--name", default="latest", help="stored as RESULTS/_lidframe_evaluations/NAME.json"
    )
    ev.add_argument("--db", default=None, help="also store it in this job database")
    ev.add_argument("--no-save", action="store_true", help="print only, store nothing")

    rep = sub.add_parser("report", help="a self-contained HTML evaluation report")
    rep.add_argument("results", help="a run's Parquet folder")
    rep.add_argument(
        "--html",
        default=None,
        help="the HTML file to write (default: RESULTS-report.html beside the results folder)",
    )
    rep.add_argument("--labels", default=None, help="labelled manifest (default: the label column)")
    rep.add_argument("--models", nargs="+", default=None, help="models to report (default: all)")
    rep.add_argument("--title", default=None, help="report title (default: the results folder)")
    rep.add_argument("--target-accuracy", type=float, default=0.95, help="marked on the curves")
    rep.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE")

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

    status = sub.add_parser("status", help="a job's progress by partition state")
    status.add_argument("job", nargs="?", default=None, help="job id (default: the newest job)")
    _db_arguments(status, with_out=True)
    jobs = sub.add_parser("jobs", help="list the jobs of a job database")
    _db_arguments(jobs, with_out=True)

    cal = sub.add_parser(
        "calibrate", help="fit consensus temperatures and weights on labelled results"
    )
    cal.add_argument("results", help="a run's Parquet folder (rows need a label)")
    cal.add_argument("--out", required=True, help="calibration JSON to write")
    cal.add_argument("--models", nargs="+", default=None, help="models to combine (default: all)")
    cal.add_argument("--policy", default="product", choices=["weighted", "product"])
    cal.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE")

    sub.add_parser("models", help="list the model names and the installed model families")
    return parser


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


def _eval(args: argparse.Namespace) -> int:
    from lidframe.eval import evaluate
    from lidframe.eval.records import save_evaluation
    from lidframe.eval.text import evaluation_text, stored_text

    options = _storage_options(args.storage_option)
    ev = evaluate(
        args.results,
        labels=args.labels,
        models=args.models,
        confident=args.confident,
        storage_options=options,
    )
    print(evaluation_text(ev, args.target_accuracy))
    if not args.no_save:
        saved = save_evaluation(
            ev,
            args.results,
            name=args.name,
            labels=args.labels,
            db=args.db,
            storage_options=options,
        )
        print(f"\n{stored_text(saved)}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from lidframe.eval.report import write_report

    print(
        write_report(
            args.results,
            args.html,
            labels=args.labels,
            models=args.models,
            title=args.title,
            target_accuracy=args.target_accuracy,
            storage_options=_storage_options(args.storage_option),
        )
    )
    return 0


def _compare(args: argparse.Namespace) -> int:
    from lidframe.eval.regressions import compare_results

    result = compare_results(
        args.run_a,
        args.run_b,
        labels=args.labels,
        alpha=args.alpha,
        storage_options=_storage_options(args.storage_option),
    )
    print(result)
    return 1 if result.regressed else 0


def _status(args: argparse.Namespace) -> int:
    from lidframe.job_queries import job_status

    print(job_status(args.job, db=args.db, out=args.out))
    return 0


def _jobs(args: argparse.Namespace) -> int:
    from lidframe.job_queries import jobs_table

    print(jobs_table(db=args.db, out=args.out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lidframe`` command; returns the exit status (see ``EXIT_STATUSES``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    at = 1 if argv[:1] == ["--debug"] else 0
    if argv[at : at + 2] == ["eval", "compare"]:  # `lidframe eval compare A B`
        argv[at : at + 2] = ["compare"]
    args = _parser().parse_args(argv)
    _configure_logging(args.debug)
    try:
        with _sigterm_interrupts():
            return _dispatch(args)
    except JobInterrupted as exc:
        _quiet_shutdown()
        print(f"lidframe: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        _quiet_shutdown()
        print("lidframe: interrupted", file=sys.stderr)
        return 130
    except LidframeError as exc:
        if args.debug:
            logging.getLogger("lidframe").exception("failed")
        print(f"lidframe: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_status
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"lidframe: error: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "models":
        from lidframe.models import models_text

        print(models_text())
        return 0
    commands = {
        "calibrate": _calibrate,
        "eval": _eval,
        "compare": _compare,
        "report": _report,
        "status": _status,
        "jobs": _jobs,
        "run": _run,
    }
    return commands[args.command](args)


def _run(args: argparse.Namespace) -> int:
    from lidframe.audio import AudioConfig
    from lidframe.pipeline import run

    summary = run(
        args.manifest,
        args.out,
        args.models,
        workers=args.workers,
        scheduler=args.scheduler,
        batch_size=args.batch_size,
        partition_rows=args.partition_rows,
        top_k=args.top_k,
        device=args.device,
        dtype=args.dtype,
        audio=AudioConfig(
            max_window=args.max_window, io_timeout=args.io_timeout, timeout=args.decode_timeout
        ),
        storage_options=_storage_options(args.storage_option),
        consensus_policy=args.consensus,
        calibration=args.calibration,
        min_prob=args.min_prob,
        progress=not args.no_progress,
        db=False if args.no_db else args.db,
        job=args.job,
        max_attempts=args.max_attempts,
        lease_seconds=args.lease_seconds,
        stall_seconds=args.stall_seconds,
        retry_dead=args.retry_dead,
        overwrite=args.overwrite,
    )
    print(summary)
    if summary.ok:
        return 0
    print(
        f"lidframe: error: job {summary.job_id} finished with {summary.dead} dead partition(s): "
        "their rows have 'dead_partition' errors; `lidframe status` says why, and the same "
        "command with --retry-dead tries them again",
        file=sys.stderr,
    )
    return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (the command may be called in-process)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("lidframe: %(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - logging must never fail the job
            self.handleError(record)


def _configure_logging(debug: bool) -> None:
    """lidframe's warnings (failed attempts, stalls) as ``lidframe: warning: ...`` lines."""
    log = logging.getLogger("lidframe")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        log.addHandler(_StderrHandler())
    log.setLevel(logging.DEBUG if debug else logging.WARNING)
    log.propagate = False


def _quiet_shutdown() -> None:
    """After an interrupt, Dask's messages about closing the cluster are noise: only errors."""
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (batch schedulers, ``kill``) stops a run like Ctrl-C: leases released, exit 143."""

    def handler(signum: int, frame: Any) -> None:
        raise JobInterrupted("terminated", exit_status=143)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _calibrate(args: argparse.Namespace) -> int:
    from lidframe.calibration import calibrate_results

    fitted = calibrate_results(
        args.results,
        args.out,
        models=args.models,
        policy=args.policy,
        storage_options=_storage_options(args.storage_option),
    )
    print(fitted.describe(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
