"""Matched comparison, effects and survival per programme: read the analysis tables, call models/, write results."""
import dagster as dg
import duckdb
import pandas as pd

from desist import warehouse as wh
from desist.analysis import ANALYSED_PEOPLE, not_estimated_reasons, unanalysed_reason
from desist.config import Settings
from models.evaluation import MatchingSpec, evaluate_effects, evaluate_survival
from pipelines.resources import WAREHOUSE_POOL, Warehouse

EFFECT_TABLES = ("programmes_analysed", "propensity_model", "matched_sets", "balance", "sample_sizes",
                 "unmatched", "effects")
SURVIVAL_TABLES = ("km_curves", "km_horizons", "logrank", "cox", "ph_tests", "rmst")


def matching_spec(settings: Settings) -> MatchingSpec:
    covariates = settings.covariates
    return MatchingSpec(
        covariates=covariates.all,
        categorical=covariates.categorical,
        ratio=settings.matching.ratio,
        replace=settings.matching.replace,
        caliper=settings.matching.caliper,
        exact=settings.matching.exact,
        missing_indicator=covariates.missing_indicator,
    )


def programmes(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute("SELECT programme_id, name FROM staging.programmes ORDER BY programme_id").fetchall()


def write_results(con: duckdb.DuckDBPyConnection, schema_sql: str, frames: dict[str, list[pd.DataFrame]]) -> None:
    """Recreate the results tables declared in sql/<schema_sql>, then add the rows of every programme."""
    wh.run_sql(con, schema_sql)
    for table, parts in frames.items():
        if not parts:
            continue
        con.register("frame", pd.concat(parts, ignore_index=True))
        con.execute(f"INSERT INTO results.{table} BY NAME SELECT * FROM frame")
        con.unregister("frame")


@dg.asset(
    key=dg.AssetKey(["results", "effects"]),
    deps=[dg.AssetKey(["analysis", "covariates"]), dg.AssetKey(["analysis", "measures"]),
          dg.AssetKey(["staging", "programmes"])],
    group_name="effects",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "python"},
    description="Propensity model, matched sets, balance and effects (matched, naive, adjusted) per programme.",
)
def matched_effects(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    settings = warehouse.settings
    spec = matching_spec(settings)
    frames: dict[str, list[pd.DataFrame]] = {table: [] for table in EFFECT_TABLES}
    with warehouse.connect() as con:
        for programme_id, name in programmes(con):
            people = con.execute(ANALYSED_PEOPLE, {"programme_id": programme_id}).df()
            measures = con.execute(
                "SELECT person_id, window_months, reoffended, frequency, days_to_first, custodial_reoffence "
                "FROM analysis.measures WHERE programme_id = $programme_id",
                {"programme_id": programme_id},
            ).df()
            result = evaluate_effects(
                programme_id, people, measures, spec,
                windows=settings.follow_up.windows_months, headline_window=settings.follow_up.headline_months,
                min_treated=settings.diagnostics.min_participants,
            )
            if result.status == "not_estimated":
                result.message = unanalysed_reason(con, programme_id) or result.message
            n_treated = int(people["treated"].sum())
            context.log.info(f"{programme_id}: {result.status}; {n_treated} participants analysed of {len(people)}")
            frames["programmes_analysed"].append(pd.DataFrame({
                "programme_id": [programme_id], "name": [name], "status": [result.status],
                "message": [result.message], "n_treated_analysed": [n_treated],
                "n_comparison_pool": [len(people) - n_treated],
            }))
            for table in EFFECT_TABLES[1:]:
                frame = getattr(result, table)
                if not frame.empty:
                    frames[table].append(frame.assign(programme_id=programme_id)[["programme_id", *frame.columns]])
        write_results(con, "results/programme_effects.sql", frames)
        if not any((frame["status"] == "ok").any() for frame in frames["programmes_analysed"]):
            # Publishing now would replace good outputs with empty ones: stop, one line per programme.
            reasons = not_estimated_reasons(con)
            raise dg.Failure(description="\n".join([
                "no programme could be estimated, so the published database and reports were kept as they were",
                *reasons.values(),
            ] if reasons else ["there is no programme to estimate (staging.programmes is empty)"]))
        summary = con.execute("""
            SELECT (SELECT count(*) FILTER (status = 'ok') FROM results.programmes_analysed),
                   (SELECT string_agg(programme_id || ': ' || status, '; ' ORDER BY programme_id)
                      FROM results.programmes_analysed WHERE status <> 'ok'),
                   (SELECT max(abs(smd)) FROM results.balance WHERE stage = 'after'),
                   (SELECT count(*) FROM results.matched_sets WHERE treated AND weight > 0)
        """).fetchone()
    return dg.MaterializeResult(metadata={
        "programmes": len(frames["programmes_analysed"]),
        "programmes estimated": summary[0],
        "programmes not estimated": summary[1] or "none",
        "max |SMD| after matching": dg.MetadataValue.float(summary[2]) if summary[2] is not None else "none",
        "participants matched": summary[3],
    })


@dg.asset(
    key=dg.AssetKey(["results", "survival"]),
    deps=[dg.AssetKey(["results", "effects"]), dg.AssetKey(["analysis", "survival"])],
    group_name="effects",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "python"},
    description="Kaplan–Meier curves, log-rank, Cox models, PH tests and RMST per programme.",
)
def survival(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    settings = warehouse.settings
    spec = matching_spec(settings)
    frames: dict[str, list[pd.DataFrame]] = {table: [] for table in SURVIVAL_TABLES}
    with warehouse.connect() as con:
        estimated = con.execute(
            "SELECT programme_id FROM results.programmes_analysed WHERE status = 'ok' ORDER BY programme_id"
        ).fetchall()
        for (programme_id,) in estimated:
            matched = con.execute(
                "SELECT m.person_id, m.treated, m.weight, m.subclass, s.time_days, s.event "
                "FROM results.matched_sets AS m JOIN analysis.survival AS s USING (programme_id, person_id) "
                "WHERE m.programme_id = $programme_id AND m.weight > 0",
                {"programme_id": programme_id},
            ).df()
            cohort = con.execute(
                f"SELECT people.*, s.time_days, s.event FROM ({ANALYSED_PEOPLE}) AS people "
                "JOIN analysis.survival AS s USING (programme_id, person_id)",
                {"programme_id": programme_id},
            ).df()
            result = evaluate_survival(
                programme_id, matched, cohort, spec,
                horizon_days=settings.survival.rmst_horizon_days, horizons=settings.survival.horizons_days,
            )
            context.log.info(f"{programme_id}: matched hazard ratio {result.cox.loc[0, 'hr']:.3f}")
            for table in SURVIVAL_TABLES:
                frame = getattr(result, table)
                frames[table].append(frame.assign(programme_id=programme_id)[["programme_id", *frame.columns]])
        write_results(con, "results/programme_survival.sql", frames)
    return dg.MaterializeResult(metadata={"programmes": len(estimated)})
