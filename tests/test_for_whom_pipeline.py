"""For whom it works, through the whole pipeline: the risk model against the generator's true AUC,
subgroup estimates against the truth per subgroup, and what reaches the researcher database."""
from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from desist import warehouse
from desist.config import load_settings, write_settings
from desist.generate import generate, subgroup_truth, write_extract
from pipelines.for_whom import participant_subgroups, risk_people
from conftest import SAMPLE_DIR, materialize_all


def estimates_with_truth(settings, participants):
    """Each estimated subgroup level of a run beside the exact effect on its participants."""
    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        estimates = con.execute("SELECT * FROM results.subgroup_effects WHERE gate_status = 'ok'").df()
        truth = subgroup_truth(participants, participant_subgroups(con, settings))
    both = estimates.merge(truth, on=["programme_id", "variable", "level"], validate="one_to_one")
    assert len(both) == len(estimates)
    return both.assign(covered=(both["ci_lower"] <= both["effect"]) & (both["effect"] <= both["ci_upper"]))


def test_risk_model_on_the_sample_reaches_the_true_auc_and_is_calibrated(sample_run):
    truth = json.loads((SAMPLE_DIR / "ground_truth.json").read_text())["risk_model"]
    with duckdb.connect(str(sample_run.paths.research), read_only=True) as con:
        p = con.execute("SELECT * FROM risk_performance").df().iloc[0]
        samples = dict(con.execute("SELECT model_sample, count(*) FROM risk_scores GROUP BY 1").fetchall())
        pooled = con.execute(
            "SELECT count(*) FROM risk_scores JOIN covariates USING (person_id, index_date) "
            "WHERE risk_scores.model_sample IS NOT NULL AND covariates.treated").fetchone()[0]
        bands = con.execute("SELECT count(*) FROM risk_scores WHERE risk_band <> CASE WHEN predicted_risk < 0.2 "
                            "THEN 'low' WHEN predicted_risk < 0.4 THEN 'medium' ELSE 'high' END").fetchone()[0]
    assert (p["status"], p["train_to"], p["test_from"], p["test_to"]) == ("ok", "2022Q4", "2023Q1", "2023Q4")
    # The true risk (which knows the unobserved propensity) is the ceiling: above the model's AUC
    # on the training quarters (2019-2022) and on the test quarters (2023), within the latter's interval.
    assert p["auc_train"] < truth["true_auc"]
    assert p["auc"] < truth["true_auc_by_index_year"]["2023"] < p["auc_upper"]
    assert abs(p["calibration_intercept"]) < 2 * p["calibration_intercept_se"]
    assert abs(p["calibration_slope"] - 1) < 2 * p["calibration_slope_se"]
    assert (samples["train"], samples["test"]) == (p["n_train"], p["n_test"])
    assert pooled == 0  # nobody who took part in any programme is in the model's own data
    assert bands == 0


def test_the_risk_models_people_carry_the_cohorts_index_quarter(sample_run):
    """The risk model's people, one per person and index date analysed, with the quarter the cohort gives them."""
    with duckdb.connect(str(sample_run.paths.warehouse), read_only=True) as con:
        warehouse.set_variables(con, sample_run)
        people = risk_people(con, sample_run)
        joined, differing = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE people.index_quarter <> cohort.index_quarter) "
            "FROM risk_people AS people "
            "JOIN (SELECT DISTINCT person_id, index_date, index_quarter FROM analysis.cohort) AS cohort "
            "USING (person_id, index_date)").fetchone()
        analysed = con.execute(
            "SELECT count(*) FROM analysis.covariates_by_index "
            "JOIN analysis.measures_by_index USING (person_id, index_date) "
            "WHERE covariates_complete AND complete AND window_months = 12").fetchone()[0]
    assert len(people) == joined == analysed > 10_000
    assert people["index_quarter"].str.fullmatch(r"20\d\dQ[1-4]").all()
    assert differing == 0


def test_subgroup_tables_on_the_sample(sample_run):
    with duckdb.connect(str(sample_run.paths.research), read_only=True) as con:
        effects = con.execute("SELECT * FROM subgroup_effects").df()
        heterogeneity = con.execute("SELECT * FROM subgroup_heterogeneity").df()
        card = con.execute("SELECT section FROM risk_model_card ORDER BY line").df()
    assert sorted(effects["variable"].unique()) == ["age_band", "index_type", "risk_band", "sex"]
    assert set(effects.loc[effects["variable"] == "risk_band", "level"]) == {"low", "medium", "high"}
    other = effects[(effects["variable"] == "sex") & (effects["level"] == "other")]
    assert (other["gate_status"] == "too_few_treated").all() and other["difference"].isna().all()
    for _, rows in effects[effects["gate_status"] == "ok"].groupby("programme_id"):
        assert rows["p_holm"].to_numpy() == pytest.approx(multipletests(rows["p_value"], method="holm")[1])
    estimated = effects[effects["gate_status"] == "ok"].groupby(["programme_id", "variable"]).size()
    assert heterogeneity.set_index(["programme_id", "variable"])["n_levels"].to_dict() == \
        estimated[estimated >= 2].to_dict()
    assert card["section"].unique().tolist() == [
        "Model", "Intended use", "Prohibited uses", "Data", "Performance", "Fairness", "Limitations"]


def test_subgroup_estimates_cover_the_truth_on_the_sample(sample_run):
    """No effect modification is planted in the sample, yet the effect on the rate still differs
    between subgroups (their baseline risks differ): each estimate is checked against its own truth."""
    both = estimates_with_truth(sample_run, generate(20_000, 2026).participants)
    assert len(both) == 36
    assert both["covered"].sum() == 33  # 92% of the 95% intervals hold their truth


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("subgroup_effects")
    write_extract(folder / "landing", 20_000, 11, subgroup_effects=True)
    config = write_settings(folder, folder / "landing")
    assert materialize_all(config).success
    return load_settings(config), generate(20_000, 11, subgroup_effects=True)


def test_planted_subgroup_effects_are_recovered_within_their_intervals(planted_run):
    settings, extract = planted_run
    both = estimates_with_truth(settings, extract.participants)
    assert len(both) == 38
    assert both["covered"].all()
    # The planted pattern shows: for every effective programme the high band benefits most.
    risk = both[both["variable"] == "risk_band"].set_index(["programme_id", "level"])["difference"]
    for pid in ("P01", "P02", "P04"):
        assert risk[(pid, "high")] < risk[(pid, "low")], pid
    # The truth file's sex subgroups are the pipeline's sex subgroups: same participants, same effect.
    sex = both[both["variable"] == "sex"].set_index(["programme_id", "level"])
    for (pid, level), row in sex.iterrows():
        planted = extract.truth["programmes"][pid]["subgroups"]["sex"][level]
        assert row["effect"] == pytest.approx(planted["reoffending_rate_12m"]["effect"], abs=0.02), (pid, level)
    assert np.isfinite(both["se"]).all()
