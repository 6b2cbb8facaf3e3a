"""Results: the versioned Arrow schema, atomic Parquet writing, selection rules, queries and
statistics (reports that combine results with analyses are `fsf.analysis.report`)."""

from fsf.results._errors import ResultsError, ResultsUsageError, ResultsWriteError
from fsf.results.compaction import compact
from fsf.results.export import export
from fsf.results.fragment_reader import completed_evaluations, read_fragment
from fsf.results.provenance import provenance_summary, read_provenance
from fsf.results.ranking import (
    PerLanguage,
    Ranking,
    best,
    best_per_language,
    run_objectives,
    top_configurations,
)
from fsf.results.reader import Results, SkippedFragment, load, open_dataset, read_results
from fsf.results.schema import (
    SCHEMA,
    SCHEMA_VERSION,
    SchemaVersionError,
    TrialInfo,
    evaluation_rows,
)
from fsf.results.selection import RULES, Objective, SelectionRule, selection_rule
from fsf.results.stats import PairedDifference, paired_difference
from fsf.results.summary import summary
from fsf.results.writer import ParquetReporter, atomic_write_table, fragment_path

__all__ = [
    "RULES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Objective",
    "PairedDifference",
    "ParquetReporter",
    "PerLanguage",
    "Ranking",
    "Results",
    "ResultsError",
    "ResultsUsageError",
    "ResultsWriteError",
    "SchemaVersionError",
    "SelectionRule",
    "SkippedFragment",
    "TrialInfo",
    "atomic_write_table",
    "best",
    "best_per_language",
    "compact",
    "completed_evaluations",
    "evaluation_rows",
    "export",
    "fragment_path",
    "load",
    "open_dataset",
    "paired_difference",
    "provenance_summary",
    "read_fragment",
    "read_provenance",
    "read_results",
    "run_objectives",
    "selection_rule",
    "summary",
    "top_configurations",
]
