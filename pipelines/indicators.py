"""Success-criteria indicators per programme and cohort quarter: results.indicators.

Three SQL assets prepare the per-person and per-response inputs (sql/results/indicator_*.sql);
the indicators asset computes estimates, intervals and statuses with models/indicators.py.
"""

import dagster as dg
import duckdb
import pandas as pd

from desist import warehouse as wh
from desist.config import Settings
from models.indicators import compute_indicators
from pipelines.resources import WAREHOUSE_POOL, Warehouse

GROUP = "indicators"


def _key(*path: str) -> dg.AssetKey:
    return dg.AssetKey(list(path))


EFFECTS = _key("results", "effects")
INDICATOR_ASSESSMENTS = _key("results", "indicator_assessments")
INDICATOR_ENROLMENTS = _key("results", "indicator_enrolments")
INDICATOR_FEEDBACK = _key("results", "indicator_feedback")
INDICATORS = _key("results", "indicators")

PREPARATION = {
    INDICATOR_ASSESSMENTS: (
        [_key("staging", "assessments"), _key("staging", "participation"), _key("staging", "programmes")],
        "Baseline, exit and follow-up outcomes per participant and programme, with the per-person "
        "inputs of the life-skills, community-integration, employment and accommodation criteria.",
    ),
    INDICATOR_ENROLMENTS: (
        [_key("staging", "participation"), _key("staging", "mentors"), _key("staging", "people"),
         _key("staging", "programmes"), _key("analysis", "cohort"), _key("analysis", "measures")],
        "Per enrolment: completion, attendance, mentoring-relationship length, mentor-participant "
        "compatibility and headline-window reoffending.",
    ),
    INDICATOR_FEEDBACK: (
        [_key("staging", "feedback"), _key("staging", "programmes")],
        "Stakeholder survey responses with the quarter they belong to.",
    ),
}


def prepare_table(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Build one input table from sql/results/<table>.sql; returns its row count."""
    wh.run_sql(con, f"results/{table}.sql")
    return con.execute(f"SELECT count(*) FROM results.{table}").fetchall()[0][0]


def prepare(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Build the three input tables; returns their row counts."""
    return {key.path[1]: prepare_table(con, key.path[1]) for key in PREPARATION}


def write_indicators(con: duckdb.DuckDBPyConnection, settings: Settings) -> pd.DataFrame:
    """Compute every indicator from the prepared inputs and write results.indicators.

    The reoffending criterion reads results.effects; where that table does not exist yet its
    rows read not_enough_data with a note saying so.
    """
    effects = con.sql("SELECT * FROM results.effects").df() if wh.table_exists(con, "results", "effects") else None
    table = compute_indicators(
        settings.success_criteria,
        programmes=con.sql("SELECT programme_id FROM staging.programmes ORDER BY programme_id").df()[
            "programme_id"].tolist(),
        assessments=con.sql("SELECT * FROM results.indicator_assessments").df(),
        enrolments=con.sql("SELECT * FROM results.indicator_enrolments").df(),
        feedback=con.sql("SELECT * FROM results.indicator_feedback").df(),
        effects=effects,
        min_count=settings.disclosure.min_count,
        reoffending_window_months=settings.follow_up.headline_months,
    ).to_frame()
    con.register("indicator_rows", table)
    try:
        wh.run_sql(con, "results/indicators.sql")
    finally:
        con.unregister("indicator_rows")
    return table


def _preparation_asset(key: dg.AssetKey, deps: list[dg.AssetKey], description: str) -> dg.AssetsDefinition:
    table = key.path[1]

    @dg.asset(key=key, deps=deps, pool=WAREHOUSE_POOL, group_name=GROUP, description=description)
    def _prepare(warehouse: Warehouse) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            rows = prepare_table(con, table)
        return dg.MaterializeResult(metadata={"rows": rows})

    return _prepare


indicator_assessments = _preparation_asset(INDICATOR_ASSESSMENTS, *PREPARATION[INDICATOR_ASSESSMENTS])
indicator_enrolments = _preparation_asset(INDICATOR_ENROLMENTS, *PREPARATION[INDICATOR_ENROLMENTS])
indicator_feedback = _preparation_asset(INDICATOR_FEEDBACK, *PREPARATION[INDICATOR_FEEDBACK])


@dg.asset(
    key=INDICATORS,
    deps=[*PREPARATION, EFFECTS, _key("staging", "programmes")],
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
    description="Success-criteria and descriptive indicators per programme, for the whole period and "
                "per cohort quarter: estimate, 95% CI, n, target and status (met / not met / "
                "inconclusive / not enough data), with disclosure control applied.",
)
def indicators(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        if not wh.table_exists(con, "results", "effects"):
            context.log.warning("results.effects does not exist: the reoffending criterion reads not_enough_data")
        table = write_indicators(con, warehouse.settings)
    whole = table[table["period"] == "all"]
    return dg.MaterializeResult(metadata={
        "rows": len(table),
        "quarters": int(table.loc[table["period"] != "all", "period"].nunique()),
        **{f"criteria/{status}": int((whole["status"] == status).sum())
           for status in ("met", "not_met", "inconclusive", "not_enough_data")},
    })
