"""What a finished run leaves behind, printed for the evaluator."""
from __future__ import annotations

import datetime as dt

import duckdb

from desist.config import Settings
from desist.warehouse import table_exists


def print_summary(settings: Settings) -> None:
    paths = settings.paths
    if paths.warehouse.exists():
        with duckdb.connect(str(paths.warehouse), read_only=True) as con:
            if table_exists(con, "raw", "ingest_summary"):
                print("\nIngest summary (rows per file):")
                print(frame_text(con.sql(
                    "SELECT table_name, file_name, status, rows_read, rows_loaded, rows_quarantined, rows_rejected "
                    "FROM raw.ingest_summary ORDER BY table_name, file_name"), "no landing files"))
            if table_exists(con, "results", "effects") and table_exists(con, "results", "programmes_analysed"):
                months = settings.follow_up.headline_months
                # Every programme, also those not estimated; whether the reports show the headline when
                # the study diagnostics have been assessed.
                verdict = ("SELECT programme_id, CASE WHEN bool_or(status = 'fail') THEN 'withheld' ELSE 'shown' END "
                           "AS headline FROM results.diagnostics GROUP BY programme_id"
                           if table_exists(con, "results", "diagnostics") else
                           "SELECT NULL::VARCHAR AS programme_id, NULL::VARCHAR AS headline")
                print(f"\nHeadline: {months}-month proven reoffending, participants vs matched comparison:")
                print(frame_text(con.execute(f"""
                    SELECT analysed.programme_id, analysed.status, n_treated AS participants,
                           round(treated_value, 3) AS participants_rate, round(comparison_value, 3) AS comparison_rate,
                           round(difference, 3) AS difference, round(ci_lower, 3) AS ci_lower_95,
                           round(ci_upper, 3) AS ci_upper_95, gate_status, verdict.headline
                    FROM results.programmes_analysed AS analysed
                    LEFT JOIN results.effects AS effect
                      ON effect.programme_id = analysed.programme_id AND measure = 'reoffended'
                     AND estimator = 'matched' AND window_months = ?
                    LEFT JOIN ({verdict}) AS verdict ON verdict.programme_id = analysed.programme_id
                    ORDER BY analysed.programme_id""", [months]), "no programme analysed"))
    print("\nOutputs:")
    print(f"  warehouse: {paths.warehouse}")
    if paths.research.exists():
        print(f"  research database: {paths.research}")
    if paths.reports.exists():
        for report in sorted(paths.reports.glob("*.html")):
            print(f"  report: {report}")


def frame_text(result: duckdb.DuckDBPyConnection | duckdb.DuckDBPyRelation, when_empty: str) -> str:
    frame = result.df()
    return frame.to_string(index=False) if len(frame) else f"  ({when_empty})"


def print_status(settings: Settings, limit: int = 10) -> None:
    """The last runs and their outcome, then quarantine counts from the published database.

    The published file is read, not the warehouse, so status works while a run is writing.
    """
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(limit=limit)
        print(f"Last {len(records)} runs:")
        for record in records:
            run = record.dagster_run
            started = record.start_time and dt.datetime.fromtimestamp(record.start_time, dt.timezone.utc)
            ended = record.end_time and dt.datetime.fromtimestamp(record.end_time, dt.timezone.utc)
            took = f"{ended - started}" if started and ended else "-"
            when = started.strftime("%Y-%m-%d %H:%M:%S UTC") if started else "not started"
            print(f"  {run.run_id[:8]}  {run.status.value:<10} {when}  took {took}")
    research = settings.paths.research
    if not research.exists():
        print(f"No published database yet at {research}.")
        return
    with duckdb.connect(str(research), read_only=True) as con:
        print(f"\nQuarantined rows (from {research}):")
        print(frame_text(con.sql(
            "SELECT table_name, stage, reason, rows FROM quarantine_summary ORDER BY table_name, stage, reason"
        ), "none"))
