"""Reviewed labels out of the job database, and Label Studio's JSON in and out.

* :func:`reviewed_manifest`: one row per reviewed row (its label chosen by
  :func:`~lidframe.review.row_labels`): ``id``, ``audio``, ``offset`` and ``duration`` (when the
  results have them), ``label``, ``reviewer``, ``reviewed_at`` (UTC, ISO 8601) and ``queue``; a
  labels manifest for ``lidframe eval --labels``.
* :func:`export_reviews`: that manifest as CSV or Parquet (by the file's suffix), or Label Studio
  tasks (``format="label-studio"``).
* Label Studio (its documented JSON task format: ``data``, ``annotations`` with ``result`` items of
  type ``choices``, ``completed_by``, ``predictions``): one task per row of the queues and per
  reviewed row, ``data`` holding ``audio``, ``id`` (the manifest id), ``row``, ``queue`` and
  ``offset``/``duration``; the job's answer as a prediction; each answer as an annotation whose
  choice is the language code (``und``: no speech; ``unsure``) and whose ``completed_by`` is
  ``{"email": reviewer}``. A labelling configuration that matches:
  ``<View><Audio name="audio" value="$audio"/><Choices name="language" toName="audio">...``
  with one ``<Choice value="CODE"/>`` per language.
* :func:`import_label_studio`: a Label Studio export (a JSON list of tasks with annotations) back
  in as answers: the row by ``data.id``, the queue by ``data.queue`` (else ``label-studio``), the
  reviewer from the annotation's ``completed_by`` (an object's email, else its id; a number as
  ``label-studio-user-N``), the time from ``created_at``. Cancelled annotations (skips) are left
  out, and an annotation equal to a stored answer (same row, reviewer and label: one this module
  exported) is not stored twice.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lidframe.errors import ConfigError
from lidframe.languages import label_code
from lidframe.review._agreement import row_labels

if TYPE_CHECKING:
    from lidframe.review._session import Reviews

__all__ = [
    "FORMATS",
    "export_reviews",
    "import_label_studio",
    "label_studio_tasks",
    "reviewed_manifest",
]

FORMATS = ("manifest", "label-studio")
# Label Studio names: the <Choices name> and <Audio name> of the configuration above.
_FROM, _TO = "language", "audio"
_UNSURE = "unsure"
_IMPORTED_QUEUE = "label-studio"


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(float(epoch), tz=dt.UTC).isoformat()


def reviewed_manifest(reviews: Reviews) -> pd.DataFrame:
    """The reviewed labels as a labels manifest (see the module docstring)."""
    chosen = row_labels(reviews.store.answers(reviews.job_id))
    rows = [chosen[r] for r in sorted(chosen)]
    frame = pd.DataFrame(
        {
            "id": pd.array([str(a["row_id"]) for a in rows], dtype="string"),
            "audio": pd.array([a["audio"] for a in rows], dtype="string"),
            "offset": pd.array([a["offset"] for a in rows], dtype="float64"),
            "duration": pd.array([a["duration"] for a in rows], dtype="float64"),
            "label": pd.array([str(a["label"]) for a in rows], dtype="string"),
            "reviewer": pd.array([str(a["reviewer"]) for a in rows], dtype="string"),
            "reviewed_at": pd.array([_iso(a["answered_at"]) for a in rows], dtype="string"),
            "queue": pd.array([str(a["queue"]) for a in rows], dtype="string"),
        }
    )
    for column in ("offset", "duration"):
        if frame[column].isna().all():
            frame = frame.drop(columns=column)
    return frame


def export_reviews(
    reviews: Reviews, out: str | os.PathLike[str], format: str = "manifest"
) -> tuple[str, int]:
    """Write the reviews to ``out``: a labels manifest (CSV or Parquet by suffix) or Label Studio
    tasks (JSON); returns the path and how many rows (tasks) it holds."""
    path = Path(out)
    if format == "manifest":
        frame = reviewed_manifest(reviews)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        elif suffix == ".parquet":
            frame.to_parquet(path, index=False)
        else:
            raise ConfigError(
                f"--out {out}: a reviewed manifest is written as .csv or .parquet "
                "(or give --format label-studio for JSON)"
            )
        return str(path), len(frame)
    if format == "label-studio":
        tasks = label_studio_tasks(reviews)
        path.write_text(json.dumps(tasks, indent=1, ensure_ascii=False), encoding="utf-8")
        return str(path), len(tasks)
    raise ConfigError(f"--format {format!r}: choose one of {', '.join(FORMATS)}")


def _choice(value: str) -> dict[str, Any]:
    return {"from_name": _FROM, "to_name": _TO, "type": "choices", "value": {"choices": [value]}}


def label_studio_tasks(reviews: Reviews) -> list[dict[str, Any]]:
    """The queues' rows and the reviewed rows as Label Studio tasks (see the module docstring)."""
    store, job_id = reviews.store, reviews.job_id
    tasks: dict[int, dict[str, Any]] = {}

    def task(row: int, item: Mapping[str, Any]) -> dict[str, Any]:
        if row not in tasks:
            data: dict[str, Any] = {
                "audio": item["audio"],
                "id": str(item["row_id"]),
                "row": row,
                "queue": item["queue"],
            }
            for key in ("offset", "duration"):
                if item[key] is not None and item[key] == item[key]:
                    data[key] = float(item[key])
            tasks[row] = {"data": data, "annotations": [], "predictions": []}
            if item.get("stratum") is not None:
                tasks[row]["predictions"].append(
                    {
                        "model_version": "lidframe " + ", ".join(map(str, reviews.job["models"])),
                        "result": [_choice(str(item["stratum"]))],
                    }
                )
        return tasks[row]

    for item in store.items(job_id):
        task(int(item["row"]), item)
    for a in store.answers(job_id):
        if a["verdict"] not in ("label", "no_speech", "unsure"):
            continue
        choice = _UNSURE if a["verdict"] == "unsure" else str(a["label"])
        task(int(a["row"]), a)["annotations"].append(
            {
                "result": [_choice(choice)],
                "completed_by": {"email": str(a["reviewer"])},
                "created_at": _iso(a["answered_at"]),
                "was_cancelled": False,
                "lidframe": {"answer_id": int(a["answer_id"]), "queue": a["queue"]},
            }
        )
    return [tasks[row] for row in sorted(tasks)]


