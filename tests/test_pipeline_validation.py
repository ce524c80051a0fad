"""The validation check materialised by Dagster after ingest, from landing CSV files to quarantine."""
from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pandas as pd
from test_validation import clean_tables

from desist import warehouse
from desist.runs import failure_reason
from desist.config import PROJECT_ROOT
from desist.contract import TABLES
from pipelines.definitions import build_definitions
from pipelines.ingest import landing_files, staging_tables
from pipelines.resources import WAREHOUSE_POOL, Warehouse
from pipelines.validation import CRITICAL_CHECK, WARNING_CHECK, validate_staging

OFFENCES = dg.AssetKey(["staging", "offences"])


@dg.asset(deps=[OFFENCES])
def offences_counted(warehouse: Warehouse) -> dg.MaterializeResult:
    """Stands in for the analysis assets that read staging after validation."""
    with warehouse.connect(read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM staging.offences").fetchall()[0][0]
    return dg.MaterializeResult(metadata={"rows": rows})


def write_landing(settings, tables: dict[str, pd.DataFrame]) -> None:
    for name, frame in tables.items():
        frame.to_csv(settings.paths.landing / f"{name}.csv", index=False, date_format="%Y-%m-%d")


def run_pipeline(settings) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [landing_files, staging_tables, validate_staging, offences_counted],
        resources={"warehouse": Warehouse(config_file=str(settings.source))},
        raise_on_error=False,
    )


def evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    found = [e.event_specific_data for e in result.all_events
             if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    return {(e.asset_key.path[-1], e.check_name): e for e in found}


def test_failing_rows_are_quarantined_and_the_run_completes(make_settings):
    settings = make_settings()
    tables = clean_tables()
    tables["offences"].loc[4, "proven_date"] = pd.Timestamp("2019-05-01")  # proven before committed
    tables["offences"].loc[8, "proven_date"] = pd.Timestamp("2025-07-01")  # after the data cut-off
    write_landing(settings, tables)

    result = run_pipeline(settings)

    assert result.success
    assert result.asset_materializations_for_node("offences_counted")[0].metadata["rows"].value == 38
    checks = evaluations(result)
    assert len(checks) == 2 * len(TABLES)
    offences = checks[("offences", CRITICAL_CHECK)]
    assert (offences.passed, offences.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert offences.description == (
        "2 rows moved to quarantine.rows: offences.proven_date expect_column_values_to_be_between (1 rows); "
        "offences.proven_date,offence_date expect_column_pair_values_a_to_be_greater_than_b (1 rows)")
    assert offences.metadata["rows_quarantined"].value == 2
    assert [key for key, e in checks.items() if not e.passed] == [("offences", CRITICAL_CHECK)]
    with warehouse.connect(settings, read_only=True) as con:
        assert con.execute("""
            SELECT table_name, source_file, source_row, column_name, raw_value, reason
            FROM quarantine.rows WHERE stage = 'validation' ORDER BY source_row""").fetchall() == [
            ("offences", "offences.csv", 5, "proven_date,offence_date", "2019-05-01, 2019-06-01",
             "expect_column_pair_values_a_to_be_greater_than_b"),
            ("offences", "offences.csv", 9, "proven_date", "2025-07-01", "expect_column_values_to_be_between"),
        ]
        assert con.execute("SELECT count(*) FROM staging.offences WHERE source_row IN (5, 9)").fetchall() == [(0,)]
        assert con.execute("""SELECT status, count(*) FROM results.data_quality
                              WHERE table_name = 'offences' AND column_name IS NOT NULL
                                AND unexpected_count > 0
                              GROUP BY status""").fetchall() == [("quarantined", 2)]
    assert (settings.paths.warehouse.parent / "data-quality" / "index.html").exists()


def test_a_blocking_failure_stops_downstream_assets_and_names_table_column_and_expectation(make_settings):
    settings = make_settings()
    tables = clean_tables()
    tables["offences"].loc[[0, 1, 2, 3], "person_id"] = "S999"  # 36 of 40 resolve: below 99%
    write_landing(settings, tables)

    result = run_pipeline(settings)

    assert not result.success
    assert [e.asset_key for e in result.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey("offences_counted")] == []
    assert "offences_counted" not in {e.step_key for e in result.all_events if e.is_step_start}
    blocked = evaluations(result)[("offences", CRITICAL_CHECK)]
    reason = ("offences.person_id expect_column_values_to_be_in_set: not found in people.person_id for 4 of 40 "
              "rows; 90.00% resolve, below min_reference_rate")
    assert (blocked.passed, blocked.severity, blocked.blocking) == (False, dg.AssetCheckSeverity.ERROR, True)
    assert blocked.description == f"Blocks the run: {reason}"
    message = failure_reason(result.all_events)  # what `desist run` prints
    assert message == f"step 'validate_staging' failed: Data validation blocked the run: {reason}"
    with warehouse.connect(settings, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM staging.offences").fetchall() == [(40,)]
        assert con.execute("SELECT count(*) FROM quarantine.rows WHERE stage = 'validation'").fetchall() == [(0,)]
        assert con.execute("""SELECT column_name, expectation, status, unexpected_count FROM results.data_quality
                              WHERE table_name = 'offences' AND unexpected_count > 0 ORDER BY ALL""").fetchall() == [
            ("person_id", "expect_column_values_to_be_in_set", "failed", 4),
            (None, "max_failing_row_share", "failed", 4),
        ]


def test_the_check_is_blocking_in_the_warehouse_pool_and_in_the_definitions(make_settings):
    specs = {(spec.asset_key.path[-1], spec.name): spec for spec in validate_staging.check_specs}
    assert set(specs) == {(t, name) for t in TABLES for name in (CRITICAL_CHECK, WARNING_CHECK)}
    assert {name: spec.blocking for (_, name), spec in specs.items()} == {CRITICAL_CHECK: True, WARNING_CHECK: False}
    assert validate_staging.op.pool == WAREHOUSE_POOL
    assert "warehouse" in validate_staging.required_resource_keys
    definitions = build_definitions(str(make_settings().source))
    checks = definitions.resolve_asset_graph().asset_check_keys
    assert len([key for key in checks if key.asset_key.path[0] == "staging"]) == 2 * len(TABLES)


def test_loading_the_definitions_does_not_import_great_expectations():
    code = "import sys, pipelines.definitions; print('great_expectations' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT,
                            check=True)
    assert result.stdout.strip() == "False"
