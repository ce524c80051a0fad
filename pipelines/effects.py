"""Matched comparison, effects and survival, one programme partition at a time: read the analysis
tables (read-only), call models/, write the programme's result frames (see pipelines/partitions.py)."""
import dagster as dg
import duckdb
import pandas as pd

from desist import warehouse as wh
from desist.analysis import ANALYSED_PEOPLE, unanalysed_reason
from desist.config import Settings
from models.evaluation import MatchingSpec, evaluate_effects, evaluate_survival
from pipelines.partitions import (FINGERPRINT_TAG, PROGRAMME_EFFECTS, PROGRAMME_GROUP, PROGRAMME_SURVIVAL,
                                 PROGRAMMES, existing_partition_file, programme_fingerprints, read_partition,
                                 write_partition)
from pipelines.resources import Warehouse

EFFECT_TABLES = ("programmes_analysed", "propensity_model", "matched_sets", "balance", "sample_sizes",
                 "unmatched", "effects")
SURVIVAL_TABLES = ("km_curves", "km_horizons", "logrank", "cox", "ph_tests", "rmst")
# The survival analysis takes its people from the effects step's matched_sets file, which holds
# everyone analysed (weight 0 where unmatched): the matched sample with its weights and sets, and
# for the adjusted model the whole cohort with only the columns the model uses, in time order.
MATCHED_SURVIVAL = """
    SELECT sets.person_id, sets.treated, sets.weight, sets.subclass, survival.time_days, survival.event
    FROM read_parquet($matched_sets) AS sets
    JOIN analysis.survival AS survival USING (programme_id, person_id)
    WHERE sets.weight > 0
    ORDER BY sets.person_id
"""


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


def survival_cohort(settings: Settings) -> str:
    """The query of everyone analysed with the treatment, the configured covariates and the survival pair."""
    covariates = "".join(f", covariates.{wh.quoted(name)}" for name in settings.covariates.all)
    return f"""
        SELECT sets.treated{covariates}, survival.time_days, survival.event
        FROM read_parquet($matched_sets) AS sets
        JOIN analysis.covariates AS covariates USING (programme_id, person_id)
        JOIN analysis.survival AS survival USING (programme_id, person_id)
        ORDER BY survival.time_days
    """


def write_results(con: duckdb.DuckDBPyConnection, schema_sql: str, frames: dict[str, list[pd.DataFrame]]) -> None:
    """Recreate the results tables declared in sql/<schema_sql>, then add the rows of every programme."""
    wh.run_sql(con, schema_sql)
    for table, parts in frames.items():
        if not parts:
            continue
        con.register("frame", pd.concat(parts, ignore_index=True))
        con.execute(f"INSERT INTO results.{table} BY NAME SELECT * FROM frame")
        con.unregister("frame")


def with_programme(frame: pd.DataFrame, programme_id: str) -> pd.DataFrame:
    return frame.assign(programme_id=programme_id)[["programme_id", *frame.columns]]


def programme_name(con: duckdb.DuckDBPyConnection, programme_id: str) -> str:
    """The programme's name; a partition whose programme left staging.programmes stops here."""
    row = con.execute("SELECT name FROM staging.programmes WHERE programme_id = $programme_id",
                      {"programme_id": programme_id}).fetchone()
    if row is None:
        raise dg.Failure(description=f"programme {programme_id}: not in staging.programmes (removed from the "
                                     "extract); its partition is deleted by the next run")
    return row[0]


def fingerprint(con: duckdb.DuckDBPyConnection, settings: Settings, programme_id: str,
                context: dg.AssetExecutionContext | None = None) -> str:
    """The fingerprint of the inputs this step read, recorded so the next run can skip an unchanged programme:
    the one the planner read for this run (its tag; nothing writes the warehouse while programmes run), or
    computed here for a run started without it."""
    planned = context.run_tags.get(FINGERPRINT_TAG) if context is not None else None
    return planned or programme_fingerprints(con, settings, [programme_id])[programme_id]


