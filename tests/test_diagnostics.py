"""Study diagnostics against independent computations: statsmodels' power functions and the
closed form, Rosenbaum's worked example (Hammond's smoking pairs) and brute-force enumeration,
a hand-built regression, and the folded normal mean by numerical integration."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import integrate, stats
from statsmodels.stats.power import NormalIndPower

from models.diagnostics import (
    FAIL, PASS, MatchedSets, NegativeControl, NullDistribution, Thresholds, assess_design, balance_summary,
    doubly_robust_difference, fit_null, matched_sets_table, minimum_detectable_difference, overlap,
    participants_needed, preference_score, rosenbaum_gamma, rosenbaum_upper_p, too_few_participants,
)

FIXTURES = Path(__file__).parent / "fixtures" / "rosenbaum"
Z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)


# --- power -------------------------------------------------------------------------------------

@pytest.mark.parametrize("p0, n1, n0, deff", [(0.4, 400, 400, 1.0), (0.25, 150, 300, 1.3), (0.6, 60, 60, 1.0)])
def test_minimum_detectable_difference_matches_statsmodels(p0, n1, n0, deff):
    h = NormalIndPower().solve_power(effect_size=None, nobs1=n1 / deff, alpha=0.05, power=0.8, ratio=n0 / n1)
    expected = p0 - np.sin(np.arcsin(np.sqrt(p0)) - h / 2) ** 2

    mdd = minimum_detectable_difference(p0, n1, n0, design_effect=deff)

    assert mdd == pytest.approx(expected, rel=1e-6)  # statsmodels' root finder stops at about 1e-7


def test_minimum_detectable_difference_by_hand():
    # 400 and 400 people, comparison rate 40%: h = 2.8016 * sqrt(2 / 400) = 0.198102 (the far tail
    # adds under 1e-9 of power), so p1 = sin(0.684719 - h / 2)^2 = sin(0.585668)^2 = 0.305540.
    h = Z * np.sqrt(2 / 400)
    assert h == pytest.approx(0.198102, abs=1e-6)
    assert minimum_detectable_difference(0.4, 400, 400) == pytest.approx(0.4 - 0.305540, abs=2e-6)


def test_participants_needed_matches_statsmodels_and_the_closed_form():
    h = 2 * np.arcsin(np.sqrt(0.4)) - 2 * np.arcsin(np.sqrt(0.3))
    by_statsmodels = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=1)
    closed_form = 2 * (Z / h) ** 2  # 355.42: the far tail is negligible

    assert participants_needed(0.4, 0.1) == int(np.ceil(by_statsmodels)) == int(np.ceil(closed_form)) == 356
    # 2 comparison people each and a design effect of 1.2
    by_statsmodels = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=2)
    assert participants_needed(0.4, 0.1, ratio=2, design_effect=1.2) == int(np.ceil(by_statsmodels * 1.2))
    assert participants_needed(0.4, 0.05) == int(np.ceil(2 * (Z / (2 * np.arcsin(np.sqrt(0.4))
                                                                    - 2 * np.arcsin(np.sqrt(0.35)))) ** 2))


def test_power_rejects_impossible_rates():
    with pytest.raises(ValueError, match="between 0 and 1"):
        minimum_detectable_difference(0.0, 100, 100)
    with pytest.raises(ValueError, match="reduction < comparison rate"):
        participants_needed(0.04, 0.05)


# --- Rosenbaum bounds ----------------------------------------------------------------------------

def hammond() -> MatchedSets:
    # 122 discordant pairs: the smoker died of lung cancer in 110 (Rosenbaum 2002, p. 112)
    return MatchedSets(np.array([1]), np.array([2]), np.array([122]), np.array([110]))


def test_rosenbaum_upper_bounds_reproduce_binarysens_on_hammonds_pairs():
    fixture = pd.read_csv(FIXTURES / "hammond.csv")
    bounds = [rosenbaum_upper_p(hammond(), g) for g in fixture["gamma"]]
    np.testing.assert_allclose(bounds, fixture["upper"], rtol=1e-9)


def test_hammonds_result_is_insensitive_up_to_gamma_five_as_published():
    # Rosenbaum (2002): the conclusion holds up to Gamma = 5 and not at Gamma = 6.
    gamma = rosenbaum_gamma(hammond())
    assert 5 < gamma < 6
    assert rosenbaum_upper_p(hammond(), gamma) == pytest.approx(0.05, abs=1e-9)


def test_pairs_table_counts_discordant_pairs_in_the_direction_of_the_effect():
    # 5 pairs: (treated, comparison) outcomes (0,1) (0,1) (0,1) (1,0) (1,1)
    outcome = [0, 1, 0, 1, 0, 1, 1, 0, 1, 1]
    treated = [1, 0] * 5
    subclass = np.repeat(np.arange(1, 6), 2)
    table = matched_sets_table(outcome, treated, subclass, benefit=True)
    assert (table.events.tolist(), table.size.tolist(), table.sets.tolist(), table.statistic) == ([1], [2], [4], 3)
    # at Gamma = 1 the bound is the sign test: P(Binomial(4, 1/2) >= 3) = 5/16
    assert rosenbaum_upper_p(table, 1.0) == pytest.approx(5 / 16)


def brute_force_upper_p(sets: list[tuple[int, list[int]]], statistic: int, gamma: float) -> float:
    """Max over every hidden u in {0,1}^n per set of P(T >= statistic), T the number of sets whose
    treated person has the outcome, treatment within a set chosen with odds gamma^u."""
    worst = 0.0
    per_set_u = [list(itertools.product((0, 1), repeat=len(outcomes))) for _, outcomes in sets]
    for us in itertools.product(*per_set_u):
        pmf = np.array([1.0])
        for (_, outcomes), u in zip(sets, us):
            odds = np.array([gamma ** ui for ui in u])
            p_event = float(odds[np.array(outcomes) == 1].sum() / odds.sum())
            pmf = np.convolve(pmf, [1 - p_event, p_event])
        worst = max(worst, pmf[statistic:].sum())
    return worst


def test_k_to_one_bound_equals_the_worst_case_found_by_enumeration():
    # 2:1 sets, outcomes listed treated first: 4 informative sets and one with no events
    sets = [(1, [1, 0, 1]), (2, [1, 0, 0]), (3, [0, 1, 0]), (4, [1, 1, 0]), (5, [0, 0, 0])]
    outcome = [y for _, ys in sets for y in ys]
    treated = [1, 0, 0] * len(sets)
    subclass = np.repeat([s for s, _ in sets], 3)
    table = matched_sets_table(outcome, treated, subclass, benefit=False)
    informative = [s for s in sets if 0 < sum(s[1]) < 3]
    assert table.statistic == 3
    for gamma in (1.0, 1.7, 3.0):
        assert rosenbaum_upper_p(table, gamma) == pytest.approx(brute_force_upper_p(informative, 3, gamma), rel=1e-12)


def test_gamma_is_missing_when_the_result_is_not_significant_without_hidden_bias():
    table = MatchedSets(np.array([1]), np.array([2]), np.array([10]), np.array([6]))
    assert np.isnan(rosenbaum_gamma(table))


# --- negative controls and systematic error ------------------------------------------------------

def test_one_negative_control_gives_a_point_null_and_its_absolute_estimate():
    null = fit_null([-0.3], [0.1])
    assert null.mean == pytest.approx(-0.3, abs=1e-6)
    assert null.sd == 0.0
    assert null.expected_absolute_systematic_error == pytest.approx(0.3, abs=1e-6)


def test_null_with_equal_standard_errors_has_the_closed_form_fit():
    estimates = np.array([0.1, 0.5, -0.2, 0.4, 0.3])
    null = fit_null(estimates, [0.05] * 5)
    spread = estimates.var()  # ML: tau^2 = mean squared deviation - se^2
    assert null.mean == pytest.approx(estimates.mean(), abs=1e-5)
    assert null.sd == pytest.approx(np.sqrt(spread - 0.05**2), abs=1e-5)


def test_expected_absolute_systematic_error_is_the_folded_normal_mean():
    for mean, sd in ((0.1, 0.2), (-0.4, 0.1), (0.0, 0.3)):
        expected, _ = integrate.quad(lambda x: abs(x) * stats.norm.pdf(x, mean, sd), -np.inf, np.inf)
        assert NullDistribution(mean, sd).expected_absolute_systematic_error == pytest.approx(expected, rel=1e-8)


# --- doubly robust estimate ----------------------------------------------------------------------

def matched_frame(seed: int = 4, sets: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 2 * sets
    frame = pd.DataFrame({
        "treated": np.tile([1, 0], sets),
        "age": rng.normal(35, 9, n).round(),
        "priors": rng.poisson(3, n),
        "region": rng.choice(["north", "south", "west"], n),
        "subclass": np.repeat(np.arange(1, sets + 1), 2).astype(float),
        "weight": 1.0,
    })
    risk = -1 + 0.03 * (frame.age - 35) + 0.2 * frame.priors - 0.4 * frame.treated
    frame["reoffended"] = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(float)
    return frame


def test_doubly_robust_estimate_equals_a_hand_built_weighted_regression_with_clustered_errors():
    frame = matched_frame()
    frame.loc[frame.index % 7 == 0, "weight"] = 0.0  # some people out of the matched sample
    frame.loc[3, "reoffended"] = np.nan              # an outcome not measured

    estimate = doubly_robust_difference(frame, "reoffended", "treated", frame["weight"], frame["subclass"],
                                        ["age", "priors", "region"], ["region"])

    used = frame[(frame.weight > 0) & frame.reoffended.notna()]
    x = pd.DataFrame({"const": 1.0, "treated": used.treated, "age": used.age, "priors": used.priors,
                      "south": (used.region == "south").astype(float), "west": (used.region == "west").astype(float)})
    fit = sm.WLS(used.reoffended, x, weights=used.weight).fit(cov_type="cluster",
                                                               cov_kwds={"groups": used.subclass.astype(int)})
    assert estimate.difference == pytest.approx(fit.params["treated"], rel=1e-10)
    assert estimate.se == pytest.approx(fit.bse["treated"], rel=1e-10)
    assert (estimate.n, estimate.n_clusters) == (len(used), used.subclass.nunique())


# --- balance, overlap -----------------------------------------------------------------------------

def test_balance_summary_ignores_the_distance_and_finds_the_worst_terms():
    after = pd.DataFrame({"term": ["distance", "age", "priors", "female"], "smd": [0.5, -0.08, 0.12, -0.3],
                          "variance_ratio": [3.0, 0.4, 1.5, np.nan]})
    assert balance_summary(after) == (0.3, "female", 0.4, "age")


def test_preference_score_and_equipoise_by_hand():
    score = np.array([0.1, 0.2, 0.5, 0.05, 0.3])
    treated = np.array([1, 0, 1, 0, 0], dtype=bool)  # P = 0.4
    # logit F = logit S - logit 0.4: S = 0.2 gives F = 0.2*0.6 / (0.2*0.6 + 0.8*0.4) = 0.2727
    expected = score * 0.6 / (score * 0.6 + (1 - score) * 0.4)
    np.testing.assert_allclose(preference_score(score, treated), expected)
    shares = overlap(score, treated, matched=np.array([1, 1, 0, 0, 0], dtype=bool))
    # comparison range 0.05-0.3: participant 0.1 inside, 0.5 outside; F in 0.3-0.7: S = 0.5 (0.6), 0.3 (0.39)
    assert (shares.in_pool_range, shares.matched, shares.equipoise) == (0.5, 0.5, 0.4)


# --- one programme --------------------------------------------------------------------------------

def test_a_programme_with_fourteen_participants_is_told_how_many_more_it_needs():
    diagnostics = too_few_participants(14, Thresholds())
    assert diagnostics.withheld
    assert diagnostics.failed == ["too few participants: 14 of the 60 needed; the estimate would be too uncertain "
                                  "to publish. More participants (a longer cohort period or a later data cut-off) "
                                  "would fix this"]


def test_assess_design_on_a_balanced_matched_sample():
    frame = matched_frame(sets=300)
    frame["pre_offences"] = np.random.default_rng(9).poisson(1.5, len(frame))
    balance = pd.DataFrame({"term": ["age", "priors"], "smd": [0.03, -0.05], "variance_ratio": [1.1, 0.95]})
    result = assess_design(
        frame, outcome="reoffended", weights=frame["weight"], subclass=frame["subclass"],
        propensity=np.full(len(frame), 0.5), balance_after=balance,
        effects={"matched": -0.08, "naive": -0.1, "adjusted": -0.07, "comparison_value": 0.4, "e_value": 1.6},
        covariates=["age", "priors", "region"], categorical=["region"],
        negative_controls=[NegativeControl("pre_offences", "offences in the year before")],
    )
    status = dict(zip(result.table.diagnostic, result.table.status))
    assert status["minimum_sample"] == status["balance"] == status["matched_share"] == PASS
    assert status["negative_control"] == PASS
    assert set(result.estimates.estimate) == {"negative_control", "doubly_robust"}
    power = result.table.set_index("diagnostic").loc["power"]
    # pairs that share nothing: the design effect is 1 and the detectable difference the unclustered one
    assert power.value == pytest.approx(minimum_detectable_difference(0.4, 300, 300), rel=0.02)

    rng = np.random.default_rng(10)  # planted difference before the programme
    frame["pre_offences"] = np.where(frame.treated == 1, rng.poisson(0.8, len(frame)), rng.poisson(2.0, len(frame)))
    result = assess_design(
        frame, outcome="reoffended", weights=frame["weight"], subclass=frame["subclass"],
        propensity=np.full(len(frame), 0.5), balance_after=balance.assign(smd=[0.03, 0.4]),
        effects={"matched": -0.08, "comparison_value": 0.4},
        covariates=["age", "priors"], negative_controls=[NegativeControl("pre_offences", "offences before")],
    )
    status = dict(zip(result.table.diagnostic, result.table.status))
    assert status["balance"] == status["negative_control"] == FAIL
    assert result.withheld
    assert "participants and comparison people are too different on priors" in result.failed[0]


def test_diagnostics_settings_default_to_the_published_thresholds_and_refuse_disordered_ones(make_settings):
    settings = make_settings()
    assert Thresholds(**settings.diagnostics.model_dump()) == Thresholds()
    assert (Thresholds().min_participants, Thresholds().max_smd, Thresholds().max_smd_warning,
            Thresholds().max_systematic_error) == (60, 0.1, 0.25, 0.25)
    with pytest.raises(ValueError, match="diagnostics.max_smd_warning must be at least diagnostics.max_smd"):
        make_settings(diagnostics={"max_smd": 0.3, "max_smd_warning": 0.25})
