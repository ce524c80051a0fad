"""For whom it works: the reoffending-risk model and the matched effects within pre-declared subgroups."""
import dagster as dg
import numpy as np
import pandas as pd

from desist import warehouse as wh
from desist.config import Settings
from models.evaluation import with_missing_indicators
from models.risk import BANDS, MIN_OUTCOMES, STATUS_OK, fit_risk_model, model_card
from models.subgroups import age_bands, subgroup_effects
from pipelines.effects import (fingerprint, matching_spec, pandas_columns, partition_writer, programme_connection,
                               read_everyone_analysed, with_programme, write_results)
from pipelines.partitions import (PROGRAMME_EFFECTS, PROGRAMME_GROUP, PROGRAMME_SUBGROUP_EFFECTS, PROGRAMMES,
                                 analysed_people_file, read_partition, write_partition)
from pipelines.resources import WAREHOUSE_POOL, Warehouse

RISK_TABLES = ("risk_model_status", "risk_coefficients", "risk_performance", "risk_calibration", "risk_fairness",
               "risk_scores", "risk_model_card")
SUBGROUP_TABLES = ("subgroup_effects", "subgroup_heterogeneity")
AUDIT_GROUPS = ("sex", "ethnic_group", "age_band")

# One row per person and index date analysed for any programme: complete headline follow-up and
# every covariate present, with the headline outcome; in_pool marks people no programme touched
# (never enrolled in any programme), on whom the risk model is fitted. Characteristics and outcomes
# are read from the tables stored once per person and index date, and the index quarter is worked
# out from the index date as sql/analysis/cohort.sql does (rather than picked from the cohort's
# row of every programme). Kept as a temporary table, in person order, so the scores are written
# back beside its keys by position.
RISK_PEOPLE = """
    CREATE OR REPLACE TEMP TABLE risk_people AS
    WITH characteristics AS (
        SELECT person_id, index_date, {columns}
        FROM analysis.covariates_by_index
        WHERE covariates_complete
    ),
    headline AS (
        SELECT person_id, index_date, reoffended::INTEGER AS reoffended
        FROM analysis.measures_by_index
        WHERE window_months = getvariable('headline_months') AND complete
    )
    SELECT
        characteristics.*,
        year(index_date)::VARCHAR || 'Q' || quarter(index_date)::VARCHAR AS index_quarter,
        headline.reoffended,
        person_id NOT IN (SELECT person_id FROM staging.participation) AS in_pool
    FROM characteristics
    JOIN headline USING (person_id, index_date)
    ORDER BY person_id, index_date
"""


def subgroup_people(settings: Settings) -> str:
    """Everyone the effects step analysed (its analysed_people file), numbered by their row there (as
    they were matched: :func:`read_subgroup_people` puts them back in that order): the treatment, the
    matching distance, the headline outcome, the age (for the age band), the risk band and only the
    other columns the subgroups and the exact matching need."""
    others = [name for name in [*settings.subgroups.variables, *settings.matching.exact]
              if name not in ("age_band", "risk_band", "age_at_index")]
    columns = "".join(f", people.{wh.quoted(name)}" for name in dict.fromkeys(others))
    return f"""
        SELECT people.file_row_number AS row, people.treated, people.logit_score,
               people.reoffended::DOUBLE AS outcome, people.age_at_index, scores.risk_band{columns}
        FROM (SELECT * REPLACE (index_date::DATE AS index_date)
              FROM read_parquet($people, file_row_number = true)) AS people
        LEFT JOIN results.risk_scores AS scores USING (person_id, index_date)
    """


def read_subgroup_people(con, settings: Settings, programme_id: str, inputs: str) -> pd.DataFrame:
    """:func:`subgroup_people` in the order of the matched_sets file, text columns as categoricals; stops
    if the effects step's analysed_people file is missing or not from ``inputs`` (analysed_people_file)."""
    path = analysed_people_file(settings, programme_id, inputs)
    table, rows = read_everyone_analysed(con, subgroup_people(settings), programme_id, path,
                                         "results.risk_scores")
    in_file_order = np.empty(len(rows), dtype=np.int64)
    in_file_order[rows] = np.arange(len(rows))
    return pd.DataFrame({name: values[in_file_order] for name, values in pandas_columns(table).items()},
                        copy=False)


def risk_people(con, settings: Settings) -> pd.DataFrame:
    """RISK_PEOPLE (left in the temporary table risk_people) with the covariates, the audit groups'
    columns and the age band; without the keys, which stay in DuckDB."""
    columns = dict.fromkeys([*settings.covariates.all, "sex", "ethnic_group", "age_at_index"])
    con.execute(RISK_PEOPLE.format(columns=", ".join(f'"{name}"' for name in columns)))
    # Text columns as categoricals: no string object per person, no text compared in the design.
    people = wh.frame_with_categories(con, "SELECT * EXCLUDE (person_id, index_date) FROM risk_people")
    # Quarters stay text: the model card names the first and last of them.
    return with_age_band(people.assign(index_quarter=people["index_quarter"].astype(object)), settings)


