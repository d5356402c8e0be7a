"""lidframe inside a pipeline of your own: add language columns to your Dask dataframe, by key.

Your frame has whatever columns your pipeline keeps (``speaker``, ``episode``, a transcript, ...)
and one that points at the audio. Only the key and the audio (and, if named, the clip's offset and
duration) go through :func:`lidframe.identify`; its answers are joined back onto your frame by the
key, so the other columns never travel through the decoders and come back exactly as they were.
Every row of your frame comes back once, a row whose audio could not be used with its ``error``
(``not_found: ...``) and a null language.

The key must be unique (a join by a duplicated key repeats rows, as any join does).

As a module::

    import dask.dataframe as dd
    from add_languages import add_languages

    episodes = dd.read_parquet("episodes.parquet")      # clip_id, path, speaker, episode, ...
    enriched = add_languages(episodes, key="clip_id", audio="path", models=["whisper-base"])
    enriched.to_parquet("episodes-with-languages/")

As a command (reads Parquet, CSV or JSON Lines, writes a Parquet folder)::

    python examples/pipeline/add_languages.py episodes.parquet episodes-with-languages \\
        --key clip_id --audio path --models whisper-base
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import dask.dataframe as dd

import lidframe
from lidframe.models import column_alias

__all__ = ["add_languages", "main"]

# Of each model's columns, the ones joined back: its answer and that answer's probability (the
# top-k list and per-window answers stay out unless asked for).
MODEL_COLUMNS = ("lang", "prob")
# Of the row's columns: why a row has no answer, and how much speech it held.
ROW_COLUMNS = ("error", "speech_seconds")


def add_languages(
    frame: dd.DataFrame,
    *,
    key: str = "id",
    audio: str = "audio",
    offset: str | None = None,
    duration: str | None = None,
    models: Sequence[str] = ("whisper-base",),
    model_columns: Sequence[str] = MODEL_COLUMNS,
    row_columns: Sequence[str] = ROW_COLUMNS,
    **identify_options: Any,
) -> dd.DataFrame:
    """``frame`` with ``row_columns`` and each model's ``{alias}_{column}`` added (lazy).

    ``audio`` names the column holding each clip's path or URI (absolute, or a URL: relative paths
    would resolve against the workers' working folder); ``offset`` and ``duration``, when given,
    the columns holding the clip's window in seconds. ``identify_options`` go to
    :func:`lidframe.identify` (``batch_size``, ``speech``, ``storage_options``, ``device``, ...).
    """
    models = [models] if isinstance(models, str) else list(models)
    aliases = [column_alias(m) for m in models]
    added = [*row_columns, *(f"{a}_{c}" for a in aliases for c in model_columns)]
    clash = sorted(set(added) & set(frame.columns))
    if clash:
        raise ValueError(f"the frame already has columns {clash}: rename them first")
    clips = frame[[key]].assign(audio=frame[audio])
    for name, column in (("offset", offset), ("duration", duration)):
        if column is not None:
            clips = clips.assign(**{name: frame[column].astype("float64")})
    found = lidframe.identify(clips, models, **identify_options)
    return frame.merge(found[[key, *added]], on=key, how="left")


def _read(path: str) -> dd.DataFrame:
    if path.endswith((".csv", ".tsv")):
        return dd.read_csv(path, sep="\t" if path.endswith(".tsv") else ",", dtype=str)
    if path.endswith((".jsonl", ".json")):
        return dd.read_json(path, lines=True)
    return dd.read_parquet(path)


def main(argv: Sequence[str] | None = None) -> int:
    """``add_languages.py INPUT OUTPUT [--key K] [--audio A] [--models M,...]``; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", help="Parquet file or folder, CSV/TSV or JSON Lines")
    parser.add_argument("output", help="Parquet folder to write")
    parser.add_argument("--key", default="id", help="the unique column to join on (id)")
    parser.add_argument("--audio", default="audio", help="the column of audio paths (audio)")
    parser.add_argument("--models", default="whisper-base", help="comma-separated model names")
    parser.add_argument("--partition-rows", type=int, default=None, help="repartition first")
    args = parser.parse_args(argv)
    frame = _read(args.input)
    if args.partition_rows:
        frame = frame.repartition(npartitions=max(1, -(-len(frame) // args.partition_rows)))
    enriched = add_languages(
        frame, key=args.key, audio=args.audio, models=args.models.split(","), verbose=False
    )
    enriched.to_parquet(args.output, write_index=False)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
