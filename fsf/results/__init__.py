"""Results: the versioned Arrow schema, atomic Parquet writing, selection rules, queries and
statistics (reports that combine results with analyses are `fsf.analysis.report`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fsf._lazy import lazy_exports

if TYPE_CHECKING:
    from fsf.results._errors import ResultsError, ResultsUsageError, ResultsWriteError
    from fsf.results.compaction import compact
    from fsf.results.exporting import export
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
    from fsf.results.summarize import summary
    from fsf.results.writer import ParquetReporter, atomic_write_table, fragment_path

_EXPORTS = {
    "ResultsError": "fsf.results._errors",
    "ResultsUsageError": "fsf.results._errors",
    "ResultsWriteError": "fsf.results._errors",
    "compact": "fsf.results.compaction",
    "export": "fsf.results.exporting",
    "completed_evaluations": "fsf.results.fragment_reader",
    "read_fragment": "fsf.results.fragment_reader",
    "provenance_summary": "fsf.results.provenance",
    "read_provenance": "fsf.results.provenance",
    "PerLanguage": "fsf.results.ranking",
    "Ranking": "fsf.results.ranking",
    "best": "fsf.results.ranking",
    "best_per_language": "fsf.results.ranking",
    "run_objectives": "fsf.results.ranking",
    "top_configurations": "fsf.results.ranking",
    "Results": "fsf.results.reader",
    "SkippedFragment": "fsf.results.reader",
    "load": "fsf.results.reader",
    "open_dataset": "fsf.results.reader",
    "read_results": "fsf.results.reader",
    "SCHEMA": "fsf.results.schema",
    "SCHEMA_VERSION": "fsf.results.schema",
    "SchemaVersionError": "fsf.results.schema",
    "TrialInfo": "fsf.results.schema",
    "evaluation_rows": "fsf.results.schema",
    "RULES": "fsf.results.selection",
    "Objective": "fsf.results.selection",
    "SelectionRule": "fsf.results.selection",
    "selection_rule": "fsf.results.selection",
    "PairedDifference": "fsf.results.stats",
    "paired_difference": "fsf.results.stats",
    "summary": "fsf.results.summarize",
    "ParquetReporter": "fsf.results.writer",
    "atomic_write_table": "fsf.results.writer",
    "fragment_path": "fsf.results.writer",
}
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

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
