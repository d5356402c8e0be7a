"""Read and validate audio manifests into Dask dataframes with stable ids and exact partitions.

A manifest is CSV, Parquet or JSON Lines, local or on any fsspec store (``s3://`` through s3fs),
with one row per clip:

============  =========================================================================
``audio``     required: a path or URI; relative paths resolve against the manifest's folder
``id``        optional: a unique row id; when absent a stable one is derived (see below)
``label``     optional: ground-truth language, normalised to a canonical code
``offset``    optional: start of the clip inside the file, in seconds
``duration``  optional: length of the clip, in seconds
============  =========================================================================

Why the partitions are built by hand: jobs record state per partition and must find the same
partitions again after a crash, so partition ``k`` is always rows ``[k*R, (k+1)*R)`` of the manifest
in file order, whatever the reader's block size or the number of workers. Reading costs one eager
pass over the manifest (row counts and validation, never audio); every input block is read once more
when the dataframe is computed, and split into its output partitions in the same task.

Why the derived id looks the way it does: it is a hash of the audio reference *as written in the
manifest*, the offset and the duration, so it stays the same when a dataset moves with its manifest
and when a run is repeated or resumed.
"""

from __future__ import annotations

import hashlib
import math
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.dataframe as dd
import fsspec
import numpy as np
import pandas as pd
from dask.delayed import Delayed, delayed

from lidframe.errors import ConfigError, ManifestError
from lidframe.languages import canonical

__all__ = [
    "MANIFEST_COLUMNS",
    "ManifestPlan",
    "check_unique_ids",
    "derive_id",
    "manifest_meta",
    "plan_manifest",
    "read_manifest",
]

MANIFEST_COLUMNS = ("id", "audio", "label", "offset", "duration")
_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def derive_id(audio: str, offset: float | None, duration: float | None) -> str:
    """Stable row id from the audio reference as written, the offset and the duration."""

    def num(x: float | None) -> str:
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else repr(float(x))

    key = f"{audio}\x1f{num(offset)}\x1f{num(duration)}".encode()
    return hashlib.blake2b(key, digest_size=12).hexdigest()


def manifest_meta(with_label: bool) -> pd.DataFrame:
    """Empty frame with the dtypes of a read manifest (the ``meta`` of its dataframe)."""
    cols: dict[str, pd.Series] = {
        "id": pd.Series(dtype="string"),
        "audio": pd.Series(dtype="string"),
    }
    if with_label:
        cols["label"] = pd.Series(dtype="string")
    cols["offset"] = pd.Series(dtype="float64")
    cols["duration"] = pd.Series(dtype="float64")
    return pd.DataFrame(cols)


@dataclass(frozen=True)
class ManifestPlan:
    """A validated manifest as input blocks and exact partitions, before any dataframe exists.

    ``blocks[i]`` reads and normalises input block ``i`` (a :class:`~dask.delayed.Delayed`);
    partition ``k`` is rows ``[k*R, (k+1)*R)``, assembled from the ``(block, lo, hi)`` slices in
    ``pieces[k]`` by :func:`assemble_partition`. ``digest`` hashes every row as read, so it changes
    when the manifest's content changes and not when the file is merely touched or copied.
    """

    url: str
    rows: int
    partition_rows: int
    with_label: bool
    blocks: tuple[Delayed, ...]
    pieces: tuple[tuple[tuple[int, int, int], ...], ...]
    digest: str

    @property
    def npartitions(self) -> int:
        return len(self.pieces)

    def meta(self) -> pd.DataFrame:
        return manifest_meta(self.with_label)

    def partition(self, k: int) -> Delayed:
        """Partition ``k`` as a lazy pandas frame indexed by global row number."""
        pieces = self.pieces[k]
        return delayed(assemble_partition)(
            [self.blocks[b] for b, _, _ in pieces],
            [(lo, hi) for _, lo, hi in pieces],
            k * self.partition_rows,
        )

    def to_dataframe(self) -> dd.DataFrame:
        parts = [self.partition(k) for k in range(self.npartitions)]
        return dd.from_delayed(parts, meta=self.meta(), verify_meta=False)