def with_age_band(people: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    return people.assign(age_band=age_bands(people["age_at_index"], settings.subgroups.age_band_edges))


@dg.asset(
    key=dg.AssetKey(["results", "risk_model"]),
    deps=[dg.AssetKey(["analysis", "covariates"]), dg.AssetKey(["analysis", "measures"]),
          dg.AssetKey(["analysis", "cohort"]), dg.AssetKey(["staging", "participation"])],
    group_name="for_whom",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "python"},
    description="Reoffending-risk model for evaluation only: fitted on people no programme touched, tested on the "
                "latest index quarters; calibration, fairness audit by sex, ethnic group and age band, risk bands "
                "and the model card.",
)
def risk_model(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    settings = warehouse.settings
    spec = matching_spec(settings)
    thresholds = settings.risk_model.band_thresholds
    min_outcomes = max(MIN_OUTCOMES, settings.disclosure.min_count)  # so every count the card shows may be shown
    with warehouse.connect() as con:
        # Gaps in a missing_indicator covariate filled and flagged, as the effects models have them.
        people, spec = with_missing_indicators(risk_people(con, settings), spec)
        result = fit_risk_model(
            people, "reoffended", spec.covariates, spec.categorical, quarter="index_quarter",
            test_quarters=settings.risk_model.test_quarters, thresholds=thresholds, audit_groups=AUDIT_GROUPS,
            in_pool=people["in_pool"], min_outcomes=min_outcomes,
        )
        context.log.info(f"risk model: {result.status} {result.message}".strip())
        frames: dict[str, list[pd.DataFrame]] = {
            "risk_model_status": [pd.DataFrame({"status": [result.status], "message": [result.message]})],
            "risk_model_card": [model_card(
                result, spec.covariates, thresholds,
                outcome_words=f"proven reoffending within {settings.follow_up.headline_months} months",
                population_words="People with an eligible index event and complete follow-up who never enrolled "
                                 "in any programme (no programme touched them), so no programme effect is built "
                                 "into the risks.", min_group=min_outcomes)],
        }
        if result.status == STATUS_OK:
            frames |= {
                "risk_coefficients": [result.coefficients],
                "risk_performance": [result.performance],
                "risk_calibration": [result.deciles],
                "risk_fairness": [result.fairness],
            }
        write_results(con, "results/risk_model.sql", frames)
        if result.status == STATUS_OK:
            # risk_people and the scores hold the same people in the same order.
            con.register("scores", result.scores)
            con.execute("INSERT INTO results.risk_scores "
                        "SELECT people.person_id, people.index_date, scores.* FROM risk_people AS people "
                        "POSITIONAL JOIN scores")
            con.unregister("scores")
    metadata = {"status": result.status}
    if result.status == STATUS_OK:
        metadata |= {"auc": float(result.performance["auc"].iloc[0]),
                     "calibration_slope": float(result.performance["calibration_slope"].iloc[0])}
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=PROGRAMME_SUBGROUP_EFFECTS,
    deps=[PROGRAMME_EFFECTS, dg.AssetKey(["results", "risk_model"])],
    partitions_def=PROGRAMMES,
    group_name=PROGRAMME_GROUP,
    kinds={"duckdb", "python"},
    description="One programme's matched effect on the headline reoffending rate within each pre-declared subgroup "
                "(exact matching on the subgroup), heterogeneity tests and Holm-adjusted p-values.",
)
def programme_subgroup_effects(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    settings = warehouse.settings
    spec = matching_spec(settings)
    programme_id = context.partition_key
    frames: dict[str, pd.DataFrame] = {}
    # The read's connection is closed before the matching runs, so DuckDB's memory is given back first.
    with programme_connection(warehouse) as con:
        inputs = fingerprint(context, con, settings)
        analysed = read_partition(con, settings, "programmes_analysed", programme_id)
        estimated = bool((analysed["status"] == "ok").all())
        if estimated:
            people = read_subgroup_people(con, settings, programme_id, inputs)
    if estimated:
        people = with_age_band(people, settings).assign(
            risk_band=lambda f: pd.Categorical(f["risk_band"], categories=BANDS))
        if "risk_band" in settings.subgroups.variables and people["risk_band"].isna().all():
            context.log.warning(f"{programme_id}: no risk bands (the risk model was not fitted), so no "
                                "estimates by risk band")
        result = subgroup_effects(
            people, people["logit_score"], "outcome", settings.subgroups.variables,
            ratio=spec.ratio, replace=spec.replace, caliper=spec.caliper, exact=spec.exact,
        )
        del people
        context.log.info(f"{programme_id}: {int((result.effects['gate_status'] == 'ok').sum())} subgroup "
                         f"estimates of {len(result.effects)}")
        frames = {table: with_programme(frame, programme_id)
                  for table, frame in zip(SUBGROUP_TABLES, (result.effects, result.heterogeneity))}
    with partition_writer(settings) as con:
        write_partition(con, settings, programme_id, SUBGROUP_TABLES, frames)
    return dg.MaterializeResult(metadata={"estimated": estimated, "input_fingerprint": inputs})


def participant_subgroups(con, settings: Settings) -> pd.DataFrame:
    """Every participant's level of each subgrouping variable, as the subgroup estimates define them:
    ``programme_id, person_id, index_date, variable, level`` (for checking estimates against a known truth)."""
    people = con.execute(
        "SELECT covariates.programme_id, covariates.person_id, covariates.index_date, covariates.sex, "
        "covariates.age_at_index, covariates.index_type, scores.risk_band "
        "FROM analysis.covariates AS covariates "
        "LEFT JOIN results.risk_scores AS scores USING (person_id, index_date) WHERE covariates.treated"
    ).df()
    people = with_age_band(people, settings)
    variables = settings.subgroups.variables
    long = people.melt(id_vars=["programme_id", "person_id", "index_date"], value_vars=variables,
                       var_name="variable", value_name="level")
    return long.dropna(subset=["level"]).assign(level=lambda f: f["level"].astype(str))
