"""What a finished run leaves behind, printed for the evaluator."""
from __future__ import annotations

import datetime as dt

import duckdb

from desist.config import Settings


def print_summary(settings: Settings) -> None:
    paths = settings.paths
    if paths.warehouse.exists():
        with duckdb.connect(str(paths.warehouse), read_only=True) as con:
            has_summary = con.execute(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = 'raw' AND table_name = 'ingest_summary'"
            ).fetchall()[0][0]
            if has_summary:
                print("\nIngest summary (rows per file):")
                print(con.sql(
                    "SELECT table_name, file_name, status, rows_read, rows_loaded, rows_quarantined "
                    "FROM raw.ingest_summary ORDER BY table_name, file_name"
                ).df().to_string(index=False))
    print("\nOutputs:")
    print(f"  warehouse: {paths.warehouse}")
    if paths.research.exists():
        print(f"  research database: {paths.research}")
    if paths.reports.exists():
        for report in sorted(paths.reports.glob("*.html")):
            print(f"  report: {report}")


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
        print(con.sql(
            "SELECT table_name, stage, reason, rows FROM quarantine_summary ORDER BY table_name, stage, reason"
        ).df().to_string(index=False))
