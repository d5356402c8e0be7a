"""Where results go: Parquet parts fenced by the lease, in a folder one job owns (and the database)."""

from lidframe.sinks.parquet import (
    MARKER,
    STAGING,
    check_writable,
    claim_folder,
    discard,
    part_files,
    part_name,
    promote,
    read_results,
    staged_parts,
    write_staged,
)

__all__ = [
    "MARKER",
    "STAGING",
    "check_writable",
    "claim_folder",
    "discard",
    "part_files",
    "part_name",
    "promote",
    "read_results",
    "staged_parts",
    "write_staged",
]
