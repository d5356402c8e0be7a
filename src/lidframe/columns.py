"""Every result column, declared once: its name, its type in pandas, Arrow and SQL, and its meaning.

The Dask ``meta``, the Parquet schema, the kernel's and the consensus's typed columns, the rows of a
partition given up on, the database tables (:mod:`lidframe.store.schema` builds them from here; an
Alembic revision changes the database to match) and the README's column table all derive from the
declarations below, so adding a column (voice activity will add some) is one :class:`Column` here
plus one migration. ``tests/test_columns.py`` derives each of them and checks they agree.

Groups, in frame order:

* :data:`MANIFEST`: the normalised manifest row (``label`` only when the manifest has labels);
* :data:`ROW`: what went wrong with the row (``error``), and, in the database only, its category;
* :data:`SPEECH`: how much audio the row has and how much of it is speech (:mod:`lidframe.speech`);
* :data:`CASCADE`: which models a row was sent to when the models run as a cascade
  (:class:`lidframe.consensus.Cascade`);
* :data:`MODEL`: per model, named ``{alias}_{name}`` with ``alias`` = the model name with every
  non-alphanumeric character replaced by ``_`` (stored in ``lidframe_predictions`` without the
  prefix, one row per model);
* :data:`CONSENSUS`: the reduction of several models (only when a run has more than one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = [
    "CASCADE",
    "CONSENSUS",
    "JSON_TYPE",
    "MANIFEST",
    "MODEL",
    "ROW",
    "SPEECH",
    "TOPK_TYPE",
    "WINDOWS_TYPE",
    "Column",
    "asked_aliases",
    "asked_value",
    "cascade_values",
    "column_alias",
    "consensus_names",
    "markdown_table",
    "model_columns",
    "model_values",
    "null_model_values",
    "result_meta",
    "result_schema",
    "speech_values",
    "with_consensus_meta",
]

TOPK_TYPE = pa.list_(pa.struct([("lang", pa.string()), ("prob", pa.float32())]))
WINDOWS_TYPE = pa.list_(
    pa.struct(
        [
            ("start", pa.float64()),
            ("end", pa.float64()),
            ("lang", pa.string()),
            ("prob", pa.float32()),
        ]
    )
)
# JSONB on PostgreSQL (indexable, queryable with ->>), JSON text elsewhere.
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

_ARROW = {
    "string": pa.string(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "int16": pa.int16(),
    "Int32": pa.int32(),
}


@dataclass(frozen=True)
class Column:
    """One result column."""

    # Name in frames and Parquet (per-model columns: the part after ``{alias}_``).
    name: str
    # pandas dtype of the frame column: string, float32, float64, bool, boolean (nullable), int16,
    # Int32 (nullable) or object.
    dtype: str
    # SQLAlchemy type of its database column; None: not stored in the database.
    sql: Any
    # What it holds (the README table and the docs say this).
    doc: str
    # Arrow type in Parquet (default: the one of ``dtype``).
    arrow: pa.DataType | None = None
    # Name of its database column when it differs from ``name``.
    stored_as: str | None = None
    # Whether the database column may be null.
    nullable: bool = True
    # False: a database column only, derived from the frame (``error_category``).
    in_frame: bool = True

    @property
    def sql_name(self) -> str:
        return self.stored_as or self.name

    @property
    def arrow_type(self) -> pa.DataType:
        return self.arrow if self.arrow is not None else _ARROW[self.dtype]

    def empty(self) -> pd.Series:
        """An empty frame column of this type (for ``meta``)."""
        return pd.Series(dtype=self.dtype)

    def values(self, values: Sequence[Any], index: pd.Index) -> Any:
        """``values`` (None for null) as a frame column of this type."""
        if self.dtype == "string":
            return pd.array(list(values), dtype="string")
        if self.dtype.startswith("float"):
            return np.array([np.nan if v is None else v for v in values], dtype=self.dtype)
        if self.dtype == "object":
            return pd.Series(list(values), index=index, dtype="object")
        if self.dtype in ("boolean", "Int32"):
            return pd.array(list(values), dtype=self.dtype)
        return np.asarray(list(values), dtype=self.dtype)

    def sql_column(self) -> sa.Column[Any]:
        return sa.Column(self.sql_name, self.sql, nullable=self.nullable)


MANIFEST = (
    Column("id", "string", sa.Text, "the manifest's id (derived from the audio when absent)",
           stored_as="row_id", nullable=False),
    Column("audio", "string", sa.Text, "the audio URI as written in the manifest", nullable=False),
    Column("label", "string", sa.String(16), "ground truth: canonical code, `und` for no speech (if given)"),
    Column("offset", "float64", sa.Float, "start in the file, seconds (if given)"),
    Column("duration", "float64", sa.Float, "length to read, seconds (if given)"),
)  # fmt: skip
ROW = (
    Column("error", "string", sa.Text,
           "null, or why the row has no answer: `category: file: reason`"),
    Column("error_category", "string", sa.String(32), "the part of `error` before the colon",
           in_frame=False),
)  # fmt: skip
SPEECH = (
    Column("sample_rate", "Int32", sa.Integer,
           "the file's own sample rate, Hz, before lidframe resampled it (8000: telephone audio); "
           "null when it did not decode"),
    Column("audio_seconds", "float32", sa.Float, "seconds of audio decoded for the row"),
    Column("speech_seconds", "float32", sa.Float,
           "seconds of speech voice activity found in them (null with `--no-vad`); below "
           "`--min-speech` every model answers `und`"),
    Column("code_switch", "boolean", sa.Boolean,
           "a long file's confident windows disagree on the language (see Long files); null "
           "when fewer than two windows had speech"),
)  # fmt: skip
CASCADE = (
    Column("models_asked", "string", sa.Text,
           "with `--cascade`: the models the row was sent to, their aliases in order, "
           "comma-separated (empty: none: no speech or no audio); null without a cascade"),
)  # fmt: skip
MODEL = (
    Column("lang", "string", sa.String(16),
           "the model's top-1 language (canonical code), `und` when the row has no speech"),
    Column("prob", "float32", sa.Float, "its probability"),
    Column("topk", "object", JSON_TYPE, "the `--top-k` most probable languages: list of "
           "`{lang, prob}`", arrow=TOPK_TYPE),
    Column("windows", "object", JSON_TYPE, "a long file's windows: list of `{start, end, lang, "
           "prob}` (null when the row was heard in one window)", arrow=WINDOWS_TYPE),
)  # fmt: skip
CONSENSUS = (
    Column("lang", "string", sa.String(16), "the consensus language, or `und`"),
    Column("agree", "bool", sa.Boolean, "every answering model has the same top-1 language"),
    Column("n_agree", "int16", sa.Integer, "models whose top-1 is `lang`"),
    Column("consensus_prob", "float32", sa.Float, "the policy's support for the answer, in [0, 1]"),
    Column("consensus_method", "string", sa.String(64),
           "`policy[answered/total]`: how many models answered"),
)  # fmt: skip


def column_alias(name: str) -> str:
    """Column prefix of a model: its name with every non-alphanumeric character replaced by ``_``."""
    return re.sub(r"[^0-9A-Za-z]", "_", name)


def model_columns(alias: str) -> tuple[str, ...]:
    """The frame column names of one model (``{alias}_lang``, ``{alias}_prob``, ``{alias}_topk``)."""
    return tuple(f"{alias}_{c.name}" for c in MODEL)


def consensus_names() -> tuple[str, ...]:
    return tuple(c.name for c in CONSENSUS)


def model_values(
    alias: str, values: Mapping[str, Sequence[Any]], index: pd.Index
) -> dict[str, Any]:
    """One model's typed frame columns from ``{column name: values}`` (missing ones null)."""
    n = len(index)
    return {f"{alias}_{c.name}": c.values(values.get(c.name, [None] * n), index) for c in MODEL}


