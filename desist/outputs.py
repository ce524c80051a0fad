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
    """The last runs, their outcome and why a run failed; the files refused or partly quarantined; quarantine counts.

    A run is an evaluation as `desist run` or the sensors start it: its `evaluation` run and the
    programme and publishing runs that followed it (pipelines/stages.py); it failed if any of them did.

    Files come from the warehouse when no run holds it, else from the published database; the
    quarantine counts from the published database, which readers may open while a run writes.
    """
    import dagster as dg

    from desist.runs import BATCH_TAG, EVALUATION_JOB_NAME, PUBLISH_JOB_NAME, failure_reason, recover_stale_runs

    with dg.DagsterInstance.get() as instance:
        for note in recover_stale_runs(instance):
            print(f"desist: {note}")
        # One line per evaluation: its first run (the `evaluation` job) and the runs that followed it.
        records = instance.get_run_records(filters=dg.RunsFilter(job_name=EVALUATION_JOB_NAME), limit=limit)
        print(f"Last {len(records)} runs:")
        for record in records:
            evaluation = [record, *instance.get_run_records(filters=dg.RunsFilter(tags={BATCH_TAG: record.dagster_run.run_id}))]
            stopped = next((r for r in evaluation if r.dagster_run.status in (
                dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)), None)
            status = (stopped.dagster_run.status if stopped else
                      dg.DagsterRunStatus.SUCCESS if any(r.dagster_run.job_name == PUBLISH_JOB_NAME
                                                         and r.dagster_run.status == dg.DagsterRunStatus.SUCCESS
                                                         for r in evaluation)
                      else dg.DagsterRunStatus.STARTED)
            ends = [r.end_time for r in evaluation]
            started = record.start_time and dt.datetime.fromtimestamp(record.start_time, dt.timezone.utc)
            ended = (status != dg.DagsterRunStatus.STARTED and all(ends)
                     and dt.datetime.fromtimestamp(max(ends), dt.timezone.utc))
            took = f"{ended - started}" if started and ended else "-"
            when = started.strftime("%Y-%m-%d %H:%M:%S UTC") if started else "not started"
            print(f"  {record.dagster_run.run_id[:8]}  {status.value:<10} {when}  took {took}")
            if stopped:
                events = instance.all_logs(stopped.dagster_run.run_id, of_type={
                    dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE,
                    dg.DagsterEventType.RUN_CANCELED})
                programme = stopped.dagster_run.tags.get("dagster/partition")
                reason, *more = ((f"programme {programme}: " if programme else "") + failure_reason(events)).splitlines()
                print(f"            reason: {reason}")
                for line in more:
                    print(f"              {line}")
    print_file_problems(settings)
    research = settings.paths.research
    if not research.exists():
        print(f"No published database yet at {research}.")
        return
    with duckdb.connect(str(research), read_only=True) as con:
        print(f"\nQuarantined rows (from {research}):")
        print(frame_text(con.sql(
            "SELECT table_name, stage, reason, rows FROM quarantine_summary ORDER BY table_name, stage, reason"
        ), "none"))


FILE_PROBLEMS = """
    SELECT file_name, status, rows_read, rows_quarantined, rows_rejected, reason
    FROM {table}
    WHERE status IN ('rejected', 'ignored') OR rows_quarantined > 0
    ORDER BY status DESC, file_name"""


def print_file_problems(settings: Settings) -> None:
    """Landing files of the latest ingest that were refused, ignored or partly quarantined, with why."""
    sources = [(settings.paths.warehouse, "raw.ingest_summary"), (settings.paths.research, "ingest_summary")]
    for path, table in sources:
        if not path.exists():
            continue
        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.IOException:  # a run is writing the warehouse
            continue
        with con:
            schema, _, name = table.rpartition(".")
            if not table_exists(con, schema or "main", name):
                continue
            frame = con.sql(FILE_PROBLEMS.format(table=table)).df()
        print(f"\nFiles refused, ignored or partly quarantined (from {path}):")
        if frame.empty:
            print("  (none)")
        for row in frame.itertuples():
            print(f"  {row.file_name}  {row.status}: {row.rows_read} rows read, {row.rows_quarantined} quarantined, "
                  f"{row.rows_rejected} rejected; {row.reason}")
        return
