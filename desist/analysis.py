"""The analysis layer: cohort, covariates, engagement and proven-reoffending measures.

Each table is one statement file in sql/analysis/ that reads staging tables (and earlier
analysis tables) and the evaluation settings through SQL variables; a table stored once per person
and index date is given to the programmes by a view (VIEWS_BY_INDEX). The Dagster assets and
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

# The people analysed for a programme: complete headline follow-up and every covariate present.
ANALYSED_PEOPLE = """
    SELECT covariates.*
    FROM analysis.covariates AS covariates
    JOIN analysis.measures AS headline
      USING (programme_id, person_id, index_date)
    WHERE covariates.programme_id = $programme_id
      AND covariates.covariates_complete
      AND headline.window_months = getvariable('headline_months')
      AND headline.complete
    ORDER BY covariates.person_id
"""


def build_table(con: duckdb.DuckDBPyConnection, name: str) -> int:
    """(Re)build one analysis table from its statement file; returns the row count of the table stored
    (:func:`stored_table`: counting a view by index would join every programme's rows again)."""
    table = TABLES_BY_NAME[name]
    check_inputs_exist(con, table)
    if name in VIEWS_BY_INDEX:
        _drop_table_now_a_view(con, name)
    warehouse.run_sql(con, table.sql_file)
    if name in VIEWS_BY_INDEX:
        con.execute(f"CREATE OR REPLACE VIEW analysis.{name} AS "
                    + warehouse.by_index_view("analysis.cohort", stored_table(name)))
    if name == "covariates":
        check_configured_covariates(con)
    return con.execute(f"SELECT count(*) FROM {stored_table(name)}").fetchall()[0][0]


# Views giving each programme the rows of a table stored once per person and index date: the statement
# file builds analysis.<name>_by_index, and build_table the view analysis.<name> on it (by_index_view).
VIEWS_BY_INDEX = ("covariates", "measures", "negative_controls", "survival")


def stored_table(name: str) -> str:
    """The table analysis.<name>'s statement file stores: analysis.<name>_by_index for a view by index."""
    return f"analysis.{name}_by_index" if name in VIEWS_BY_INDEX else f"analysis.{name}"


def _drop_table_now_a_view(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """A warehouse built by an earlier desist holds analysis.<name> as a table, which a view cannot replace."""
    if con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                   "AND schema_name = 'analysis' AND table_name = ?", [name]).fetchall()[0][0]:
        con.execute(f"DROP TABLE analysis.{name}")


def build_analysis(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Build every analysis table in order; returns the row count of each (build_table)."""
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
        keys = {"programme_id", "person_id", "treated", "index_date", "covariates_complete", "missing_covariate"}
        raise ValueError(
            f"evaluation.yaml covariates {unknown} are not columns of analysis.covariates; "
            f"the covariates available are {sorted(available - keys)}"
        )


def unanalysed_reason(con: duckdb.DuckDBPyConnection, programme_id: str) -> str | None:
    """Why a programme has no participants or no comparison people left to analyse, in one line.

    Read from analysis.attrition: the step at which a group runs out, in words. When it is
    follow-up, the line says which data cut-off the first of them would need; when it is a
    covariate, it names every complete-case covariate that removed people of that group.
    """
    steps = con.execute(
        "SELECT cohort_group, step, people, reason FROM analysis.attrition WHERE programme_id = ? "
        "ORDER BY cohort_group DESC, step_number", [programme_id]).fetchall()
    for group, words in (("participants", "participant"), ("comparison", "comparison person")):
        group_steps = [(step, people, reason) for g, step, people, reason in steps if g == group]
        empty = next(((step, reason) for step, people, reason in group_steps if people == 0), None)
        if empty is None:
            continue
        step, reason = empty
        if step == "enrolled":
            return f"{programme_id}: no one is enrolled in the programme"
        if step == "complete_follow_up":
            needed = con.execute(
                "SELECT min(proof_deadline) FROM analysis.measures WHERE programme_id = ? AND treated = ? "
                "AND window_months = getvariable('headline_months')", [programme_id, group == "participants"]
            ).fetchone()[0]
            return (f"{programme_id}: no {words} has complete follow-up: {reason}; the first would need a "
                    f"data cut-off of {needed} or later (or a shorter follow_up.headline_months or "
                    "waiting_period_months)")
        if step.startswith("covariate_") or step == "analysed":
            names = [s.removeprefix("covariate_") for s, _, _ in group_steps if s.startswith("covariate_")]
            return (f"{programme_id}: no {words} with complete follow-up has every complete-case covariate; "
                    f"missing: {', '.join(names)} (drop them from covariates, or set covariates.missing "
                    "to missing_indicator for them)")
        return f"{programme_id}: no {words} left: {reason}"
    return None


def not_estimated_reasons(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Why each programme without an estimate has none: one line each, naming the programme.

    A programme nobody could be analysed for says why (:func:`unanalysed_reason`: the step its
    people ran out at, the cut-off or covariates it would need); otherwise the effect model's own
    message does.
    """
    rows = con.execute("SELECT programme_id, status, message FROM results.programmes_analysed "
                       "WHERE status <> 'ok' ORDER BY programme_id").fetchall()
    reasons = {}
    for programme_id, status, message in rows:
        label = status.replace("_", " ")  # e.g. "model failed: ...", unless the message says it already
        said = message if message.lower().startswith(label) else f"{label}: {message}"
        reasons[programme_id] = unanalysed_reason(con, programme_id) or f"{programme_id}: {said}"
    return reasons
