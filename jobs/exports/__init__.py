"""Scheduled exports (`xp jobs run export`) and the pages the export API reads (issue #18).

- :mod:`.spec`: the named exports of ``XP_EXPORT_FILE`` (YAML, checked with pydantic).
- :mod:`.datasets`: the exportable tables and keyset-paged reads in a stable order (SQL text, pure).
- :mod:`.formats`: CSV, JSON, XLSX (formatted) and Parquet files from pages of rows.
- :mod:`.destination`: a local folder or S3 (the lake's settings), files put in place atomically.
- :mod:`.runs`: one row of ``xp.export_runs`` per export per run.
- :mod:`.job`: the run.

Guarantees and formats: docs/exports.md.
"""

from jobs.exports.job import ExportReport, run_exports

__all__ = ["ExportReport", "run_exports"]
