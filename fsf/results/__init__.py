"""Results: the versioned Arrow schema, atomic Parquet writing, queries and reports."""

from fsf.results._errors import ResultsError, ResultsUsageError, ResultsWriteError
from fsf.results.query import PerLanguage, Ranking, best, best_per_language, export, summary
from fsf.results.reader import (
    Results,
    SkippedFragment,
    compact,
    completed_evaluation,
    open_dataset,
    read_fragment,
    read_results,
)
from fsf.results.report import Report, write_report
from fsf.results.schema import (
    SCHEMA,
    SCHEMA_VERSION,
    SchemaVersionError,
    TrialInfo,
    evaluation_rows,
)
from fsf.results.writer import ParquetReporter, atomic_write_table, fragment_path

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "ParquetReporter",
    "PerLanguage",
    "Ranking",
    "Report",
    "Results",
    "ResultsError",
    "ResultsUsageError",
    "ResultsWriteError",
    "SchemaVersionError",
    "SkippedFragment",
    "TrialInfo",
    "atomic_write_table",
    "best",
    "best_per_language",
    "compact",
    "completed_evaluation",
    "evaluation_rows",
    "export",
    "fragment_path",
    "open_dataset",
    "read_fragment",
    "read_results",
    "summary",
    "write_report",
]
