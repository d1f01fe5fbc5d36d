"""Run the suites of :mod:`quality.suites` with great-expectations 1.x and build its Data Docs.

The only module that imports great_expectations (lazily: it takes seconds to import). Each table gets
two pandas dataframe assets in an *ephemeral* GX context: its window rows and its schema (``"column
Type"`` rows from ``system.columns``). One checkpoint per asset runs its suite; the Data Docs site is
written under the run's report folder, never into the repository.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quality.outcomes import CheckOutcome
from quality.suites import ExpectationSpec, TableSuite

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GxRun", "outcome_of", "run_suites"]

logger = logging.getLogger(__name__)

SITE = "xp_quality"
EXAMPLES = 5


@dataclass(frozen=True)
class GxRun:
    """The outcomes of every expectation and where the Data Docs site's index is."""

    outcomes: list[CheckOutcome]
    docs_index: Path | None
    pages: dict[str, Path] = field(default_factory=dict)
    """Table → its validation-result page (relative to the Data Docs folder)."""


def _threshold(spec: ExpectationSpec) -> dict[str, Any]:
    threshold: dict[str, Any] = {"expectation": spec.expectation}
    for key, value in spec.kwargs.items():
        if key == "value_set" and len(value) > 20:
            threshold["value_set_size"] = len(value)
        else:
            threshold[key] = value
    return threshold


def _examples(values: Sequence[Any] | None) -> list[Any]:
    seen: list[Any] = []
    for value in values or ():
        text = value if isinstance(value, str | int | float | bool) else str(value)
        if text not in seen:
            seen.append(text)
        if len(seen) == EXAMPLES:
            break
    return seen


_PROBLEMS = {
    "nulls": "are null",
    "unique_ids": "share their id with another row",
    "allowed_values": "hold values the registry does not know",
    "ranges": "are out of range",
}


def outcome_of(table: str, spec: ExpectationSpec, success: bool, result: Mapping[str, Any]) -> CheckOutcome:
    """The :class:`CheckOutcome` of one expectation result (GX's ``result`` dict, SUMMARY format)."""
    where = f"{table}.{spec.column}" if spec.column else table
    threshold = _threshold(spec)
    if "exception" in result:
        detail = f"{where}: the expectation could not run: {result['exception']}"
        return CheckOutcome(spec.check, False, None, threshold, detail, table=table, severity=spec.severity)
    if spec.check == "schema":
        present = set(result.get("observed_value") or ())
        missing = [c for c in spec.kwargs["value_set"] if c not in present]
        detail = (
            f"{table} has every expected column and type"
            if success
            else f"{table} lacks or retyped: {', '.join(missing)}"
        )
        severity = spec.severity
        return CheckOutcome(
            "schema", success, {"missing": missing}, threshold, detail, table=table, severity=severity
        )
    rows = int(result.get("element_count") or 0)
    bad = int(result.get("unexpected_count") or 0)
    examples = _examples(result.get("partial_unexpected_list"))
    observed: dict[str, Any] = {"unexpected_count": bad, "rows": rows, "examples": examples}
    if success:
        detail = f"{where}: all {rows} rows pass"
    else:
        problem = _PROBLEMS.get(spec.check, "fail")
        shown = ", ".join(repr(e) for e in examples)
        detail = f"{where}: {bad} of {rows} rows {problem}" + (f" (e.g. {shown})" if shown else "")
    return CheckOutcome(spec.check, success, observed, threshold, detail, table=table, severity=spec.severity)


def _context(docs_dir: Path) -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no usage statistics from a batch job
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    # GX pins this one module's logger at INFO (one line per ephemeral docs site): keep batch output quiet.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.add_data_docs_site(
        site_name=SITE,
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # GX is pinned: no fallback
    return context


def _validate(
    context: Any, source: Any, name: str, specs: Sequence[ExpectationSpec], frame: pd.DataFrame
) -> list[tuple[ExpectationSpec, bool, dict[str, Any]]]:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    asset = source.add_dataframe_asset(name=name)
    batch = asset.add_batch_definition_whole_dataframe(f"{name} window")
    suite = context.suites.add(gx.ExpectationSuite(name=f"xp.{name}"))
    by_id: dict[str, ExpectationSpec] = {}
    for spec in specs:
        added = suite.add_expectation(getattr(gxe, spec.expectation)(**dict(spec.kwargs)))
        by_id[str(added.id)] = spec
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(data=batch, suite=suite, name=f"xp.{name}")
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"xp.{name}", validation_definitions=[definition], result_format={"result_format": "SUMMARY"}
        )
    )
    run = checkpoint.run(batch_parameters={"dataframe": frame})
    found: list[tuple[ExpectationSpec, bool, dict[str, Any]]] = []
    for validation in run.run_results.values():
        for result in validation.results:
            spec = by_id[str(result.expectation_config.id)]
            details = dict(result.result or {})
            info = result.exception_info or {}
            if info.get("raised_exception"):
                details["exception"] = str(info.get("exception_message") or "unknown error").splitlines()[0]
            found.append((spec, bool(result.success), details))
    order = {id(spec): index for index, spec in enumerate(specs)}
    return sorted(found, key=lambda item: order[id(item[0])])


def run_suites(
    suites: Sequence[TableSuite],
    frames: Mapping[str, pd.DataFrame],
    schemas: Mapping[str, Sequence[str]],
    docs_dir: Path,
) -> GxRun:
    """Validate each suite's rows and schema; build the Data Docs under ``docs_dir``."""
    import pandas as pd

    docs_dir.mkdir(parents=True, exist_ok=True)
    context = _context(docs_dir)
    source = context.data_sources.add_pandas("xp_warehouse")
    outcomes: list[CheckOutcome] = []
    for suite in suites:
        if suite.schema:
            spec = ExpectationSpec(
                "schema",
                "ExpectColumnDistinctValuesToContainSet",
                {"column": "column_type", "value_set": list(suite.schema)},
            )
            frame = pd.DataFrame({"column_type": list(schemas.get(suite.table, ()))}, dtype=object)
            for found in _validate(context, source, f"{suite.table}_schema", [spec], frame):
                outcomes.append(outcome_of(suite.table, *found))
        rows = frames[suite.table]
        for found in _validate(context, source, suite.table, suite.expectations, rows):
            outcomes.append(outcome_of(suite.table, *found))
    try:
        context.build_data_docs(site_names=[SITE])
    except Exception:  # Data Docs are a courtesy: the outcomes stand without them
        logger.warning("could not build the GX Data Docs", exc_info=True)
        return GxRun(outcomes, None)
    index = docs_dir / "index.html"
    pages: dict[str, Path] = {}
    for suite in suites:
        html = sorted((docs_dir / "validations" / "xp" / suite.table).glob("**/*.html"))
        if html:
            pages[suite.table] = html[-1].relative_to(docs_dir)
    return GxRun(outcomes, index if index.exists() else None, pages)
