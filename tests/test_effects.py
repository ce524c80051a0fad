"""Effect estimates against R lm + sandwich (tests/fixtures/matchit/make_fixtures.R),
hand-worked values, the JDL gates, the plain-language sentence and the E-value."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.effects import (
    STATUS_OK,
    STATUS_TOO_FEW_TREATED,
    STATUS_TOO_FEW_TREATED_REOFFENDERS,
    CovariateAdjustment,
    adjusted_difference,
    e_value,
    e_value_ci,
    estimate_effect,
    matched_difference,
    naive_difference,
    plain_language,
)
from models.matching import match_propensity
from models.propensity import CollinearCovariatesError

FIXTURES = Path(__file__).parent / "fixtures" / "matchit"
COVARIATES = ["age", "prior_offences", "risk_score", "female", "employed", "region"]
SCENARIOS = ["nn1", "nn2", "nn1_replace", "nn1_caliper", "nn2_caliper", "nn1_exact", "nn1_replace_caliper"]


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "data.csv.gz")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_matched_difference_matches_r_vcovcl(cohort, scenario):
    units = pd.read_csv(FIXTURES / f"units_{scenario}.csv.gz")
    # matched sets as clusters; after matching with replacement each person is a cluster
    cluster = None if units.subclass.isna().all() else units.subclass.to_numpy()
    reference = pd.read_csv(FIXTURES / "effects.csv")
    reference = reference[reference.scenario == scenario]
    assert len(reference) == 3
    for row in reference.itertuples():
        estimate = matched_difference(cohort[row.outcome], cohort.treat, units.weights, cluster, ratio=True)
        assert (estimate.n, estimate.n_clusters) == (row.n, row.n_clusters)
        got = [estimate.mean_treated, estimate.mean_comparison, estimate.difference, estimate.se,
               estimate.p_value, estimate.ci_low, estimate.ci_high,
               estimate.ratio, estimate.ratio_ci_low, estimate.ratio_ci_high]
        want = [row.mean_treated, row.mean_comparison, row.difference, row.se,
                row.p_value, row.ci_low, row.ci_high, row.risk_ratio, row.rr_ci_low, row.rr_ci_high]
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=row.outcome)


def test_naive_difference_matches_r_t_test(cohort):
    for row in pd.read_csv(FIXTURES / "naive.csv").itertuples():
        estimate = naive_difference(cohort[row.outcome], cohort.treat)
        got = [estimate.difference, estimate.se, estimate.df, estimate.p_value, estimate.ci_low, estimate.ci_high]
        want = [row.difference, row.se, row.df, row.p_value, row.ci_low, row.ci_high]
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=row.outcome)


def test_adjusted_difference_matches_r_hc3(cohort):
    for row in pd.read_csv(FIXTURES / "adjusted.csv").itertuples():
        estimate = adjusted_difference(cohort, row.outcome, "treat", COVARIATES)
        got = [estimate.difference, estimate.se, estimate.p_value, estimate.ci_low, estimate.ci_high]
        want = [row.difference, row.se, row.p_value, row.ci_low, row.ci_high]
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=row.outcome)


def test_cluster_robust_se_by_hand():
    # Four pairs, weights 1. Difference 0.5 - 0.75. With B = (X'X)^-1 the treatment row of
    # B times each pair's summed score is (e_treated - e_control) / 4:
    # (0.5-0.25)/4, (-0.5+0.75)/4, (-0.5-0.25)/4, (0.5-0.25)/4 = 1/16, 1/16, -3/16, 1/16.
    # V = G/(G-1) (n-1)/(n-k) sum a^2 = 4/3 * 7/6 * 12/256.
    y = np.array([1, 0, 0, 1, 1, 0, 1, 1])
    treated = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    estimate = matched_difference(y, treated, np.ones(8), cluster=[1, 2, 3, 4, 1, 2, 3, 4])
    assert estimate.difference == pytest.approx(-0.25)
    assert estimate.se == pytest.approx(np.sqrt(4 / 3 * 7 / 6 * 12 / 256))
    assert estimate.n_clusters == 4


def test_zero_weight_and_missing_outcome_rows_are_left_out():
    y = np.array([1, 0, np.nan, 0, 0, 1])
    treated = np.array([1, 1, 1, 0, 0, 0])
    estimate = matched_difference(y, treated, np.array([1, 1, 1, 1, 1, 0]), cluster=[1, 2, 3, 1, 2, 9])
    assert (estimate.n, estimate.n_treated, estimate.n_clusters) == (4, 2, 2)
    assert (estimate.mean_treated, estimate.mean_comparison) == (0.5, 0.0)


def test_e_value_published_formula():
    # VanderWeele & Ding (2017): E = RR + sqrt(RR (RR - 1)); RR < 1 is inverted first.
    assert e_value(3.9) == pytest.approx(3.9 + np.sqrt(3.9 * 2.9))
    assert round(e_value(3.9), 2) == 7.26
    assert e_value(0.5) == pytest.approx(2 + np.sqrt(2))
    assert e_value(1.0) == 1.0
    assert e_value_ci(3.9, 1.8, 8.4) == pytest.approx(1.8 + np.sqrt(1.8 * 0.8))  # = 3.0
    assert e_value_ci(0.5, 0.3, 0.8) == pytest.approx(1.25 + np.sqrt(1.25 * 0.25))
    assert e_value_ci(0.9, 0.7, 1.1) == 1.0
    with pytest.raises(ValueError, match="must be positive"):
        e_value(0)


@pytest.mark.parametrize(
    ("low", "high", "amount"),
    [
        (-0.081, -0.032, "between 3 and 8 fewer"),
        (-0.03, 0.02, "between 3 fewer and 2 more"),
        (0.015, 0.064, "between 2 and 6 more"),
        (-0.004, 0.004, "about the same number (a difference of less than 1 either way)"),
        (-0.002, 0.031, "between 0 and 3 more"),
        (-0.052, -0.048, "about 5 fewer"),
    ],
)
def test_plain_language(low, high, amount):
    assert plain_language(low, high) == (
        "For 100 typical people who took part, compared with 100 similar people who did not, "
        f"{amount} reoffended within a year."
    )


def test_estimate_effect_end_to_end(cohort):
    match = match_propensity(cohort, cohort.lp, "treat", caliper=0.2)
    summary = estimate_effect(cohort, "reoffended", match, treatment="treat", covariates=COVARIATES)
    reference = pd.read_csv(FIXTURES / "effects.csv").set_index(["scenario", "outcome"]).loc[("nn1_caliper", "reoffended")]
    assert summary.status == STATUS_OK
    assert summary.n_treated == 433
    assert summary.matched.se == pytest.approx(reference.se, rel=1e-9)
    assert summary.e_value == pytest.approx(e_value(reference.risk_ratio), rel=1e-9)
    low, high = round(100 * reference.ci_low), round(100 * reference.ci_high)
    assert summary.sentence.endswith(f"between {-low} fewer and {high} more reoffended within a year.")
    assert summary.notes[0].startswith("67 treated people had no match")
    frame = summary.to_frame()
    assert frame.method.tolist() == ["matched", "naive", "adjusted"]
    assert frame.n_treated.tolist() == [433, 500, 500]


def test_count_outcome_has_a_rate_ratio_and_continuous_none(cohort):
    match = match_propensity(cohort, cohort.lp, "treat")
    count = estimate_effect(cohort, "reoffences", match, treatment="treat", covariates=COVARIATES, kind="count")
    continuous = estimate_effect(cohort, "wellbeing", match, treatment="treat", covariates=COVARIATES, kind="continuous")
    reference = pd.read_csv(FIXTURES / "effects.csv").set_index(["scenario", "outcome"]).loc[("nn1", "reoffences")]
    assert count.matched.ratio == pytest.approx(reference.risk_ratio, rel=1e-12)
    assert count.sentence is None
    assert np.isnan(continuous.matched.ratio) and np.isnan(continuous.e_value)


def _small_cohort(n_treated: int, n_reoffending_treated: int):
    rng = np.random.default_rng(5)
    n = n_treated + 400
    data = pd.DataFrame({"treat": np.r_[np.ones(n_treated), np.zeros(400)].astype(int), "x": rng.normal(size=n)})
    days = rng.integers(10, 365, n).astype(float)
    treated_rows = np.flatnonzero(data.treat == 1)
    days[treated_rows[n_reoffending_treated:]] = np.nan
    data["days_to_first"] = days
    data["reoffended"] = (~np.isnan(days)).astype(int)
    return data, match_propensity(data, data.x, "treat")


def test_gate_on_treated_people():
    data, match = _small_cohort(n_treated=59, n_reoffending_treated=40)
    summary = estimate_effect(data, "reoffended", match, treatment="treat", covariates=["x"])
    assert summary.status == STATUS_TOO_FEW_TREATED
    assert summary.n_treated == 59
    assert np.isnan(summary.matched.difference) and summary.sentence is None
    assert estimate_effect(data, "reoffended", match, treatment="treat", covariates=["x"], min_treated=50).status == STATUS_OK


def test_gate_on_treated_reoffenders_for_time_to_first():
    data, match = _small_cohort(n_treated=80, n_reoffending_treated=29)
    summary = estimate_effect(data, "days_to_first", match, treatment="treat", covariates=["x"], kind="time_to_first")
    assert summary.status == STATUS_TOO_FEW_TREATED_REOFFENDERS
    assert (summary.n_treated, summary.n_treated_reoffenders) == (80, 29)
    data, match = _small_cohort(n_treated=80, n_reoffending_treated=30)
    summary = estimate_effect(data, "days_to_first", match, treatment="treat", covariates=["x"], kind="time_to_first")
    assert summary.status == STATUS_OK
    assert summary.matched.n_treated == 30


def test_bad_input_is_explained(cohort):
    match = match_propensity(cohort, cohort.lp, "treat")
    with pytest.raises(ValueError, match="kind must be one of"):
        estimate_effect(cohort, "reoffended", match, treatment="treat", covariates=COVARIATES, kind="rate")
    with pytest.raises(ValueError, match="values other than 0 and 1"):
        estimate_effect(cohort, "reoffences", match, treatment="treat", covariates=COVARIATES)
    with pytest.raises(ValueError, match="are the rows aligned"):
        estimate_effect(cohort.iloc[::-1].reset_index(drop=True), "reoffended", match, treatment="treat", covariates=COVARIATES)
    with pytest.raises(ValueError, match="cluster is missing"):
        matched_difference([1, 0, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1], cluster=[1, None, 1, 2])


# --------------------------------------------------------------------------------------
# The adjusted model built once per cohort and shared by outcomes measured on different rows
# --------------------------------------------------------------------------------------


def _people(rng: np.random.Generator, n: int, treated_share: float) -> pd.DataFrame:
    """Covariates of every kind (number, count, flag, four regions) and a treatment indicator."""
    return pd.DataFrame({
        "age": rng.normal(35, 9, n),
        "prior": rng.poisson(2, n),
        "female": rng.binomial(1, 0.3, n).astype(bool),
        "region": rng.choice(["East", "North", "South", "West"], n),
        "treat": rng.binomial(1, treated_share, n),
    })


@pytest.fixture(scope="module")
def mixed_cohort() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 900
    data = _people(rng, n, treated_share=0.4)
    y = rng.binomial(1, 0.3 + 0.1 * data.treat - 0.05 * (data.region == "North"))
    days = rng.integers(1, 365, n).astype(float)
    data["complete"] = y.astype(float)
    data["most"] = np.where(rng.random(n) < 0.75, y, np.nan)  # incomplete rows at random
    data["no_east"] = np.where(data.region == "East", np.nan, days)  # the first level is absent
    data["no_west"] = np.where(data.region == "West", np.nan, days + 0.5 * data.age)  # a later level is absent
    return data


def _statsmodels_hc3(data: pd.DataFrame, outcome: str, covariates: list[str]) -> tuple[float, float]:
    """OLS with the HC3 SE, the design built by pandas from the rows with the outcome."""
    import statsmodels.api as sm

    rows = data[data[outcome].notna()]
    design = pd.get_dummies(rows[["treat", *covariates]], columns=["region"], drop_first=True, dtype=float)
    fit = sm.OLS(rows[outcome], sm.add_constant(design.astype(float))).fit(cov_type="HC3")
    return fit.params["treat"], fit.bse["treat"]


def test_shared_adjustment_equals_statsmodels_hc3_on_every_row_subset(mixed_cohort):
    covariates = ["age", "prior", "female", "region"]
    model = CovariateAdjustment(mixed_cohort, "treat", covariates, ["region"])
    for outcome in ("complete", "most", "no_east", "no_west", "most"):
        estimate = model.estimate(mixed_cohort[outcome])
        want = _statsmodels_hc3(mixed_cohort, outcome, covariates)
        np.testing.assert_allclose([estimate.difference, estimate.se], want, rtol=1e-10, err_msg=outcome)
        assert estimate.n == mixed_cohort[outcome].notna().sum()
        alone = adjusted_difference(mixed_cohort, outcome, "treat", covariates, ["region"])
        np.testing.assert_allclose([alone.difference, alone.se], want, rtol=1e-10, err_msg=outcome)


def test_outcomes_fitted_together_each_equal_statsmodels_hc3(mixed_cohort):
    # Outcomes on the same rows share one fit; outcomes on other rows get their own, in any order.
    covariates = ["age", "prior", "female", "region"]
    data = mixed_cohort.assign(most_days=np.where(mixed_cohort.most.notna(), mixed_cohort.no_west.fillna(3.0), np.nan))
    outcomes = ["most", "no_east", "complete", "most_days", "no_west", "most"]
    estimates = CovariateAdjustment(data, "treat", covariates, ["region"]).estimate_many([data[o] for o in outcomes])
    for outcome, estimate in zip(outcomes, estimates):
        want = _statsmodels_hc3(data, outcome, covariates)
        np.testing.assert_allclose([estimate.difference, estimate.se], want, rtol=1e-10, err_msg=outcome)
        assert estimate.n == data[outcome].notna().sum()
        assert estimate.mean_treated == pytest.approx(data.loc[data.treat == 1, outcome].mean(), rel=1e-12)


def test_outcomes_as_float32_over_many_blocks_of_rows_equal_statsmodels_hc3():
    # More rows than one block of the cross-products (65,536) and one of the hat values (1,024), so
    # the design is filled block by block; outcomes stored as float32 (as the programme step reads
    # them), on every row and on a subset where the first region is absent.
    rng = np.random.default_rng(5)
    n = 70_001
    data = _people(rng, n, treated_share=0.3)
    reoffended = rng.binomial(1, 0.3 + 0.1 * data.treat).astype(np.float32)
    days = rng.integers(1, 365, n).astype(np.float32)
    data["reoffended"] = reoffended
    data["days_outside_east"] = np.where(data.region == "East", np.nan, days).astype(np.float32)
    covariates = ["age", "prior", "female", "region"]
    outcomes = ["reoffended", "days_outside_east"]
    estimates = CovariateAdjustment(data, "treat", covariates, ["region"]).estimate_many([data[o] for o in outcomes])
    as_float64 = data.astype({outcome: float for outcome in outcomes})
    for outcome, estimate in zip(outcomes, estimates):
        want = _statsmodels_hc3(as_float64, outcome, covariates)
        np.testing.assert_allclose([estimate.difference, estimate.se], want, rtol=1e-10, err_msg=outcome)
        assert estimate.n == data[outcome].notna().sum()
        assert estimate.mean_treated == pytest.approx(as_float64.loc[as_float64.treat == 1, outcome].mean(), rel=1e-12)


def test_shared_adjustment_names_a_covariate_constant_on_the_outcomes_rows(mixed_cohort):
    # Among the women only, female takes one value: as if the model were built from those rows.
    data = mixed_cohort.assign(women_only=mixed_cohort.complete.where(mixed_cohort.female))
    model = CovariateAdjustment(data, "treat", ["age", "female", "region"], ["region"])
    with pytest.raises(CollinearCovariatesError, match="'female' take a single value"):
        model.estimate(data.women_only)
    # A covariate that is a multiple of another on those rows only.
    data["twice_age"] = np.where(data.female, 2 * data.age, data.prior)
    model = CovariateAdjustment(data, "treat", ["age", "twice_age", "region"], ["region"])
    assert np.isfinite(model.estimate(data.complete).se)
    with pytest.raises(CollinearCovariatesError, match="exact linear combinations") as error:
        model.estimate(data.women_only)
    assert error.value.covariates == ["age", "twice_age"]


def test_estimate_effect_with_a_shared_adjustment_gives_the_same_summary(cohort):
    match = match_propensity(cohort, cohort.lp, "treat", caliper=0.2)
    shared = CovariateAdjustment(cohort, "treat", COVARIATES)
    for outcome, kind in (("reoffended", "binary"), ("reoffences", "count")):
        alone = estimate_effect(cohort, outcome, match, treatment="treat", covariates=COVARIATES, kind=kind)
        reused = estimate_effect(cohort, outcome, match, treatment="treat", covariates=COVARIATES, kind=kind,
                                 adjustment=shared)
        assert reused.adjusted.difference == pytest.approx(alone.adjusted.difference, rel=1e-12)
        assert reused.adjusted.se == pytest.approx(alone.adjusted.se, rel=1e-10)
    other = CovariateAdjustment(cohort.iloc[::-1].reset_index(drop=True), "treat", COVARIATES)
    with pytest.raises(ValueError, match="adjusted model's treatment does not agree"):
        estimate_effect(cohort, "reoffended", match, treatment="treat", covariates=COVARIATES, adjustment=other)
