"""Names and types of the result columns, as pandas ``meta`` and as a pyarrow schema.

One place decides them so the kernel, the Dask ``meta=`` and the Parquet writer cannot drift apart.
Per model, with ``alias`` = the model name with non-alphanumerics replaced by ``_``:

* ``{alias}_lang``: the top-1 canonical language code (null when the row has an error)
* ``{alias}_prob``: its probability (float32)
* ``{alias}_topk``: the ``k`` most probable languages as a list of ``{lang, prob}`` structs
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa

__all__ = ["column_alias", "model_columns", "result_meta", "result_schema"]

TOPK_TYPE = pa.list_(pa.struct([("lang", pa.string()), ("prob", pa.float32())]))


def column_alias(name: str) -> str:
    """Column prefix of a model: its name with every non-alphanumeric character replaced by ``_``."""
    return re.sub(r"[^0-9A-Za-z]", "_", name)


def model_columns(alias: str) -> tuple[str, str, str]:
    """The three column names of one model."""
    return f"{alias}_lang", f"{alias}_prob", f"{alias}_topk"


def result_meta(manifest_meta: pd.DataFrame, aliases: Sequence[str]) -> pd.DataFrame:
    """Empty frame with the result columns: the manifest's, ``error``, then each model's."""
    cols = {name: manifest_meta[name] for name in manifest_meta.columns}
    cols["error"] = pd.Series(dtype="string")
    for alias in aliases:
        lang, prob, topk = model_columns(alias)
        cols[lang] = pd.Series(dtype="string")
        cols[prob] = pd.Series(dtype="float32")
        cols[topk] = pd.Series(dtype="object")
    return pd.DataFrame(cols)


def result_schema(meta: pd.DataFrame, aliases: Sequence[str]) -> pa.Schema:
    """Arrow schema of the result Parquet files for a frame shaped like ``meta``."""
    topk = {model_columns(a)[2] for a in aliases}
    fields = []
    for name, dtype in meta.dtypes.items():
        if name in topk:
            fields.append(pa.field(name, TOPK_TYPE))
        elif str(dtype) in ("string", "str", "object"):
            fields.append(pa.field(name, pa.string()))
        else:
            fields.append(pa.field(name, pa.from_numpy_dtype(dtype)))
    return pa.schema(fields)
