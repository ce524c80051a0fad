"""The analysis layer: cohort, covariates, engagement and proven-reoffending measures.

Each table is one statement file in sql/analysis/ that reads staging tables (and earlier
analysis tables) and the evaluation settings through SQL variables. The Dagster assets and
the tests both build through this module, so they run exactly the same statements.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb

from desist import warehouse


@dataclass(frozen=True)
class AnalysisTable:
    name: str
    description: str
    staging_inputs: tuple[str, ...]
    analysis_inputs: tuple[str, ...] = ()

    @property
    def sql_file(self) -> str:
        return f"analysis/{self.name}.sql"


# In build order: each table reads only staging tables and tables listed before it.
ANALYSIS_TABLES: tuple[AnalysisTable, ...] = (
    AnalysisTable(
        "enrolment_links",
        "Enrolments paired with the index events whose enrolment window they start in.",
        ("participation", "index_events", "programmes"),
    ),
    AnalysisTable(
        "cohort",
        "Participants and comparison pool per programme, one index event per person.",
        ("index_events", "programmes", "participation"),
        ("enrolment_links",),
    ),
    AnalysisTable(
        "covariates",
        "Characteristics at the index date per programme and person.",
        ("index_events", "offences", "people"),
        ("cohort",),
    ),
    AnalysisTable(
        "engagement",
        "Sessions attended, completion and status of each participant's enrolment.",
        ("participation",),
        ("cohort",),
    ),
    AnalysisTable(
        "measures",
        "Proven reoffending per programme, person and fixed follow-up window.",
        ("offences",),
        ("cohort",),
    ),
    AnalysisTable(
        "follow_up_completeness",
        "People measured and excluded as incomplete per programme, group and window.",
        (),
        ("measures",),
    ),
    AnalysisTable(
        "negative_controls",
        "Offending before the index date per programme and person: outcomes taking part cannot change.",
        ("offences",),
        ("cohort",),
    ),
    AnalysisTable(
        "survival",
        "Time to first proven reoffence or censoring at the data cut-off.",
        ("offences",),
        ("cohort",),
    ),
    AnalysisTable(
        "attrition",
        "People remaining, lost and why at each step from enrolment to analysis.",
        ("participation", "index_events", "programmes"),
        ("enrolment_links", "measures", "covariates"),
    ),
)
TABLES_BY_NAME = {table.name: table for table in ANALYSIS_TABLES}


def build_table(con: duckdb.DuckDBPyConnection, name: str) -> int:
    """(Re)build one analysis table from its statement file; returns its row count."""
    table = TABLES_BY_NAME[name]
    check_inputs_exist(con, table)
    warehouse.run_sql(con, table.sql_file)
    if name == "covariates":
        check_configured_covariates(con)
    return con.execute(f"SELECT count(*) FROM analysis.{name}").fetchall()[0][0]


def build_analysis(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Build every analysis table in order; returns the row count of each."""
    return {table.name: build_table(con, table.name) for table in ANALYSIS_TABLES}


def check_inputs_exist(con: duckdb.DuckDBPyConnection, table: AnalysisTable) -> None:
    present = {
        row[0] for row in con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables"
        ).fetchall()
    }
    missing = [
        *(f"staging.{name}" for name in table.staging_inputs if f"staging.{name}" not in present),
        *(f"analysis.{name}" for name in table.analysis_inputs if f"analysis.{name}" not in present),
    ]
    if missing:
        raise RuntimeError(
            f"analysis.{table.name} reads {', '.join(missing)}, which the warehouse does not hold yet: "
            "ingest the landing files and build the analysis tables in order"
        )


def check_configured_covariates(con: duckdb.DuckDBPyConnection) -> None:
    """Fail when evaluation.yaml names a covariate that analysis.covariates does not provide.

    Without this check such a covariate would silently mark everyone as incomplete.
    """
    configured = con.execute("SELECT getvariable('covariates')").fetchall()[0][0] or []
    available = {
        row[0] for row in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'analysis' AND table_name = 'covariates'"
        ).fetchall()
    }
    unknown = [name for name in configured if name not in available]
    if unknown:
        keys = {"programme_id", "person_id", "treated", "index_date", "covariates_complete"}
        raise ValueError(
            f"evaluation.yaml covariates {unknown} are not columns of analysis.covariates; "
            f"the covariates available are {sorted(available - keys)}"
        )
