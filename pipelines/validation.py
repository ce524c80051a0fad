"""Data validation checks: the Great Expectations suites in expectations/ run on every staging table.

One blocking multi-asset check validates the eight staging tables in one step (parents before
children, quarantine moves in one transaction) and reports two checks per table:

* ``critical_expectations`` (blocking) - ERROR when the table blocks the run (too many failing
  rows, or too few resolving references): downstream assets do not run. WARN when rows were
  quarantined but the table is usable; passed when every row met every critical expectation.
* ``warning_expectations`` - WARN when a warning-level expectation failed; never blocks.

Great Expectations is imported only while the check runs (desist.validation.SuiteRunner).
"""
from pathlib import Path

import dagster as dg

from desist import validation
from desist.contract import TABLES
from pipelines.resources import WAREHOUSE_POOL, Warehouse, release_free_memory

STAGING = {table: dg.AssetKey(["staging", table]) for table in TABLES}
CRITICAL_CHECK = "critical_expectations"
WARNING_CHECK = "warning_expectations"
DATA_DOCS_FOLDER = "data-quality"


def data_docs_folder(settings) -> Path:
    """Where validation writes its Data Docs: beside the warehouse, so a run that stops before
    publishing leaves the published pages alone; the reports step copies them into the reports."""
    return settings.paths.warehouse.parent / DATA_DOCS_FOLDER


def _specs() -> list[dg.AssetCheckSpec]:
    specs = []
    for table, key in STAGING.items():
        specs.append(dg.AssetCheckSpec(
            CRITICAL_CHECK, asset=key, blocking=True,
            description=f"Critical expectations of expectations/{table}.json: failing rows move to "
                        "quarantine.rows; too many failing rows or unresolved references block the run."))
        specs.append(dg.AssetCheckSpec(
            WARNING_CHECK, asset=key,
            description=f"Warning-level expectations of expectations/{table}.json; reported, never blocking."))
    return specs


def _outcome_table(outcomes: list[validation.Outcome]) -> dg.MetadataValue:
    lines = ["| column | expectation | unexpected | of | sample |", "|---|---|---|---|---|"]
    lines += [f"| {o.column_name} | {o.expectation} | {o.unexpected_count} | {o.element_count} | "
              f"{', '.join(o.sample)} |" for o in outcomes]
    return dg.MetadataValue.md("\n".join(lines))


def check_results(run: validation.ValidationRun) -> list[dg.AssetCheckResult]:
    """Two results per table (critical, warning) from one validation run."""
    results = []
    for table, key in STAGING.items():
        checked = run.tables[table]
        critical = [o for o in checked.outcomes if o.severity == validation.CRITICAL and o.unexpected_count]
        warnings = [o for o in checked.outcomes if o.severity == validation.WARNING and not o.success]
        quarantined = run.quarantined[table]
        metadata = {
            "rows": checked.row_count,
            "failing_rows": len(checked.failing_rows),
            "failing_row_share": float(checked.failing_row_share),
            "rows_quarantined": quarantined,
            "expectations_failed": _outcome_table(critical),
        }
        if run.data_docs is not None:
            metadata["data_docs"] = dg.MetadataValue.path(str(run.data_docs))
        if checked.blocked:
            results.append(dg.AssetCheckResult(
                asset_key=key, check_name=CRITICAL_CHECK, passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description="Blocks the run: " + "; ".join(checked.blocking_reasons), metadata=metadata))
        elif critical:
            results.append(dg.AssetCheckResult(
                asset_key=key, check_name=CRITICAL_CHECK, passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"{quarantined} rows moved to quarantine.rows: "
                            + "; ".join(f"{o.label} ({o.unexpected_count} rows)" for o in critical),
                metadata=metadata))
        else:
            results.append(dg.AssetCheckResult(
                asset_key=key, check_name=CRITICAL_CHECK, passed=True, metadata=metadata))
        results.append(dg.AssetCheckResult(
            asset_key=key, check_name=WARNING_CHECK, passed=not warnings,
            severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(checked.warnings) or None,
            metadata={"expectations_failed": _outcome_table(warnings)}))
    return results


@dg.multi_asset_check(specs=_specs(), name="validate_staging", pool=WAREHOUSE_POOL,
                      description="Great Expectations suites (expectations/<table>.json) on the staging "
                                  "tables; failing rows to quarantine.rows, outcomes to results.data_quality.")
def validate_staging(context: dg.AssetCheckExecutionContext, warehouse: Warehouse):
    settings = warehouse.settings
    with warehouse.connect() as con:
        run = validation.validate_warehouse(
            con, settings, run_id=context.run.run_id,
            data_docs=data_docs_folder(settings))
    # The analysis tables that follow reach the run's peak memory: do not add to it the heap validation freed.
    release_free_memory()
    for table, seconds in run.seconds.items():
        context.log.info(f"validated {table} in {seconds:.1f} s; {run.quarantined[table]} rows quarantined")
    yield from check_results(run)
    if run.blocked:
        # Dagster's own message names only the checks; the evaluator needs table, column and rule.
        raise dg.Failure(
            description="Data validation blocked the run: " + " | ".join(run.blocking_reasons),
            metadata={"data_docs": str(run.data_docs)})