def plan_manifest(
    path: str | os.PathLike[str],
    *,
    partition_rows: int = 128,
    storage_options: Mapping[str, Any] | None = None,
    format: str | None = None,
) -> ManifestPlan:
    """Validate every row of ``path`` (one eager pass, never audio) and plan its partitions.

    Raises :class:`ManifestError` naming the file, the column or the row. Ids are not checked for
    uniqueness here: :func:`check_unique_ids` does that (one more pass).
    """
    if not isinstance(partition_rows, int) or partition_rows <= 0:
        raise ConfigError(f"partition_rows must be a positive integer, got {partition_rows!r}")
    url = os.fspath(path)
    options = dict(storage_options or {})
    fmt = _detect_format(url, format)
    # Values are validated as they are written: Dask's conversion to Arrow strings would fail on
    # text Arrow cannot hold (an unpaired surrogate) before validation could name the row.
    with dask.config.set({"dataframe.convert-string": False}):
        raw = _read_raw(url, fmt, options)
        columns = list(raw.columns)
        if "audio" not in columns:
            raise ManifestError(
                f"{url}: the required column 'audio' is missing (columns: {columns})"
            )
        with_label = "label" in columns
        keep = [c for c in MANIFEST_COLUMNS if c in columns]
        raw = raw[keep]
        raw_blocks: list[Delayed] = list(raw.to_delayed())
    base = _base_of(url, options)
    try:
        stats = dask.compute(*[delayed(_inspect_block)(b, base, with_label) for b in raw_blocks])
    except (OSError, ValueError, TypeError) as exc:  # undecodable bytes, a malformed line
        raise ManifestError(f"{url}: cannot read the manifest as {fmt}: {exc}") from exc
    starts = np.concatenate([[0], np.cumsum([n for n, _, _ in stats])]).astype(int)
    for i, (_, problem, _) in enumerate(stats):
        if problem is not None:
            local, message = problem
            raise ManifestError(f"{url}: row {starts[i] + local}: {message}")
    total = int(starts[-1])
    if total == 0:
        raise ManifestError(f"{url}: the manifest has no rows")
    digest = hashlib.blake2b(digest_size=16)
    for _, _, block_digest in stats:
        digest.update(block_digest)

    blocks = tuple(delayed(_normalise_block)(b, base, with_label) for b in raw_blocks)
    pieces = []
    for first in range(0, total, partition_rows):
        last = min(first + partition_rows, total)
        own = []
        for i in range(len(blocks)):
            lo, hi = max(first, starts[i]), min(last, starts[i + 1])
            if lo < hi:
                own.append((i, int(lo - starts[i]), int(hi - starts[i])))
        pieces.append(tuple(own))
    return ManifestPlan(
        url=url,
        rows=total,
        partition_rows=partition_rows,
        with_label=with_label,
        blocks=blocks,
        pieces=tuple(pieces),
        digest=digest.hexdigest(),
    )


def check_unique_ids(plan: ManifestPlan) -> None:
    """Raise :class:`ManifestError` listing duplicate ids (one pass over the manifest)."""
    # A tree reduction (split_out=1) keeps this a plain task graph; at hundreds of millions of rows
    # a shuffle-based count (split_out>1) would be the scalable choice.
    duplicates = plan.to_dataframe()["id"].value_counts(split_out=1)
    duplicates = duplicates[duplicates > 1].compute()
    if len(duplicates):
        shown = ", ".join(f"{k!r} ({v} rows)" for k, v in list(duplicates.items())[:5])
        raise ManifestError(f"{plan.url}: duplicate ids: {shown}")


def read_manifest(
    path: str | os.PathLike[str],
    *,
    partition_rows: int = 128,
    storage_options: Mapping[str, Any] | None = None,
    format: str | None = None,
) -> dd.DataFrame:
    """Read ``path`` into a Dask dataframe of normalised manifest rows, ``partition_rows`` per partition.

    Validates every row eagerly (one pass, using the active Dask scheduler) and raises
    :class:`ManifestError` naming the file, the column or the row. Audio is never opened here.
    """
    plan = plan_manifest(
        path, partition_rows=partition_rows, storage_options=storage_options, format=format
    )
    check_unique_ids(plan)
    return plan.to_dataframe()