@dg.asset(
    key=PROGRAMME_EFFECTS,
    deps=[dg.AssetKey(["analysis", "covariates"]), dg.AssetKey(["analysis", "measures"]),
          dg.AssetKey(["staging", "programmes"])],
    partitions_def=PROGRAMMES,
    group_name=PROGRAMME_GROUP,
    kinds={"duckdb", "python"},
    description="One programme's propensity model, matched sets, balance and effects (matched, naive, adjusted).",
)
def programme_effects(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    settings = warehouse.settings
    programme_id = context.partition_key
    with warehouse.connect(read_only=True) as con:
        name = programme_name(con, programme_id)
        people = con.execute(ANALYSED_PEOPLE, {"programme_id": programme_id}).df()
        measures = con.execute(
            "SELECT person_id, window_months, reoffended, frequency, days_to_first, custodial_reoffence "
            "FROM analysis.measures WHERE programme_id = $programme_id",
            {"programme_id": programme_id},
        ).df()
        result = evaluate_effects(
            programme_id, people, measures, matching_spec(settings),
            windows=settings.follow_up.windows_months, headline_window=settings.follow_up.headline_months,
            min_treated=settings.diagnostics.min_participants,
        )
        if result.status == "not_estimated":
            result.message = unanalysed_reason(con, programme_id) or result.message
        n_treated = int(people["treated"].sum())
        context.log.info(f"{programme_id}: {result.status}; {n_treated} participants analysed of {len(people)}")
        frames = {"programmes_analysed": pd.DataFrame({
            "programme_id": [programme_id], "name": [name], "status": [result.status],
            "message": [result.message], "n_treated_analysed": [n_treated],
            "n_comparison_pool": [len(people) - n_treated],
        })}
        frames |= {table: with_programme(getattr(result, table), programme_id) for table in EFFECT_TABLES[1:]}
        write_partition(con, settings, programme_id, EFFECT_TABLES, frames)
        inputs = fingerprint(con, settings, programme_id)
    balance = frames["balance"]
    after = balance.loc[balance["stage"] == "after", "smd"].abs() if not balance.empty else pd.Series(dtype=float)
    return dg.MaterializeResult(metadata={
        "status": result.status,
        "participants analysed": n_treated,
        "max |SMD| after matching": dg.MetadataValue.float(float(after.max())) if after.notna().any() else "none",
        "input_fingerprint": inputs,
    })


@dg.asset(
    key=PROGRAMME_SURVIVAL,
    deps=[PROGRAMME_EFFECTS, dg.AssetKey(["analysis", "survival"])],
    partitions_def=PROGRAMMES,
    group_name=PROGRAMME_GROUP,
    kinds={"duckdb", "python"},
    description="One programme's Kaplan–Meier curves, log-rank, Cox models, PH tests and RMST.",
)
def programme_survival(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    settings = warehouse.settings
    programme_id = context.partition_key
    with warehouse.connect(read_only=True) as con:
        analysed = read_partition(con, settings, "programmes_analysed", programme_id)
        estimated = bool((analysed["status"] == "ok").all())
        frames = {}
        if estimated:
            sets = {"matched_sets": str(existing_partition_file(settings, "matched_sets", programme_id))}
            matched = con.execute(MATCHED_SURVIVAL, sets).df()
            cohort = wh.frame_with_categories(con, survival_cohort(settings), sets)
            n_analysed = con.execute("SELECT count(*) FROM read_parquet($matched_sets)", sets).fetchone()[0]
            if len(cohort) != n_analysed:
                raise dg.Failure(description=f"desist: programme {programme_id}: analysis.survival or "
                                             f"analysis.covariates lacks {n_analysed - len(cohort)} of the "
                                             f"{n_analysed} people analysed for its effects")
            result = evaluate_survival(
                programme_id, matched, cohort, matching_spec(settings),
                horizon_days=settings.survival.rmst_horizon_days, horizons=settings.survival.horizons_days,
            )
            context.log.info(f"{programme_id}: matched hazard ratio {result.cox.loc[0, 'hr']:.3f}")
            frames = {table: with_programme(getattr(result, table), programme_id) for table in SURVIVAL_TABLES}
        else:
            context.log.info(f"{programme_id}: not estimated, so no survival analysis")
        write_partition(con, settings, programme_id, SURVIVAL_TABLES, frames)
        inputs = fingerprint(con, settings, programme_id, context)
    return dg.MaterializeResult(metadata={"estimated": estimated, "input_fingerprint": inputs})