def speech_values(values: Mapping[str, Sequence[Any]], index: pd.Index) -> dict[str, Any]:
    """The typed :data:`SPEECH` columns from ``{column name: values}`` (missing ones null)."""
    n = len(index)
    return {c.name: c.values(values.get(c.name, [None] * n), index) for c in SPEECH}


def cascade_values(values: Mapping[str, Sequence[Any]], index: pd.Index) -> dict[str, Any]:
    """The typed :data:`CASCADE` columns from ``{column name: values}`` (missing ones null)."""
    n = len(index)
    return {c.name: c.values(values.get(c.name, [None] * n), index) for c in CASCADE}


def asked_aliases(value: object, aliases: Sequence[str]) -> list[str]:
    """The aliases of ``aliases`` a row's ``models_asked`` cell names, in ``aliases``' order; all of
    them when the row was not cascaded (null) or reached no model (empty)."""
    if not isinstance(value, str) or not value:
        return list(aliases)
    asked = set(value.split(_ASKED_SEP))
    return [a for a in aliases if a in asked]


def asked_value(aliases: Sequence[str]) -> str:
    """The ``models_asked`` cell of a row sent to ``aliases``."""
    return _ASKED_SEP.join(aliases)


def null_model_values(alias: str, index: pd.Index) -> dict[str, Any]:
    """One model's columns for rows it did not answer."""
    return model_values(alias, {}, index)


