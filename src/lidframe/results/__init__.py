"""Results: the folder a job writes, one Parquet part per partition, and reading it back typed.

``part-00007.parquet`` always holds partition 7 of the manifest, so a redo replaces the file instead
of adding a second copy; the folder belongs to one job, and holds only its parts and ``_``-prefixed
state, so any Parquet reader opens it as it is. Every part says how it was made (its provenance), so
a results folder copied away from its job database still says what produced it. Modules, each
importing only those above it:

* ``_parts``: the parts, fenced by the partition's lease: staged under the lease token in
  ``OUT/_staging/``, promoted into place only once the job database accepted the commit.
* ``_folder``: the owner marker (``OUT/_lidframe_job.json``) and the checks before a job writes.
* ``_provenance``: what every part says about how it was made (settings, models, weights).
* ``_read``: :func:`read_results` (the typed, lazy reader behind ``lidframe.read_results``),
  :func:`read_parts` (the parts as one pandas frame) and the declared dtypes both use.

A *part* is always one of these Parquet files (staged or in place); never a window of audio.
"""

from lidframe.results._folder import MARKER, check_writable, claim_folder, folder_owner
from lidframe.results._parts import (
    STAGING,
    discard,
    mark_staged,
    part_files,
    part_name,
    promote,
    remove_staging,
    staged_parts,
    write_staged,
)
from lidframe.results._provenance import KEY, part_provenance, read_provenance
from lidframe.results._read import (
    LABELS_ATTR,
    as_declared,
    declared_columns,
    read_parts,
    read_results,
)

__all__ = [
    "KEY",
    "LABELS_ATTR",
    "MARKER",
    "STAGING",
    "as_declared",
    "check_writable",
    "claim_folder",
    "declared_columns",
    "discard",
    "folder_owner",
    "mark_staged",
    "part_files",
    "part_name",
    "part_provenance",
    "promote",
    "read_parts",
    "read_provenance",
    "read_results",
    "remove_staging",
    "staged_parts",
    "write_staged",
]
