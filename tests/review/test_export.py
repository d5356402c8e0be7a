"""Reviewed labels out (a manifest `lidframe eval --labels` reads, Label Studio JSON) and back in,
and the ``lidframe review`` commands: exit statuses and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lidframe.cli import main
from lidframe.review import Reviews, export_reviews, import_label_studio, reviewed_manifest
from tests.review.jobs import make_job

JOB = "job-review"


def _review_some(reviews: Reviews, frame: pd.DataFrame, n: int = 30) -> dict[str, str]:
    labels = {}
    for i in range(n):
        item = reviews.next("alice" if i % 2 else "bob")
        if item is None:
            break
        reviewer = "alice" if i % 2 else "bob"
        if i % 7 == 3:
            reviews.answer(reviewer, item.row, "unsure")
            continue
        label = str(frame.loc[item.row, "lang"]) if i % 3 else "de"
        verdict = "no_speech" if label == "und" else "label"
        reviews.answer(reviewer, item.row, verdict, None if verdict == "no_speech" else label)
        labels[item.id] = label
    return labels


def test_the_exported_manifest_scores_with_eval_labels(tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    frame = make_job(f"sqlite:///{out}/_lidframe.sqlite", n=200, out=str(out))
    frame.drop(columns=[c for c in frame.columns if c.endswith("_windows")]).to_parquet(
        out / "part-00000.parquet", index=False
    )
    with Reviews.for_results(out) as reviews:
        reviews.build("random", limit=60, second_share=0)
        labels = _review_some(reviews, frame)
    assert main(["review", "export", str(out), "--out", str(tmp_path / "reviewed.csv")]) == 0
    manifest = pd.read_csv(tmp_path / "reviewed.csv")
    assert list(manifest.columns) == [
        "id", "audio", "offset", "duration", "label", "reviewer", "reviewed_at", "queue",
    ]  # fmt: skip
    assert dict(zip(manifest["id"], manifest["label"], strict=True)) == labels
    assert set(manifest["queue"]) == {"random"}
    assert main(["review", "export", str(out), "--out", str(tmp_path / "reviewed.parquet")]) == 0
    assert (
        pd.read_parquet(tmp_path / "reviewed.parquet")["label"].tolist()
        == manifest["label"].tolist()
    )
    capsys.readouterr()
    code = main(["eval", str(out), "--labels", str(tmp_path / "reviewed.csv"), "--no-save"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "accuracy" in printed.lower()


def test_label_studio_round_trip(tmp_path):
    frame = make_job(f"sqlite:///{tmp_path}/a.sqlite", n=200)
    with Reviews(f"sqlite:///{tmp_path}/a.sqlite", JOB) as reviews:
        reviews.build("random", limit=40, second_share=0)
        _review_some(reviews, frame)
        path, tasks = export_reviews(reviews, tmp_path / "ls.json", "label-studio")
        before = reviewed_manifest(reviews)
        answers = reviews.store.answers(JOB)
        # importing its own export again stores nothing twice
        assert import_label_studio(reviews, path) == 0
    exported = json.loads(Path(path).read_text())
    assert len(exported) == tasks >= 40
    annotated = [t for t in exported if t["annotations"]]
    assert len(annotated) == len({a["row"] for a in answers})
    first = annotated[0]
    assert set(first["data"]) >= {"audio", "id", "row", "queue"}
    (result,) = first["annotations"][0]["result"]
    assert result["type"] == "choices" and len(result["value"]["choices"]) == 1
    assert first["predictions"][0]["result"][0]["value"]["choices"]

    replaced = len(exported[0]["annotations"])
    # Label Studio's own exports: completed_by as a user id or an object; a cancelled annotation
    exported[0]["annotations"] = [
        {"result": [_choice("FR")], "completed_by": 7, "created_at": "2026-01-02T03:04:05Z"},
        {"result": [_choice("en")], "completed_by": {"email": "c@x.org"}, "was_cancelled": True},
    ]
    Path(path).write_text(json.dumps(exported))
    make_job(f"sqlite:///{tmp_path}/b.sqlite", n=200)  # the same job in another database
    with Reviews(f"sqlite:///{tmp_path}/b.sqlite", JOB) as fresh:
        stored = import_label_studio(fresh, path)
        after = reviewed_manifest(fresh)
        imported = fresh.store.answers(JOB)
    assert stored == len(answers) - replaced + 1
    rest = before[before["id"] != exported[0]["data"]["id"]]
    mine = after[after["id"] != exported[0]["data"]["id"]]
    cols = ["id", "label", "reviewer", "queue"]
    assert mine[cols].reset_index(drop=True).equals(rest[cols].reset_index(drop=True))
    (one,) = [a for a in imported if a["row_id"] == exported[0]["data"]["id"]]
    assert (one["reviewer"], one["label"]) == ("label-studio-user-7", "fr")
    assert one["answered_at"] == pd.Timestamp("2026-01-02T03:04:05Z").timestamp()


def _main(argv):
    """The command's exit status, usage errors (argparse's SystemExit) included."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _choice(value):
    return {"from_name": "language", "to_name": "audio", "type": "choices",
            "value": {"choices": [value]}}  # fmt: skip


def test_review_commands_exit_statuses_and_one_line_errors(tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    make_job(f"sqlite:///{out}/_lidframe.sqlite", n=200, out=str(out))
    assert main(["review", "queue", str(out), "--queue", "random", "--limit", "20"]) == 0
    assert "rows added to a random queue" in capsys.readouterr().out
    assert main(["review", "queue", str(out), "--queue", "language", "--language", "es"]) == 0
    assert main(["review", "status", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "queue random (random): 0/" in printed and "queue language-es" in printed
    cases = [
        (["review", "queue", str(out), "--queue", "language"], 2, "needs --language"),
        (["review", "queue", str(out), "--queue", "random", "--band", "1"], 2, "does not take"),
        (["review", "queue", str(out), "--queue", "nope"], 2, "invalid choice"),
        (["review", "status", str(tmp_path)], 2, "no job database in"),
        (["review", "status", str(out), "--job", "other"], 2, "no job 'other'"),
        (["review", "export", str(out), "--out", str(tmp_path / "x.txt")], 2, ".csv or .parquet"),
        (["review", "import", str(out), str(tmp_path / "missing.json")], 2, "cannot read it"),
    ]
    for argv, status, message in cases:
        assert _main(argv) == status, argv
        err = capsys.readouterr().err
        assert err.startswith("lidframe: error: ") and message in err, (argv, err)
        assert err.count("\n") == 1, err
    bad = tmp_path / "bad.json"
    bad.write_text('[{"data": {"audio": "a.wav"}, "annotations": []}]')
    assert main(["review", "import", str(out), str(bad)]) == 2
    assert "task 1 has no data.id" in capsys.readouterr().err
    # the page (`lidframe review RESULTS`): a queue the job does not have is refused before serving
    assert _main(["review", str(out), "--queue", "nope"]) == 2
    assert "no review queue 'nope'" in capsys.readouterr().err
