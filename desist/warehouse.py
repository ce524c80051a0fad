"""DuckDB helpers: open the warehouse, run the layered SQL files in sql/."""
from __future__ import annotations

import os
from pathlib import Path

import duckdb

from desist.config import PROJECT_ROOT, Settings

SQL_DIR = PROJECT_ROOT / "sql"
SCHEMAS = ("raw", "quarantine", "staging", "analysis", "results")


def connect(settings: Settings, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse with its schemas and the evaluation settings as SQL variables.

    SQL files read settings through ``getvariable('name')`` so the same statement serves
    every evaluation without string formatting. DuckDB's memory and threads follow
    evaluation.yaml ``warehouse:`` (``limit_resources``).
    """
    path = Path(settings.paths.warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    limit_resources(con, settings)
    if not read_only:
        for schema in SCHEMAS:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    set_variables(con, settings)
    return con


def limit_resources(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """DuckDB's memory limit and worker threads for this database (every usable core by default).

    Left alone, DuckDB may take 80% of the machine's memory; under the limit it spills large
    sorts, joins and aggregates to ``<warehouse>.tmp`` instead.
    """
    engine = settings.warehouse
    threads = engine.threads or len(os.sched_getaffinity(0))
    con.execute(f"SET memory_limit = '{engine.memory_limit}'")
    con.execute(f"SET threads = {int(threads)}")
    # Hand memory DuckDB freed back to the system in the background, so the Python steps that
    # follow a large query (validation, the models) do not add their peak to DuckDB's.
    con.execute("SET allocator_background_threads = true")


def set_variables(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    values = {
        "data_cutoff": settings.data_cutoff,
        "index_from": settings.cohort.index_from,
        "index_to": settings.cohort.index_to,
        "enrolment_days_before": settings.cohort.enrolment_days_before,
        "enrolment_days_after": settings.cohort.enrolment_days_after,
        "waiting_period_months": settings.follow_up.waiting_period_months,
        "headline_months": settings.follow_up.headline_months,
        "windows_months": settings.follow_up.windows_months,
        "disclosure_min_count": settings.disclosure.min_count,
        "covariates": settings.covariates.all,
        "complete_case_covariates": settings.covariates.complete_case,
    }
    for name, value in values.items():
        con.execute(f"SET VARIABLE {name} = ?", [value])


def sql_text(relative_path: str) -> str:
    """The text of one statement file, e.g. ``sql_text("analysis/cohort.sql")``."""
    return (SQL_DIR / relative_path).read_text()


def run_sql(con: duckdb.DuckDBPyConnection, relative_path: str) -> None:
    con.execute(sql_text(relative_path))


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                       [schema, table]).fetchall()[0][0] > 0
