"""DuckDB helpers: open the warehouse, run the layered SQL files in sql/."""
from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd

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
    con.execute("SET enable_progress_bar = false")  # a run's output is its own lines, not DuckDB's bars
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


def frame_with_categories(con: duckdb.DuckDBPyConnection, query: str, params: dict | None = None) -> pd.DataFrame:
    """The rows of ``query`` (in its order) as a DataFrame whose text columns are pandas
    categoricals, levels sorted as Python sorts them, instead of one Python string per row.

    A programme's hundreds of thousands of people hold a handful of distinct codes per text
    column; as categoricals they convert from DuckDB without making a string object per row and
    the models encode them without comparing text again. The rows are kept in a temporary table
    while the levels are read, so the query runs once.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE category_rows AS {query}", params)
    try:
        columns = con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'temp' "
                              "AND table_name = 'category_rows' ORDER BY column_index").fetchall()
        text = [name for name, data_type in columns if data_type == "VARCHAR"]
        distinct = [f"list(DISTINCT {quoted(name)}) FILTER ({quoted(name)} IS NOT NULL)" for name in text]
        levels = con.execute(f"SELECT {', '.join(distinct)} FROM temp.category_rows").fetchone() if text else ()
        level_of = {name: sorted(values) for name, values in zip(text, levels) if values}
        select = ", ".join(
            f"{quoted(name)}::ENUM({', '.join(literal(level) for level in level_of[name])}) AS {quoted(name)}"
            if name in level_of else quoted(name) for name, _ in columns)
        return con.execute(f"SELECT {select} FROM temp.category_rows").df()
    finally:
        con.execute("DROP TABLE IF EXISTS temp.category_rows")


def quoted(identifier: str) -> str:
    """An SQL identifier in double quotes."""
    return '"' + identifier.replace('"', '""') + '"'


def by_index_view(cohort: str, by_index: str) -> str:
    """The SELECT giving a table stored once per person and index date (``by_index``) to every programme
    whose cohort holds that person and index date: one row per programme x person in ``cohort``, its
    programme, person, treatment and index date first."""
    return (
        "SELECT cohort.programme_id, cohort.person_id, cohort.treated, cohort.index_date,\n"
        "       by_index.* EXCLUDE (person_id, index_date)\n"
        f"FROM {cohort} AS cohort\n"
        f"JOIN {by_index} AS by_index USING (person_id, index_date)"
    )


def literal(text: str) -> str:
    """A text value as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