def _detect_format(url: str, format: str | None) -> str:
    if format is not None:
        if format not in set(_FORMATS.values()):
            raise ConfigError(
                f"manifest format must be one of {sorted(set(_FORMATS.values()))}, got {format!r}"
            )
        return format
    name = url.rstrip("/").lower()
    for suffix in (".gz", ".bz2", ".xz", ".zst"):
        name = name.removesuffix(suffix)
    ext = posixpath.splitext(name)[1]
    if ext in _FORMATS:
        return _FORMATS[ext]
    if ext == "":
        return "parquet"  # a folder of Parquet files
    raise ManifestError(
        f"{url}: cannot tell the manifest format from {ext!r}; use .csv, .tsv, .parquet, .jsonl "
        "or pass format="
    )


def _read_raw(url: str, fmt: str, options: dict[str, Any]) -> dd.DataFrame:
    try:
        if fmt in ("csv", "tsv"):
            return dd.read_csv(
                url,
                sep="\t" if fmt == "tsv" else ",",
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                storage_options=options,
                blocksize="16MiB",
            )
        if fmt == "parquet":
            return dd.read_parquet(url, storage_options=options)
        return dd.read_json(
            url,
            lines=True,
            orient="records",
            storage_options=options,
            blocksize=16 * 2**20,
            engine=_json_lines,
        )
    except FileNotFoundError as exc:
        raise ManifestError(f"{url}: manifest not found") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise ManifestError(f"{url}: cannot read the manifest as {fmt}: {exc}") from exc