def result_meta(manifest_meta: pd.DataFrame, aliases: Sequence[str]) -> pd.DataFrame:
    """Empty frame with the result columns: the manifest's, ``error``, speech, then each model's."""
    cols = {name: manifest_meta[name] for name in manifest_meta.columns}
    for c in (*_in_frame(ROW), *SPEECH, *CASCADE):
        cols[c.name] = c.empty()
    for alias in aliases:
        for c in MODEL:
            cols[f"{alias}_{c.name}"] = c.empty()
    return pd.DataFrame(cols)


def with_consensus_meta(meta: pd.DataFrame) -> pd.DataFrame:
    """``meta`` with the consensus columns appended."""
    out = meta.copy()
    for c in CONSENSUS:
        out[c.name] = c.empty()
    return out


def result_schema(meta: pd.DataFrame, aliases: Sequence[str]) -> pa.Schema:
    """Arrow schema of the result Parquet files for a frame shaped like ``meta``."""
    declared = {c.name: c for c in (*MANIFEST, *_in_frame(ROW), *SPEECH, *CASCADE, *CONSENSUS)}
    declared.update({f"{a}_{c.name}": c for a in aliases for c in MODEL})
    fields = []
    for name in meta.columns:
        if name not in declared:
            raise ValueError(f"result column {name!r} is not declared in lidframe.columns")
        fields.append(pa.field(name, declared[name].arrow_type))
    return pa.schema(fields)


def markdown_table() -> str:
    """The README's table of result columns (frame/Parquet name, type, database column, meaning)."""
    lines = [
        "| column | type | in the database | meaning |",
        "|--------|------|-----------------|---------|",
    ]
    groups: list[tuple[str, str, Iterable[Column]]] = [
        ("", "lidframe_results", MANIFEST), ("", "lidframe_results", ROW),
        ("", "lidframe_results", SPEECH), ("", "lidframe_results", CASCADE),
        ("{alias}_", "lidframe_predictions", MODEL), ("", "lidframe_results", CONSENSUS),
    ]  # fmt: skip
    for prefix, table, group in groups:
        for c in group:
            name = f"`{prefix}{c.name}`" if c.in_frame else "(database only)"
            kind = _KIND.get(c.name, c.dtype) if c.dtype == "object" else c.dtype
            lines.append(f"| {name} | {kind} | `{table}.{c.sql_name}` | {c.doc} |")
    return "\n".join(lines)


_ASKED_SEP = ","
_KIND = {"topk": "list of {lang, prob}", "windows": "list of {start, end, lang, prob}"}


def _in_frame(group: Iterable[Column]) -> tuple[Column, ...]:
    return tuple(c for c in group if c.in_frame)
