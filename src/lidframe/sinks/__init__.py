"""Where results go: Parquet files (and, with durable jobs, a database)."""

from lidframe.sinks.parquet import part_name, remove_stale_parts, write_part

__all__ = ["part_name", "remove_stale_parts", "write_part"]
