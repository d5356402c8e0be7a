""":func:`main`: each command's flags become one library call, under the command-line contract (one
``lidframe: error: ...`` line for every failure, a traceback only with ``--debug``, and the exit
statuses of :data:`~lidframe.cli.EXIT_STATUSES`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from lidframe.cli._parser import CHECK_SETTINGS, build_parser, review_argv
from lidframe.cli._settings import parse_storage_options, settings_from
from lidframe.errors import ConfigError, JobInterrupted, LidframeError
from lidframe.job import interrupts_that_stick, raise_pending

__all__ = ["main"]


def _eval(args: argparse.Namespace) -> int:
    from lidframe.eval import evaluate, evaluation_text, save_evaluation, stored_text

    options = parse_storage_options(args.storage_options)
    ev = evaluate(
        args.results,
        labels=args.labels,
        models=args.models,
        confident=args.confident,
        storage_options=options,
        db=args.db,
        by=args.by,
        calibration=args.calibration,
    )
    print(evaluation_text(ev, args.target_accuracy))
    if not ev.labelled:
        print("\nnothing stored: no labelled row to score (`lidframe report` shows the answers)")
    elif not args.no_save:
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
            storage_options=parse_storage_options(args.storage_options),
            embed_audio=args.embed_audio,
            embed_max_seconds=args.embed_max_seconds,
            by=args.by,
            calibration=args.calibration,
        )
    )
    return 0


def _compare(args: argparse.Namespace) -> int:
    from lidframe.eval import compare_results

    result = compare_results(
        args.run_a,
        args.run_b,
        labels=args.labels,
        alpha=args.alpha,
        storage_options=parse_storage_options(args.storage_options),
    )
    print(result)
    return 1 if result.regressed else 0


def _status(args: argparse.Namespace) -> int:
    from lidframe.job import job_status

    print(job_status(args.job, db=args.db, out=args.out, fleet_min_rows=args.fleet_min_rows))
    return 0


def _watch(args: argparse.Namespace) -> int:
    from lidframe.job import watch_job

    if args.every <= 0:
        raise ConfigError(f"--every must be above 0 seconds, got {args.every}")
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    last = "running"
    for text, state in watch_job(
        args.job, db=args.db, out=args.out, every=args.every, fleet_min_rows=args.fleet_min_rows
    ):
        print(f"{clear}{text}", flush=True)
        last = state
    return 0 if last == "finished" else 1


def _drift(args: argparse.Namespace) -> int:
    from lidframe.job import job_drift
    from lidframe.observe import DriftThresholds

    thresholds = DriftThresholds(
        languages=args.max_js, confidence=args.max_psi, rates=args.max_rate
    )
    drift = job_drift(args.job, args.reference, db=args.db, out=args.out, thresholds=thresholds)
    print(drift)
    return 1 if drift else 0


def _jobs(args: argparse.Namespace) -> int:
    from lidframe.job import jobs_table

    print(jobs_table(db=args.db, out=args.out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lidframe`` command; returns the exit status (see ``EXIT_STATUSES``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    at = 1 if argv[:1] == ["--debug"] else 0
    if argv[at : at + 2] == ["eval", "compare"]:  # `lidframe eval compare A B`
        argv[at : at + 2] = ["compare"]
    if argv[at : at + 1] == ["review"]:  # `lidframe review RESULTS`: the page
        argv = review_argv(argv, at)
    args = build_parser().parse_args(argv)
    _configure_logging(args.debug)
    try:
        with interrupts_that_stick():
            status = _dispatch(args)
            raise_pending()  # an interrupt whose exception Python lost (see lidframe.job)
            return status
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
    except BrokenPipeError:
        # Whoever read the output stopped early (`lidframe models | head`): not an error. Point
        # stdout at /dev/null so that flushing it at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
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
    if args.command == "env":
        from lidframe.environment import fingerprint

        found = fingerprint()
        print(json.dumps(found.record(), indent=2) if args.json else found.text())
        return 0
    commands = {
        "calibrate": _calibrate,
        "eval": _eval,
        "compare": _compare,
        "report": _report,
        "status": _status,
        "jobs": _jobs,
        "watch": _watch,
        "drift": _drift,
        "run": _run,
        "check": _check,
        "review": _review,
    }
    return commands[args.command](args)


def _run(args: argparse.Namespace) -> int:
    from lidframe.job import RunConfig, run

    summary = run(args.manifest, args.out, **settings_from(args, RunConfig))
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


def _check(args: argparse.Namespace) -> int:
    """``lidframe check``: the half-precision check a job runs, alone; 1 when a model fails it."""
    from lidframe.job import RunConfig, check_precision
    from lidframe.kernel import KernelConfig, check_fidelity_settings, fidelity_lines

    given = settings_from(args, RunConfig, CHECK_SETTINGS)
    clips, threshold = given.pop("fidelity_clips"), given.pop("fidelity_threshold")
    check_fidelity_settings(clips, threshold)
    kernel = KernelConfig.for_models(given.pop("models"), **given)
    dtypes, report = check_precision(args.manifest, kernel, clips, threshold)
    if report is None:
        print(f"nothing to check: the models run in float32 here ({', '.join(dtypes.values())})")
        return 0
    print("\n".join(fidelity_lines(report.record())))
    return 0 if report.passed else 1


def _review(args: argparse.Namespace) -> int:
    """``lidframe review SUBCOMMAND RESULTS``: one call of :mod:`lidframe.review` each."""
    from lidframe.review import Reviews, export_reviews, import_label_studio, serve

    if args.review_command == "serve":
        server = serve(
            args.results,
            reviewer=args.reviewer,
            queue=args.queue,
            host=args.host,
            port=args.port,
            db=args.db,
            job=args.job,
            storage_options=parse_storage_options(args.storage_options),
            lease_s=args.lease_seconds,
        )
        server.wait()
        return 0
    with Reviews.for_results(args.results, db=args.db, job=args.job) as reviews:
        if args.review_command == "status":
            print(reviews.status(args.confidence))
        elif args.review_command == "export":
            path, n = export_reviews(reviews, args.out, args.format)
            print(f"wrote {n} {'tasks' if args.format == 'label-studio' else 'rows'} to {path}")
        elif args.review_command == "import":
            n = import_label_studio(reviews, args.file)
            print(f"stored {n} answers from {args.file} in job {reviews.job_id}")
        else:
            added = reviews.build(
                args.queue,
                name=args.name,
                limit=args.limit,
                second_share=args.second_share,
                seed=args.seed,
                language=args.language,
                max_margin=args.max_margin,
                band=args.band,
            )
            print(f"{added} rows added to a {args.queue} queue of job {reviews.job_id}")
    return 0


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


def _calibrate(args: argparse.Namespace) -> int:
    from lidframe.eval import calibrate_results

    fitted = calibrate_results(
        args.results,
        args.out,
        models=args.models,
        policy=args.policy,
        storage_options=parse_storage_options(args.storage_options),
        folds=args.folds,
        final=None if args.final == "none" else args.final,
    )
    print(fitted.describe(args.out))
    return 0
