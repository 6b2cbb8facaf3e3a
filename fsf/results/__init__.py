"""Results: the versioned Arrow schema, atomic Parquet writing, queries and reports."""

from fsf.results.schema import SCHEMA, SCHEMA_VERSION, SchemaVersionError, TrialInfo, evaluation_rows
from fsf.results.writer import ParquetReporter, atomic_write_table, fragment_path

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "ParquetReporter",
    "SchemaVersionError",
    "TrialInfo",
    "atomic_write_table",
    "evaluation_rows",
    "fragment_path",
]