def _json_lines(text: Any, **_: Any) -> pd.DataFrame:
    """JSON Lines as a frame of the values exactly as written.

    Python's json module, not pandas' ujson: ujson silently drops an unpaired surrogate escape
    (``"a\\ud800"`` reads as ``"a"``), which would alter ids; here it is kept, and validation
    refuses it naming the row.
    """
    import json

    records = []
    for number, line in enumerate(text, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"line {number} of a block is not JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise ValueError(f"line {number} of a block is not a JSON object: {line[:80]!r}")
        records.append(record)
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    # object columns: pandas would otherwise make Arrow strings, which cannot hold a surrogate
    return pd.DataFrame(
        {c: pd.Series([r.get(c) for r in records], dtype=object) for c in columns},
        index=pd.RangeIndex(len(records)),
    )


def _base_of(url: str, options: Mapping[str, Any]) -> str:
    """The folder that relative audio paths resolve against, with its protocol."""
    if "://" in url:
        return url.rstrip("/").rsplit("/", 1)[0] if not _is_dir(url, options) else url.rstrip("/")
    path = os.path.abspath(url)
    return path if os.path.isdir(path) else os.path.dirname(path)


def _is_dir(url: str, options: Mapping[str, Any]) -> bool:
    fs, p = fsspec.core.url_to_fs(url, **options)
    try:
        return bool(fs.isdir(p))
    except Exception:  # noqa: BLE001 - unknown stores: treat as a file
        return False


def _resolve(audio: str, base: str) -> str:
    """Absolute URI of ``audio``: URIs stay, relative paths join the manifest's folder."""
    if "://" in audio:
        return audio
    if "://" in base:
        protocol, folder = base.split("://", 1)
        return f"{protocol}://{posixpath.normpath(posixpath.join(folder, audio))}"
    return os.path.normpath(os.path.join(base, os.path.expanduser(audio)))


def _as_numbers(values: pd.Series, column: str) -> tuple[pd.Series, tuple[int, str] | None]:
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    given = values.notna() & (values.astype("string").str.strip() != "")
    bad = given & numbers.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        return numbers, (i, f"column {column!r}: {values.iloc[i]!r} is not a number of seconds")
    inf = ~np.isfinite(numbers.fillna(0.0).to_numpy())
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        return numbers, (i, f"column {column!r}: {values.iloc[i]!r} is not finite")
    return numbers, None


def _unstorable_text(values: pd.Series, column: str) -> tuple[int, str] | None:
    """The first value with a NUL byte or an unpaired surrogate (JSON's ``\\ud800``): neither can be
    stored as text by PostgreSQL or Parquet, and altering an id silently would break its meaning."""
    for i, value in enumerate(values.tolist()):
        if not isinstance(value, str):
            continue
        if "\x00" in value:
            return i, f"column {column!r}: {value!r} contains a NUL byte"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return (
                i,
                f"column {column!r}: {value!r} contains an unpaired surrogate (not UTF-8 text)",
            )
    return None


def _check(df: pd.DataFrame, with_label: bool) -> tuple[pd.DataFrame, tuple[int, str] | None]:
    """Normalise one block; returns the frame and the first problem ``(row, message)`` if any."""
    df = df.reset_index(drop=True)
    n = len(df)
    for column in ("id", "audio"):
        if column in df:
            problem = _unstorable_text(df[column], column)
            if problem is not None:
                return df, problem
    audio = df["audio"]
    missing = audio.isna() | (audio.astype("string").str.strip() == "")
    if missing.any():
        i = int(np.flatnonzero(missing.to_numpy())[0])
        return df, (i, "column 'audio' is empty")
    out = pd.DataFrame(index=pd.RangeIndex(n))
    raw_audio = audio.astype("string").str.strip()
    offset = pd.Series(np.nan, index=out.index)
    duration = pd.Series(np.nan, index=out.index)
    for column in ("offset", "duration"):
        if column in df:
            values, problem = _as_numbers(df[column], column)
            if problem:
                return df, problem
            if column == "offset":
                offset = values
            else:
                duration = values
    if (offset < 0).any():
        i = int(np.flatnonzero((offset < 0).to_numpy())[0])
        return df, (i, f"column 'offset': {offset.iloc[i]} is negative")
    if (duration <= 0).any():
        i = int(np.flatnonzero((duration <= 0).to_numpy())[0])
        return df, (i, f"column 'duration': {duration.iloc[i]} is not positive")
    if "id" in df:
        # Ids are kept exactly as written (never stripped or altered): they key the results.
        ids = df["id"].astype("string")
        empty = ids.isna() | (ids == "")
        if empty.any():
            i = int(np.flatnonzero(empty.to_numpy())[0])
            return df, (i, "column 'id' is empty")
    else:
        ids = pd.Series(
            [derive_id(a, o, d) for a, o, d in zip(raw_audio, offset, duration, strict=True)],
            dtype="string",
        )
    out["id"] = ids.astype("string").to_numpy()
    out["audio"] = raw_audio.to_numpy()
    if with_label:
        labels: list[str | None] = []
        for i, value in enumerate(df["label"]):
            if (
                value is None
                or (isinstance(value, float) and math.isnan(value))
                or value is pd.NA
                or str(value).strip() == ""
            ):
                labels.append(None)
                continue
            try:
                labels.append(canonical(str(value)))
            except ConfigError:
                return df, (i, f"column 'label': {value!r} is not a known language code")
        out["label"] = pd.array(labels, dtype="string")
    out["offset"] = offset.to_numpy()
    out["duration"] = duration.to_numpy()
    out["id"] = out["id"].astype("string")
    out["audio"] = out["audio"].astype("string")
    return out, None


def _inspect_block(
    df: pd.DataFrame, base: str, with_label: bool
) -> tuple[int, tuple[int, str] | None, bytes]:
    """Row count, first problem, and a digest of the block's content as read."""
    _, problem = _check(df, with_label)
    if problem is not None:
        return len(df), problem, b""
    hashed = pd.util.hash_pandas_object(df.astype("string"), index=False).to_numpy()
    return len(df), problem, hashlib.blake2b(hashed.tobytes(), digest_size=16).digest()


def _normalise_block(df: pd.DataFrame, base: str, with_label: bool) -> pd.DataFrame:
    out, problem = _check(df, with_label)
    if problem is not None:  # the manifest changed since it was validated
        raise ManifestError(f"row {problem[0]} of a manifest block: {problem[1]}")
    out["audio"] = pd.array([_resolve(a, base) for a in out["audio"]], dtype="string")
    return out


def assemble_partition(
    blocks: Sequence[pd.DataFrame], bounds: Sequence[tuple[int, int]], first: int
) -> pd.DataFrame:
    frames = [b.iloc[lo:hi] for b, (lo, hi) in zip(blocks, bounds, strict=True)]
    out = (
        pd.concat(frames, ignore_index=True)
        if len(frames) > 1
        else frames[0].reset_index(drop=True)
    )
    out.index = pd.RangeIndex(first, first + len(out))
    return out