def import_label_studio(reviews: Reviews, path: str | os.PathLike[str]) -> int:
    """Store the annotations of a Label Studio JSON export as answers; returns how many were new
    (see the module docstring)."""
    from lidframe.review._session import check_reviewer, lidframe_version, stored_verdict

    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise ConfigError(f"{path}: expected a JSON list of Label Studio tasks")
    stored = {
        (str(a["row_id"]), str(a["reviewer"]), str(a["verdict"]), a["label"])
        for a in reviews.store.answers(reviews.job_id)
    }
    version = lidframe_version()
    new: list[dict[str, Any]] = []
    for n, t in enumerate(tasks, 1):
        data = t.get("data") if isinstance(t, dict) else None
        if not isinstance(data, dict) or data.get("id") in (None, ""):
            raise ConfigError(
                f"{path}: task {n} has no data.id (the manifest id of its row; tasks exported by "
                "`lidframe review export --format label-studio` have it)"
            )
        for annotation in t.get("annotations") or []:
            if annotation.get("was_cancelled"):
                continue
            choice = _read_choice(annotation.get("result") or [], path, n)
            if choice is None:
                continue
            reviewer = check_reviewer(_completed_by(annotation.get("completed_by"), path, n))
            where = f"{path}: task {n}"
            if choice.strip().lower() == _UNSURE:
                verdict, label = stored_verdict("unsure", None, n)
            else:
                try:
                    code = label_code(choice)
                except ConfigError as exc:
                    raise ConfigError(f"{where}: {exc}") from exc
                verdict, label = stored_verdict("label", code, n)
            key = (str(data["id"]), reviewer, verdict, label)
            if key in stored:
                continue
            stored.add(key)
            new.append(
                {
                    "row_id": str(data["id"]),
                    "queue": str(data.get("queue") or _IMPORTED_QUEUE),
                    "reviewer": reviewer,
                    "answered_at": _epoch(annotation.get("created_at")),
                    "verdict": verdict,
                    "label": label,
                    "shown": {
                        "label_studio": {"task": t.get("id"), "annotation": annotation.get("id")}
                    },
                    "lidframe_version": version,
                }
            )
    if not new:
        return 0
    return reviews.store.import_answers(reviews.job_id, new)


def _read_choice(result: Sequence[Any], path: Any, n: int) -> str | None:
    for r in result:
        if isinstance(r, dict) and r.get("type") == "choices":
            choices = (r.get("value") or {}).get("choices") or []
            if len(choices) != 1:
                raise ConfigError(f"{path}: task {n}: expected one choice, got {choices!r}")
            return str(choices[0])
    return None


def _completed_by(value: Any, path: Any, n: int) -> str:
    if isinstance(value, dict):
        value = value.get("email") or value.get("username") or value.get("id")
    if isinstance(value, bool) or value in (None, ""):
        raise ConfigError(f"{path}: task {n}: an annotation without completed_by (the reviewer)")
    if isinstance(value, int):
        return f"label-studio-user-{value}"
    return str(value)


def _epoch(value: Any) -> float | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()
