"""Tests for models/survival.py.

Reference numbers come from R's survival package (tests/fixtures/survival/make_fixtures.R,
outputs committed beside it), from the published Rossi recidivism Cox model, or are
worked out by hand below.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_rossi
from lifelines.statistics import multivariate_logrank_test
from scipy import stats

from models.survival import (
    DEFAULT_HORIZONS,
    cox_adjusted,
    cox_matched,
    kaplan_meier,
    log_rank_test,
    proportional_hazards_test,
    restricted_mean_survival_time,
)

FIXTURES = Path(__file__).parent / "fixtures" / "survival"
ROSSI_COVARIATES = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
Z95 = 1.959963984540054


@pytest.fixture(scope="module")
def r_results():
    return json.loads((FIXTURES / "results.json").read_text())


@pytest.fixture(scope="module")
def matched():
    return pd.read_csv(FIXTURES / "matched.csv")


@pytest.fixture(scope="module")
def rossi():
    return load_rossi()


@pytest.fixture(scope="module")
def matched_fit(matched):
    return cox_matched(matched.time, matched.event, matched.treat, matched.weight, matched.subclass)


@pytest.fixture(scope="module")
def rossi_fit(rossi):
    return cox_adjusted(rossi, "week", "arrest", ROSSI_COVARIATES)


def test_fixture_data_is_the_r_matched_design(matched):
    assert len(matched) == 2400
    assert matched.subclass.nunique() == 1000
    assert matched.groupby("subclass").size().value_counts().to_dict() == {2: 600, 3: 400}
    # MatchIt ATT weights: comparison weights sum to the number of comparison people.
    assert matched.loc[matched.treat == 0, "weight"].sum() == pytest.approx(1400)
    assert sorted(matched.loc[matched.treat == 0, "weight"].round(10).unique()) == [0.7, 1.4]


def test_r_rossi_export_is_the_lifelines_rossi(rossi):
    from_r = pd.read_csv(FIXTURES / "rossi.csv")
    pd.testing.assert_frame_equal(from_r, rossi[from_r.columns].astype("int64"))


# --------------------------------------------------------------------------------------
# Kaplan–Meier
# --------------------------------------------------------------------------------------


def test_km_by_hand_with_ties_and_everyone_failing_at_the_end():
    # S(1) = 4/5; S(2) = 4/5 * 3/4 = 0.6; at 3 both remaining fail, S = 0.
    # Greenwood se(log S): sqrt(1/(5*4)) and sqrt(1/20 + 1/(4*3)); infinite at S = 0.
    km = kaplan_meier([1, 2, 2, 3, 3], [1, 0, 1, 1, 1], horizons=(0.5, 2, 2.5, 5))
    curve = km.curves
    assert curve.time.tolist() == [1, 2, 3]
    assert curve.n_at_risk.tolist() == [5, 4, 2]
    assert curve.n_events.tolist() == [1, 1, 2]
    assert curve.n_censored.tolist() == [0, 1, 0]
    np.testing.assert_allclose(curve.survival, [0.8, 0.6, 0.0])
    np.testing.assert_allclose(curve.std_err[:2], [np.sqrt(1 / 20), np.sqrt(1 / 20 + 1 / 12)])
    assert np.isinf(curve.std_err[2])
    np.testing.assert_allclose(curve.lower[:2], [0.8 * np.exp(-Z95 * np.sqrt(0.05)), 0.6 * np.exp(-Z95 * np.sqrt(0.05 + 1 / 12))])
    assert curve.upper[:2].tolist() == [1.0, 1.0]  # capped at 1, as R does
    assert curve.lower[2:].isna().all() and curve.upper[2:].isna().all()  # undefined at S = 0

    table = km.horizons
    assert table.n_at_risk.tolist() == [5, 4, 2, 0]
    assert table.cumulative_events.tolist() == [0, 2, 2, 4]
    np.testing.assert_allclose(table.survival[:3], [1.0, 0.6, 0.6])
    np.testing.assert_allclose(table.cum_incidence[:3], [0.0, 0.4, 0.4])
    assert np.isnan(table.survival[3])  # beyond the longest follow-up


def test_km_weighted_counts_by_hand():
    # Weights 1, .5, .5, 1, 2: at time 2 the weighted risk set is 4 with 0.5 events.
    km = kaplan_meier([1, 2, 2, 3, 3], [1, 0, 1, 1, 1], weights=[1, 0.5, 0.5, 1, 2])
    curve = km.curves
    np.testing.assert_allclose(curve.weighted_at_risk, [5, 4, 3])
    np.testing.assert_allclose(curve.weighted_events, [1, 0.5, 3])
    np.testing.assert_allclose(curve.survival, [0.8, 0.8 * 3.5 / 4, 0.0])
    np.testing.assert_allclose(curve.std_err[1], np.sqrt(1 / 20 + 0.5 / (4 * 3.5)))


def test_km_weighted_greenwood_matches_r_survfit(matched):
    km = kaplan_meier(matched.time, matched.event, matched.treat, matched.weight)
    r = pd.read_csv(FIXTURES / "km_matched.csv")
    ours = km.curves
    assert len(ours) == len(r) == 229
    assert (ours.group.to_numpy() == r.group.to_numpy()).all()
    np.testing.assert_array_equal(ours.time, r.time)
    for column, r_column in [
        ("weighted_at_risk", "n_risk"),
        ("weighted_events", "n_event"),
        ("survival", "surv"),
        ("std_err", "std_err"),
        ("lower", "lower"),
        ("upper", "upper"),
    ]:
        np.testing.assert_allclose(ours[column], r[r_column], rtol=1e-9, err_msg=column)
    np.testing.assert_allclose(ours.cum_incidence_lower, 1 - r.upper, rtol=1e-9)
    np.testing.assert_allclose(ours.cum_incidence_upper, 1 - r.lower, rtol=1e-9)
    # People (unweighted) at risk at day 364 in the comparison group.
    at_364 = ours[(ours.group == 0) & (ours.time == 364)].n_at_risk.item()
    assert at_364 == int(((matched.treat == 0) & (matched.time >= 364)).sum()) == 513


def test_km_horizon_table_matches_r_summary_times(matched):
    km = kaplan_meier(matched.time, matched.event, matched.treat, matched.weight)
    r = pd.read_csv(FIXTURES / "km_matched_horizons.csv")
    table = km.horizons
    assert table.horizon.tolist() == list(DEFAULT_HORIZONS) * 2 == r.horizon.tolist()
    np.testing.assert_allclose(table.weighted_at_risk, r.n_risk, rtol=1e-9)
    np.testing.assert_allclose(table.survival, r.surv, rtol=1e-9)
    np.testing.assert_allclose(table.cum_incidence, 1 - r.surv, rtol=1e-9)
    np.testing.assert_allclose(table.cum_incidence_lower, 1 - r.upper, rtol=1e-9)
    np.testing.assert_allclose(table.cum_incidence_upper, 1 - r.lower, rtol=1e-9)
    expected_people = [
        int(((matched.treat == g) & (matched.time >= h)).sum()) for g in (0, 1) for h in DEFAULT_HORIZONS
    ]
    assert table.n_at_risk.tolist() == expected_people
    expected_events = [
        int(((matched.treat == g) & (matched.time <= h) & (matched.event == 1)).sum())
        for g in (0, 1)
        for h in DEFAULT_HORIZONS
    ]
    assert table.cumulative_events.tolist() == expected_events


def test_km_custom_horizons(matched):
    km = kaplan_meier(matched.time, matched.event, matched.treat, horizons=(30, 100))
    assert km.horizons.horizon.tolist() == [30, 100, 30, 100]


def test_km_robust_clustered_matches_r_survfit_cluster(matched, r_results):
    km = kaplan_meier(
        matched.time, matched.event, matched.treat, matched.weight, variance="robust", cluster=matched.subclass
    )
    r = pd.read_csv(FIXTURES / "km_matched_robust.csv")
    ours = km.curves
    np.testing.assert_array_equal(ours.time, r.time)
    np.testing.assert_allclose(ours.survival, r.surv, rtol=1e-9)
    # R stores the robust standard error on the survival scale.
    np.testing.assert_allclose(ours.std_err * ours.survival, r.std_err, rtol=1e-9)
    np.testing.assert_allclose(ours.lower, r.lower, rtol=1e-9)
    np.testing.assert_allclose(ours.upper, r.upper, rtol=1e-9)

    ref = r_results["matched"]["km_robust_cluster_horizons"]
    table = km.horizons
    assert table.horizon.tolist() == ref["horizon"]
    np.testing.assert_allclose(table.survival, ref["surv"], rtol=1e-9)
    se_survival = table.survival * np.log(table.survival / table.lower) / Z95
    np.testing.assert_allclose(se_survival, ref["std_err"], rtol=1e-9)


def test_km_robust_without_cluster_is_r_default_for_fractional_weights(matched, r_results):
    km = kaplan_meier(matched.time, matched.event, matched.treat, matched.weight, variance="robust")
    ref = r_results["matched"]["km_robust_row_horizons"]
    table = km.horizons
    se_survival = table.survival * np.log(table.survival / table.lower) / Z95
    np.testing.assert_allclose(se_survival, ref["std_err"], rtol=1e-9)
    # Treated rows are alone in their matched set's group, so clustering changes nothing there.
    clustered = kaplan_meier(
        matched.time, matched.event, matched.treat, matched.weight, variance="robust", cluster=matched.subclass
    ).horizons
    np.testing.assert_allclose(clustered.lower[4:], table.lower[4:], rtol=1e-12)
    assert not np.allclose(clustered.lower[:4], table.lower[:4], rtol=1e-6)


def test_km_unweighted_rossi_matches_r(rossi):
    km = kaplan_meier(rossi.week, rossi.arrest, rossi.fin)
    r = pd.read_csv(FIXTURES / "km_rossi.csv")
    assert km.curves.group.tolist() == r.group.tolist()
    np.testing.assert_array_equal(km.curves.n_at_risk, r.n_risk)
    np.testing.assert_array_equal(km.curves.n_events, r.n_event)
    np.testing.assert_allclose(km.curves[["survival", "std_err", "lower", "upper"]], r[["surv", "std_err", "lower", "upper"]], rtol=1e-9)


def test_km_single_group_is_labelled_all():
    km = kaplan_meier([1, 2, 3], [1, 1, 0], horizons=(2,))
    assert km.curves.group.unique().tolist() == ["all"]
    assert km.horizons.survival.item() == pytest.approx(1 / 3)
    assert km.conf_type == "log" and km.variance == "greenwood"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"time": [1, -2], "event": [1, 0]}, "non-negative"),
        ({"time": [1, 2], "event": [1, 2]}, "0 \\(censored\\) or 1"),
        ({"time": [1, 2], "event": [1]}, "event has 1 values but time has 2"),
        ({"time": [1, np.nan], "event": [1, 0]}, "time has 1 missing values"),
        ({"time": [1, 2], "event": [1, 0], "weights": [1, 0]}, "weights must be finite and positive"),
        ({"time": [1, 2], "event": [1, 0], "cluster": [1, 1]}, "pass variance='robust'"),
        ({"time": [1, 2], "event": [1, 0], "variance": "jackknife"}, "variance must be"),
        ({"time": [1, 2], "event": [1, 0], "horizons": (-1,)}, "horizons must be"),
        ({"time": [], "event": []}, "time is empty"),
        ({"time": ["a", "b"], "event": [1, 0]}, "time must be numeric"),
    ],
)
def test_km_rejects_bad_input(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        kaplan_meier(**kwargs)


# --------------------------------------------------------------------------------------
# Log-rank
# --------------------------------------------------------------------------------------


def test_log_rank_rossi_fin_matches_r_survdiff(rossi, r_results):
    ref = r_results["rossi"]["survdiff_fin"]
    result = log_rank_test(rossi.week, rossi.arrest, rossi.fin)
    assert round(result.chi2, 2) == 3.84
    assert result.chi2 == pytest.approx(ref["chisq"], rel=1e-10)
    assert result.df == 1
    assert result.p == pytest.approx(stats.chi2.sf(ref["chisq"], 1), rel=1e-10)
    np.testing.assert_allclose(result.table.observed, ref["observed"])
    np.testing.assert_allclose(result.table.expected, ref["expected"], rtol=1e-10)
    assert result.table.n.tolist() == [216, 216]


def test_log_rank_matched_sample_matches_r_survdiff(matched, r_results):
    ref = r_results["matched"]["survdiff"]
    result = log_rank_test(matched.time, matched.event, matched.treat)
    assert result.chi2 == pytest.approx(ref["chisq"], rel=1e-10)
    np.testing.assert_allclose(result.table.expected, ref["expected"], rtol=1e-10)


def test_log_rank_three_groups_matches_lifelines(rossi):
    prior_band = np.digitize(rossi.prio, [2, 5])
    result = log_rank_test(rossi.week, rossi.arrest, prior_band)
    reference = multivariate_logrank_test(rossi.week, prior_band, rossi.arrest)
    assert result.df == 2
    assert result.chi2 == pytest.approx(reference.test_statistic, rel=1e-9)
    assert result.p == pytest.approx(reference.p_value, rel=1e-9)


def test_log_rank_needs_two_groups():
    with pytest.raises(ValueError, match="at least two groups, got 1"):
        log_rank_test([1, 2], [1, 1], ["a", "a"])


# --------------------------------------------------------------------------------------
# Cox, covariate-adjusted (lifelines)
# --------------------------------------------------------------------------------------


def test_cox_adjusted_reproduces_published_rossi_table(rossi_fit):
    table = rossi_fit.table.set_index("covariate")
    assert table.loc["fin", "coef"] == pytest.approx(-0.37942, abs=1e-4)
    assert table.loc["fin", "se"] == pytest.approx(0.19138, abs=1e-4)
    assert table.loc["fin", "p"] == pytest.approx(0.0474, abs=1e-4)
    assert table.loc["prio", "coef"] == pytest.approx(0.09150, abs=1e-4)
    assert table.loc["prio", "se"] == pytest.approx(0.02865, abs=1e-4)
    assert rossi_fit.n == 432 and rossi_fit.n_events == 114


def test_cox_adjusted_matches_r_coxph_table(rossi_fit, r_results):
    ref = r_results["rossi"]["coxph"]
    table = rossi_fit.table
    assert table.covariate.tolist() == ref["term"]
    for column in ("coef", "se", "z", "p"):
        np.testing.assert_allclose(table[column], ref[column], rtol=1e-6, atol=1e-9, err_msg=column)
    np.testing.assert_allclose(table.hr, np.exp(ref["coef"]), rtol=1e-6)
    np.testing.assert_allclose(table.hr_lower, np.exp(np.array(ref["coef"]) - Z95 * np.array(ref["se"])), rtol=1e-6)
    np.testing.assert_allclose(table.hr_upper, np.exp(np.array(ref["coef"]) + Z95 * np.array(ref["se"])), rtol=1e-6)
    assert rossi_fit.log_likelihood == pytest.approx(ref["loglik"], rel=1e-9)


def test_cox_adjusted_ph_test_matches_r_cox_zph(rossi_fit, r_results):
    ref = r_results["rossi"]["cox_zph"]
    ph = rossi_fit.ph_test
    assert ph.table.term.tolist() == ref["term"]
    np.testing.assert_allclose(ph.table.chisq, ref["chisq"], rtol=1e-5)
    np.testing.assert_allclose(ph.table.p, ref["p"], rtol=1e-5)
    assert ph.table.df.tolist() == ref["df"]
    assert ph.warning.startswith("The proportional-hazards assumption looks doubtful for age (p = 0.0145), wexp (p = 0.0398)")


def test_cox_adjusted_encodes_text_covariates_against_first_level(rossi, r_results):
    relabelled = rossi.assign(fin=rossi.fin.map({0: "no", 1: "yes"}))
    fit = cox_adjusted(relabelled, "week", "arrest", ROSSI_COVARIATES)
    assert fit.table.covariate.tolist()[0] == "fin[yes]"
    assert fit.table.coef[0] == pytest.approx(r_results["rossi"]["coxph"]["coef"][0], rel=1e-6)


def test_cox_adjusted_equals_lifelines_with_ties_and_a_text_covariate():
    # An independent fit: lifelines' CoxPHFitter (Efron ties) on indicators made by pandas,
    # converged far beyond its default precision.
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(3)
    n = 1500
    data = pd.DataFrame({
        "treated": rng.binomial(1, 0.3, n),
        "age": rng.normal(33, 8, n),
        "prior": rng.poisson(3, n),
        "region": rng.choice(["North", "South", "Wales"], n),
    })
    hazard = 0.004 * np.exp(-0.3 * data.treated + 0.02 * (data.age - 33) + 0.1 * data.prior
                            + 0.4 * (data.region == "Wales"))
    event_day = rng.exponential(1 / hazard)
    follow_up = rng.uniform(100, 400, n)
    data["time"] = np.ceil(np.minimum(event_day, follow_up) / 7)  # whole weeks: many tied times
    data["event"] = (event_day <= follow_up).astype(int)
    fit = cox_adjusted(data, "time", "event", ["treated", "age", "prior", "region"])

    design = pd.get_dummies(data[["treated", "age", "prior", "region"]], columns=["region"], drop_first=True,
                            prefix_sep="[", dtype=float).rename(columns=lambda c: c + "]" if "[" in c else c)
    reference = CoxPHFitter().fit(design.assign(time=data.time, event=data.event), "time", "event",
                                  fit_options={"precision": 1e-14, "max_steps": 200})
    assert fit.table.covariate.tolist() == ["treated", "age", "prior", "region[South]", "region[Wales]"]
    assert data.time[data.event == 1].duplicated().sum() > 200
    np.testing.assert_allclose(fit.table.coef, reference.params_.to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(fit.table.se, reference.standard_errors_.to_numpy(), rtol=1e-8)
    assert fit.log_likelihood == pytest.approx(reference.log_likelihood_, rel=1e-12)
    assert (fit.n, fit.n_events) == (n, data.event.sum())


@pytest.mark.parametrize(
    ("covariates", "error", "message"),
    [
        (["fin", "nope"], KeyError, "columns not in data: \\['nope'\\]"),
        ([], ValueError, "covariates is empty"),
        (["fin", "constant"], ValueError, "covariate 'constant' is constant"),
        (["fin", "gappy"], ValueError, "covariate 'gappy' has 1 missing values"),
    ],
)
def test_cox_adjusted_rejects_bad_covariates(rossi, covariates, error, message):
    data = rossi.assign(constant=1.0, gappy=rossi.age.where(rossi.index != 3))
    with pytest.raises(error, match=message):
        cox_adjusted(data, "week", "arrest", covariates)


# --------------------------------------------------------------------------------------
# Cox, treatment-only on a matched sample
# --------------------------------------------------------------------------------------


def test_cox_matched_matches_r_coxph_weights_cluster(matched_fit, r_results):
    ref = r_results["matched"]["coxph_cluster"]
    assert matched_fit.coef == pytest.approx(ref["coef"], abs=1e-6, rel=1e-9)
    assert matched_fit.se == pytest.approx(ref["se"], abs=1e-6, rel=1e-9)
    assert matched_fit.robust_se == pytest.approx(ref["robust_se"], abs=1e-6, rel=1e-9)
    assert matched_fit.log_likelihood == pytest.approx(ref["loglik"], rel=1e-10)
    assert (matched_fit.n, matched_fit.n_events, matched_fit.n_clusters) == (ref["n"], ref["nevent"], ref["n_clusters"])
    # Wald interval and test use the robust SE, as R's summary(coxph(..., cluster)) does.
    assert matched_fit.hr_lower == pytest.approx(np.exp(ref["coef"] - Z95 * ref["robust_se"]), rel=1e-9)
    assert matched_fit.hr_upper == pytest.approx(np.exp(ref["coef"] + Z95 * ref["robust_se"]), rel=1e-9)
    assert matched_fit.p == pytest.approx(2 * stats.norm.sf(abs(ref["coef"] / ref["robust_se"])), rel=1e-8)


def test_cox_matched_to_frame(matched_fit):
    frame = matched_fit.to_frame()
    assert frame.columns.tolist() == ["covariate", "coef", "se", "robust_se", "hr", "hr_lower", "hr_upper", "z", "p"]
    assert frame.shape == (1, 9)
    assert frame.hr.item() == pytest.approx(np.exp(matched_fit.coef))


def test_cox_matched_defaults_r_control_agrees_too(matched_fit, r_results):
    ref = r_results["matched"]["coxph_cluster_default_control"]
    assert matched_fit.coef == pytest.approx(ref["coef"], abs=1e-9)
    assert matched_fit.robust_se == pytest.approx(ref["robust_se"], abs=1e-9)


def test_cox_matched_robust_without_cluster_matches_r(matched, r_results):
    ref = r_results["matched"]["coxph_robust_no_cluster"]
    fit = cox_matched(matched.time, matched.event, matched.treat, matched.weight)
    assert fit.robust_se == pytest.approx(ref["robust_se"], rel=1e-9)
    assert fit.n_clusters == 2400


def test_cox_matched_unweighted_clustered_matches_r(matched, r_results):
    ref = r_results["matched"]["coxph_unweighted_cluster"]
    fit = cox_matched(matched.time, matched.event, matched.treat, cluster=matched.subclass.astype(str))
    assert fit.coef == pytest.approx(ref["coef"], rel=1e-9)
    assert fit.se == pytest.approx(ref["se"], rel=1e-9)
    assert fit.robust_se == pytest.approx(ref["robust_se"], rel=1e-9)
    zph = r_results["matched"]["cox_zph_unweighted"]
    assert fit.ph_test.table.chisq[0] == pytest.approx(zph["chisq"][0], rel=1e-8)


def test_cox_matched_rossi_fin_matches_r(rossi, r_results):
    ref = r_results["rossi"]["coxph_fin_robust"]
    fit = cox_matched(rossi.week, rossi.arrest, rossi.fin)
    assert fit.coef == pytest.approx(ref["coef"], rel=1e-9)
    assert fit.se == pytest.approx(ref["se"], rel=1e-9)
    assert fit.robust_se == pytest.approx(ref["robust_se"], rel=1e-9)
    assert fit.ph_test.table.chisq[0] == pytest.approx(r_results["rossi"]["cox_zph_fin"]["chisq"][0], rel=1e-8)


def test_cox_matched_ph_test_matches_r_cox_zph(matched_fit, r_results):
    ref = r_results["matched"]["cox_zph"]
    table = matched_fit.ph_test.table
    assert table.term.tolist() == ["treated", "GLOBAL"]
    np.testing.assert_allclose(table.chisq, ref["chisq"], rtol=1e-8)
    np.testing.assert_allclose(table.p, ref["p"], rtol=1e-8)
    assert matched_fit.ph_test.warning is None


@pytest.mark.parametrize("ascending", [True, False], ids=["rows in time order", "rows in reverse time order"])
def test_cox_fits_match_r_whatever_the_row_order(rossi, matched, r_results, ascending):
    # The fits put rows in time order themselves (and skip that when they already are);
    # R's numbers come from the rows in the order of the fixtures.
    rossi = rossi.sort_values("week", ascending=ascending, kind="stable")
    adjusted = cox_adjusted(rossi, "week", "arrest", ROSSI_COVARIATES)
    ref = r_results["rossi"]["coxph"]
    np.testing.assert_allclose(adjusted.table.coef, ref["coef"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(adjusted.table.se, ref["se"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(adjusted.ph_test.table.chisq, r_results["rossi"]["cox_zph"]["chisq"], rtol=1e-5)
    matched = matched.sort_values("time", ascending=ascending, kind="stable")
    fit = cox_matched(matched.time, matched.event, matched.treat, matched.weight, matched.subclass)
    ref = r_results["matched"]["coxph_cluster"]
    assert fit.coef == pytest.approx(ref["coef"], abs=1e-6, rel=1e-9)
    assert fit.robust_se == pytest.approx(ref["robust_se"], abs=1e-6, rel=1e-9)
    assert fit.ph_test.table.chisq[0] == pytest.approx(r_results["matched"]["cox_zph"]["chisq"][0], rel=1e-8)


def test_cox_matched_score_residuals_sum_to_zero_within_one_large_cluster(matched):
    # One cluster holding everyone: the summed weighted score at the estimate is 0, so the
    # robust variance collapses to 0.
    fit = cox_matched(matched.time, matched.event, matched.treat, matched.weight, cluster=np.zeros(len(matched)))
    assert fit.n_clusters == 1
    assert fit.robust_se == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize(
    ("treatment", "weights", "message"),
    [
        ([0, 1, 2, 1], None, "treatment must be 0 \\(comparison\\) or 1 \\(treated\\)"),
        ([1, 1, 1, 1], None, "treatment has only one value"),
        ([0, 1, 0, 1], [1, 1, 0, 1], "drop unmatched rows"),
        ([0, 1, 0], None, "treatment has 3 values but time has 4"),
    ],
)
def test_cox_matched_rejects_bad_input(treatment, weights, message):
    with pytest.raises(ValueError, match=message):
        cox_matched([1, 2, 3, 4], [1, 0, 1, 1], treatment, weights)


@pytest.mark.parametrize(("event", "group"), [([1, 1, 0, 1, 0, 0], "treated"), ([0, 0, 1, 0, 1, 0], "comparison")])
def test_cox_matched_refuses_a_group_without_events(event, group):
    with pytest.raises(ValueError, match=f"no events in the {group} group: the hazard ratio is 0 or infinite"):
        cox_matched([1, 2, 3, 4, 5, 6], event, [0, 0, 1, 0, 1, 1])


def test_ph_test_with_all_events_at_one_time_is_reported_untestable():
    fit = cox_matched([2, 2, 2, 2, 5, 6], [1, 1, 1, 1, 0, 0], [0, 1, 1, 0, 1, 0])
    assert fit.ph_test.table.chisq.isna().all()
    assert fit.ph_test.warning == "Proportional hazards cannot be tested: every event happened at the same time."


def test_cox_matched_rejects_mismatched_cluster():
    with pytest.raises(ValueError, match="cluster has shape \\(3,\\) but time has 4 values"):
        cox_matched([1, 2, 3, 4], [1, 0, 1, 1], [0, 1, 0, 1], cluster=[1, 1, 2])


def test_proportional_hazards_test_warning_and_argument_checks(rossi):
    flagged = proportional_hazards_test(
        rossi.week, rossi.arrest, rossi[["age"]], [-0.05], names=["age"], alpha=0.99
    )
    assert flagged.warning.startswith("The proportional-hazards assumption looks doubtful for age (p = ")
    with pytest.raises(ValueError, match="names has 2 entries but covariates have 1 columns"):
        proportional_hazards_test(rossi.week, rossi.arrest, rossi[["age"]], [-0.05], names=["a", "b"])
    with pytest.raises(ValueError, match="coef has 2 values but covariates have 1 columns"):
        proportional_hazards_test(rossi.week, rossi.arrest, rossi[["age"]], [-0.05, 1.0])


# --------------------------------------------------------------------------------------
# Restricted mean survival time
# --------------------------------------------------------------------------------------


def test_rmst_by_hand():
    # Group 0: events at 2 and 4. S = 1 on [0,2), 0.5 on [2,4), 0 after: area to 10 = 2 + 1.
    # Variance: at t=2, area from 2 to 10 is 1 and d/(n(n-d)) = 1/2; at t=4 everyone at
    # risk fails, which R counts as 0. So se = sqrt(1/2).
    # Group 1: events at 6 and 8: area = 6 + 1 = 7, same variance.
    result = restricted_mean_survival_time([2, 4, 6, 8], [1, 1, 1, 1], [0, 0, 1, 1], tau=10)
    assert result.groups.rmst.tolist() == [3.0, 7.0]
    np.testing.assert_allclose(result.groups.se, [np.sqrt(0.5)] * 2)
    assert result.difference == 4.0
    assert result.se == pytest.approx(1.0)
    assert result.p == pytest.approx(2 * stats.norm.sf(4.0))
    assert (result.group, result.reference) == (1, 0)


def test_rmst_tau_before_first_event_is_tau_with_zero_variance():
    result = restricted_mean_survival_time([5, 6, 7, 8], [1, 1, 1, 0], ["a", "a", "b", "b"], tau=3)
    assert result.groups.rmst.tolist() == [3.0, 3.0]
    assert result.groups.se.tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("tau", "weighted", "key"),
    [(365, True, "rmean_weighted_365"), (365, False, "rmean_unweighted_365"), (1000, True, "rmean_weighted_1000")],
)
def test_rmst_matches_r_rmean(matched, r_results, tau, weighted, key):
    ref = r_results["matched"][key]
    result = restricted_mean_survival_time(
        matched.time, matched.event, matched.treat, tau=tau, weights=matched.weight if weighted else None
    )
    np.testing.assert_allclose(result.groups.rmst, ref["rmean"], rtol=1e-10)
    np.testing.assert_allclose(result.groups.se, ref["se"], rtol=1e-10)
    difference = ref["rmean"][1] - ref["rmean"][0]
    se = np.hypot(*ref["se"])
    assert result.difference == pytest.approx(difference, rel=1e-10)
    assert result.se == pytest.approx(se, rel=1e-10)
    assert result.lower == pytest.approx(difference - Z95 * se, rel=1e-10)
    assert result.p == pytest.approx(2 * stats.norm.sf(abs(difference / se)), rel=1e-8)
    assert (result.note is None) == (tau == 365)


@pytest.mark.parametrize(("tau", "key"), [(52, "rmean_fin_52"), (30, "rmean_fin_30")])
def test_rmst_rossi_matches_r_rmean(rossi, r_results, tau, key):
    ref = r_results["rossi"][key]
    result = restricted_mean_survival_time(rossi.week, rossi.arrest, rossi.fin, tau=tau)
    np.testing.assert_allclose(result.groups.rmst, ref["rmean"], rtol=1e-10)
    np.testing.assert_allclose(result.groups.se, ref["se"], rtol=1e-10)


def test_rmst_reference_reverses_the_difference(rossi):
    result = restricted_mean_survival_time(rossi.week, rossi.arrest, rossi.fin, tau=52, reference=1)
    assert result.groups.group.tolist() == [1, 0]
    assert result.difference == pytest.approx(44.833333333333 - 46.875, rel=1e-9)


@pytest.mark.parametrize(
    ("group", "tau", "reference", "message"),
    [
        ([0, 1, 2, 2], 5, None, "exactly two groups, got 3"),
        ([0, 1, 1, 0], -1, None, "tau must be a positive number"),
        ([0, 1, 1, 0], 5, 7, "reference 7 is not one of the groups"),
    ],
)
def test_rmst_rejects_bad_input(group, tau, reference, message):
    with pytest.raises(ValueError, match=message):
        restricted_mean_survival_time([1, 2, 3, 4], [1, 1, 0, 1], group, tau=tau, reference=reference)
