"""Audio manifests: what they are on storage, their partitions planned as a stream, and reading one.

A manifest is CSV, TSV, Parquet or JSON Lines (one file, a folder of files, or a glob), local or on
any fsspec store (``s3://`` through s3fs), with one row per clip:

============  =========================================================================
``audio``     required: a path or URI; relative paths resolve against the manifest's folder
``id``        optional: a unique row id; when absent a stable one is derived (:func:`derive_id`)
``label``     optional: ground-truth language, normalised to a canonical code
``offset``    optional: start of the clip inside the file, in seconds
``duration``  optional: length of the clip, in seconds
============  =========================================================================

Work starts in seconds whatever the size, because nothing reads the whole manifest first. Modules,
each importing only those above it:

* ``_rows``: manifest rows as written -> normalised rows; a bad row gets its own ``bad_row`` error
  and costs nothing else.
* ``_storage``: :func:`open_manifest` lists the files and reads one header, footer or first
  megabyte; :attr:`Manifest.identity` changes when a file is rewritten.
* ``_plan``: :func:`plan_partitions` streams :class:`PlannedPartition` s cut from text lines or
  Parquet footers, each with a digest of its content.
* ``_read``: :func:`read_partition` reads one partition alone (a byte range, or the row groups it
  spans), checks its digest (a manifest changed after it was planned raises
  :class:`ManifestChanged` instead of mixing two versions) and normalises its rows.
* ``_frame``: :func:`read_manifest`, a small manifest as a Dask dataframe for a notebook.
"""

from lidframe.manifest._frame import FIRST_PARTITION_ROWS, read_manifest
from lidframe.manifest._plan import PlannedPartition, check_partition_rows, plan_partitions
from lidframe.manifest._read import ManifestChanged, read_partition
from lidframe.manifest._rows import BAD_ROW, MANIFEST_COLUMNS, derive_id, manifest_meta
from lidframe.manifest._storage import Manifest, ManifestFile, open_manifest

__all__ = [
    "BAD_ROW",
    "FIRST_PARTITION_ROWS",
    "MANIFEST_COLUMNS",
    "Manifest",
    "ManifestChanged",
    "ManifestFile",
    "PlannedPartition",
    "check_partition_rows",
    "derive_id",
    "manifest_meta",
    "open_manifest",
    "plan_partitions",
    "read_manifest",
    "read_partition",
]
