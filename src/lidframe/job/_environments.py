"""One environment per job: the fingerprint a job runs with, and each worker's checked against it.

Before any work (:func:`settle_reference`), the driver registers
:class:`~lidframe.environment.EnvironmentPlugin` on the cluster (each worker, and every worker that
joins later, reads its fingerprint when it joins) and reads the fingerprints of the workers there.
The job's environment is the one it recorded when it started, else the one most of the workers
share (a tie goes to the environment of the process running the job, then to the lower digest):
the half-precision check and the loading of the models run on workers that have it (two, where
there are two: both are warm when the partitions start), and the fingerprint of the worker that
loaded the models, with the weights digests of the models it loaded, is what the job records.

While the job works, :class:`Environments` checks every worker the driver has not seen yet, once
per pass of its loop. A worker that differs in what can change an answer
(:mod:`lidframe.environment`'s rule) is *refused*: the driver leaves it out of the workers its
tasks may run on, as it does a quarantined one (``workers=`` restrictions, the mechanism of
:mod:`lidframe.job._watch`), and names it in one line: a warning, a Dask event on
:data:`~lidframe.environment.TOPIC`, and a row of the job database that ``lidframe status`` shows.
``allow_mixed_environments`` lets such workers work, named all the same. A difference that cannot
change an answer (another installed distribution) is only recorded.

A worker that joins between two passes could be given a partition before it is checked; and the
models' weights are known only once a worker has loaded them. So each partition task checks its
own worker too (:mod:`lidframe.job._worker`): it computes nothing when the environment differs,
and stages nothing when the weights do, raising
:class:`~lidframe.errors.EnvironmentMismatch`; the driver then refuses that worker and hands the
partition back without counting an attempt.

For the fleet check (issue 25): :meth:`Environments.difference` gives a worker's difference as
the phrase a one-line warning adds (``soxr 1.0.0 != 1.1.0 of the job``), from the driver's
memory; ``store.workers(job)`` has it as ``difference`` for a process reading the database.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lidframe.environment import (
    TOPIC,
    EnvironmentPlugin,
    Fingerprint,
    describe,
    differences,
    fingerprint,
    worker_fingerprint,
    worker_line,
)
from lidframe.errors import ConfigError

if TYPE_CHECKING:
    from lidframe.kernel import KernelConfig
    from lidframe.store import JobStore

__all__ = [
    "Environments",
    "accelerator_counts",
    "answer_differences",
    "environment_lines",
    "fetch_fingerprints",
    "job_fingerprint",
    "settle_reference",
]

log = logging.getLogger("lidframe")

_ALLOW = "--allow-mixed-environments"


def accelerator_counts(kernel: KernelConfig) -> bool:
    """Whether the GPU and CUDA libraries can change the job's answers: not when every model runs
    on the CPU (``device="cpu"``)."""
    return any(spec.device != "cpu" for spec in kernel.models)


def answer_differences(theirs: Fingerprint, ours: Fingerprint, *, accelerator: bool) -> list[Any]:
    """The differences of ``theirs`` from ``ours`` that can change an answer."""
    return [d for d in differences(theirs, ours, accelerator=accelerator) if d.changes_answers]


def fetch_fingerprints(client: Any, workers: Iterable[str]) -> dict[str, Fingerprint]:
    """The fingerprints of ``workers`` (their plugin's, read when they joined); a worker that
    cannot answer (gone meanwhile) is left out."""
    wanted = list(workers)
    if not wanted:
        return {}
    answers = client.run(worker_fingerprint, workers=wanted, on_error="return")
    found = {}
    for worker, record in answers.items():
        parsed = Fingerprint.from_record(record) if isinstance(record, dict) else None
        if parsed is not None:
            found[worker] = parsed
    return found


def settle_reference(
    client: Any,
    recorded: Fingerprint | None,
    *,
    job_id: str,
    allow_mixed: bool,
    accelerator: bool,
) -> tuple[Fingerprint, list[str]]:
    """The environment the job runs in (without models: the weights come with the models'
    loading) and the workers that have it, sorted (none: any worker may load the models).

    Registers :class:`EnvironmentPlugin` on the cluster first. ``recorded``: the job's, when it
    started before. Raises :class:`ConfigError` in one line when no worker has the recorded
    environment and mixed environments are not allowed.
    """
    client.register_plugin(EnvironmentPlugin(), name=EnvironmentPlugin.name)
    client.wait_for_workers(1)
    found = fetch_fingerprints(client, client.nthreads())
    if recorded is not None:
        reference = recorded
    else:
        reference = _majority(found, fingerprint(), accelerator) or fingerprint()
    matching = sorted(
        w
        for w, fp in found.items()
        if not answer_differences(fp, reference, accelerator=accelerator)
    )
    if matching or allow_mixed or not found:
        return reference, matching
    worker, theirs = sorted(found.items())[0]
    what = describe(answer_differences(theirs, reference, accelerator=accelerator))
    raise ConfigError(
        f"no worker has the environment job {job_id} started with (worker {worker}: {what}); "
        f"run it on workers with that environment, or pass {_ALLOW} to let other environments "
        "add to its results"
    )


def _majority(
    found: Mapping[str, Fingerprint], own: Fingerprint, accelerator: bool
) -> Fingerprint | None:
    """The fingerprint most workers share (see the module docstring for a tie)."""
    if not found:
        return None

    def key(fp: Fingerprint) -> str:
        return fp.digest if accelerator else replace(fp, accelerator=None).digest

    counts = Counter(key(fp) for fp in found.values())
    best = max(counts.values())
    tied = sorted(k for k, n in counts.items() if n == best)
    chosen = key(own) if key(own) in tied else tied[0]
    return next(fp for _, fp in sorted(found.items()) if key(fp) == chosen)


def job_fingerprint(
    loaded: Fingerprint,
    recorded: Fingerprint | None,
    *,
    job_id: str,
    allow_mixed: bool,
    accelerator: bool,
) -> Fingerprint:
    """The job's fingerprint once the models are loaded (``loaded``: the worker's that loaded
    them, with their weights digests): the recorded one, with the weights of models it lacks; or,
    for a new job or one made before environments were fingerprinted, ``loaded``. Raises
    :class:`ConfigError` when the weights differ from those the job started with."""
    if recorded is None:
        return loaded
    found = answer_differences(loaded, recorded, accelerator=accelerator)
    if found and not allow_mixed:
        raise ConfigError(
            f"the models loaded now differ from those job {job_id} started with: "
            f"{describe(found)}; load the same weights, or pass {_ALLOW}"
        )
    models = {**loaded.models, **{a: d for a, d in recorded.models.items() if d is not None}}
    return recorded.with_models(models)


class Environments:
    """The job's environment and the workers checked against it (see the module docstring)."""

    def __init__(
        self,
        store: JobStore,
        job_id: str,
        reference: Fingerprint,
        *,
        allow_mixed: bool = False,
        accelerator: bool = True,
    ) -> None:
        self.store, self.job_id, self.reference = store, job_id, reference
        self.allow_mixed, self.accelerator = allow_mixed, accelerator
        self.seen: dict[str, str] = {}  # worker -> its verdict
        self.refused: set[str] = set()
        self._differences: dict[str, str] = {}  # worker -> what differs (a phrase)

    def check(self, client: Any, workers: Iterable[str]) -> None:
        """Check the workers of ``workers`` not seen yet."""
        new = [w for w in workers if w not in self.seen]
        if not new:
            return
        for worker, theirs in fetch_fingerprints(client, new).items():
            self.judge(client, worker, theirs)

    def judge(self, client: Any, worker: str, theirs: Fingerprint) -> str:
        """Compare ``worker``'s fingerprint with the job's; record, name and (unless mixed
        environments are allowed) refuse it. Returns its verdict."""
        found = differences(theirs, self.reference, accelerator=self.accelerator)
        answers = [d for d in found if d.changes_answers]
        if not found:
            verdict = "same"
        elif answers:
            verdict = "allowed" if self.allow_mixed else "refused"
        else:
            verdict = "reported"
        line = worker_line(worker, theirs.host, found, allowed=self.allow_mixed)
        self._record(client, worker, theirs.host, verdict, describe(answers or found), line,
                     theirs.record() if found else None, environment=theirs.digest)  # fmt: skip
        return verdict

    def describe_worker(self, worker: str | None) -> str | None:
        """``worker``'s environment in a phrase for a warning about it: what differs from the job's
        (``soxr 1.0.0 != 1.1.0 of the job``), or ``the job's (DIGEST)``; None when not checked."""
        if worker is None or worker not in self.seen:
            return None
        return self._differences.get(worker) or f"the job's ({self.reference.digest})"

    def refuse(self, client: Any, worker: str | None, host: str | None, difference: str) -> None:
        """A partition task found ``worker``'s environment differs (``difference``, a phrase):
        it gets no more partitions."""
        if worker is None or worker in self.refused:
            return
        found = fetch_fingerprints(client, [worker]).get(worker)
        record = None if found is None else found.record()
        environment = "?" if found is None else found.digest
        line = (
            f"worker {worker} (host {host or '?'}): {difference}; no partitions ({_ALLOW} to allow)"
        )
        self._record(client, worker, host, "refused", difference, line, record, environment)

    def _record(
        self,
        client: Any,
        worker: str,
        host: str | None,
        verdict: str,
        difference: str,
        line: str | None,
        record: Mapping[str, Any] | None,
        environment: str,
    ) -> None:
        self.seen[worker] = verdict
        if verdict != "same":
            self._differences[worker] = difference
        if verdict == "refused":
            self.refused.add(worker)
        self.store.record_worker(
            self.job_id,
            worker,
            host=host,
            environment=environment,
            verdict=verdict,
            difference=difference or None,
            line=line,
            fingerprint=record,
        )
        if verdict in ("refused", "allowed"):
            log.warning("%s", line)
            with contextlib.suppress(Exception):  # an event is a courtesy, never a failure
                client.log_event(TOPIC, {"job": self.job_id, "worker": worker, "host": host,
                                         "verdict": verdict, "difference": difference})  # fmt: skip
        elif verdict == "reported":
            log.info("%s", line)

    def difference(self, worker: str) -> str | None:
        """How ``worker``'s environment differs from the job's, as a phrase (``soxr 1.0.0 !=
        1.1.0 of the job``); None when it does not, or it was not checked."""
        return self._differences.get(worker)


def environment_lines(
    store: JobStore, job_id: str, recorded: Mapping[str, Any] | None
) -> list[str]:
    """What ``lidframe status`` says of a job's environments (``recorded``: the job's): its
    digest and how many workers had it, then one line per worker that differs (none for a job made
    before environments were fingerprinted)."""
    reference = Fingerprint.from_record(recorded)
    if reference is None:
        return []
    rows = store.workers(job_id)
    counts = Counter(r["verdict"] for r in rows)
    said = [f"{counts[v]} {v}" for v in ("same", "refused", "allowed", "reported") if counts[v]]
    lines = [
        f"  environment {reference.digest}: {len(rows)} worker(s) checked"
        + (f" ({', '.join(said)})" if said else "")
    ]
    lines += [f"  {r['line']}" for r in rows if r["verdict"] != "same" and r["line"]]
    return lines
