"""Subgroup effects: exact matching within the subgroup, Holm adjustment, heterogeneity test.

Checked against statsmodels (multipletests, combine_effects), examples worked by hand and the estimates
made the plain way (each variable matched on its own people in data order).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests

from models.effects import matched_difference
from models.matching import match_propensity
from models.subgroups import age_bands, heterogeneity_test, holm, subgroup_effects


def test_holm_by_hand():
    # sorted: 0.005, 0.01, 0.03, 0.04 (m = 4) -> 4*0.005, 3*0.01, 2*0.03, 1*0.04 = 0.02, 0.03, 0.06, 0.04;
    # step-down keeps them non-decreasing: 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # capped at 1; a missing p-value stays missing and does not count
    adjusted = holm([0.6, np.nan, 0.2])
    assert adjusted[[0, 2]].tolist() == pytest.approx([0.6, 0.4]) and np.isnan(adjusted[1])
    assert holm([0.7, 0.9]).tolist() == pytest.approx([1.0, 1.0])


def test_holm_matches_statsmodels():
    p = np.random.default_rng(3).uniform(0, 0.2, 40) ** 2
    p[[4, 9]] = p[[7, 7]]  # ties
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1], abs=1e-15)


def test_heterogeneity_test_matches_statsmodels_and_a_worked_example():
    # w = 625, 400; pooled = (625 * -0.10 + 400 * 0.02) / 1025 = -0.053171
    # Q = 625 * 0.046829^2 + 400 * 0.073171^2 = 1.370599 + 2.141582 = 3.512195
    test = heterogeneity_test([-0.10, 0.02], [0.04, 0.05])
    assert (test.q, test.df) == (pytest.approx(3.512195, abs=1e-6), 1)
    assert test.p_value == pytest.approx(stats.chi2.sf(3.512195, 1), abs=1e-7)
    estimates, se = np.array([-0.12, -0.03, 0.04, -0.08]), np.array([0.05, 0.04, 0.06, 0.03])
    reference = combine_effects(estimates, se**2)
    test = heterogeneity_test(estimates, se)
    assert test.q == pytest.approx(reference.q) and test.df == 3
    assert test.p_value == pytest.approx(reference.test_homogeneity().pvalue)
    with pytest.raises(ValueError, match="at least two"):
        heterogeneity_test([0.1], [0.1])


def test_age_bands():
    bands = age_bands([17, 18, 24, 25, 34, 35, 70, np.nan], [18, 25, 35])
    assert list(bands.categories) == ["under 18", "18-24", "25-34", "35+"]
    assert [None if pd.isna(b) else b for b in bands] == [
        "under 18", "18-24", "18-24", "25-34", "25-34", "35+", "35+", None]


def paired_example() -> pd.DataFrame:
    """Four women and four men took part, each with one comparison person of their own sex nearby.

    Comparison men sit nearer the women who took part (0.01 away) than the comparison women do
    (0.05 away), and comparison women nearer the men who took part: matching that ignored sex
    would pair across sexes.
    """
    base = np.arange(4.0)
    return pd.DataFrame({
        "sex": ["female"] * 8 + ["male"] * 8,
        "treated": [1] * 4 + [0] * 4 + [1] * 4 + [0] * 4,
        "distance": np.r_[base, base + 0.05, base + 0.06, base + 0.01],
        "outcome": [1, 0, 1, 1, 0, 0, 1, 0] + [0, 0, 1, 0, 1, 1, 1, 0],
    })


def test_subgroup_effects_match_exactly_within_the_subgroup_with_clustered_errors():
    data = paired_example()
    result = subgroup_effects(data, data["distance"], "outcome", ["sex"], caliper=None, min_treated=2)
    rows = result.effects.set_index("level")
    # Pairs within sex: women's differences 1, 0, 0, 1 (mean 0.5); men's -1, -1, 0, 0 (mean -0.5).
    # Clustered on the pairs (HC1): V = G/(G-1) * (n-1)/(n-k) * sum (D_g - mean D)^2 / G^2
    #                                 = 4/3 * 7/6 * 1 / 16 = 0.097222 in both sexes.
    se = np.sqrt(4 / 3 * 7 / 6 / 16)
    assert rows.loc["female", ["treated_value", "comparison_value", "difference"]].tolist() == [0.75, 0.25, 0.5]
    assert rows.loc["male", ["treated_value", "comparison_value", "difference"]].tolist() == [0.25, 0.75, -0.5]
    assert rows["se"].tolist() == pytest.approx([se, se])
    assert rows["n_clusters"].tolist() == [4, 4]
    assert rows.loc["female", "ci_lower"] == pytest.approx(0.5 - 1.959964 * se, abs=1e-6)
    p = 2 * stats.norm.sf(0.5 / se)
    assert rows["p_value"].tolist() == pytest.approx([p, p])
    assert rows["p_holm"].tolist() == pytest.approx([min(1, 2 * p)] * 2)
    heterogeneity = result.heterogeneity.iloc[0]
    assert (heterogeneity["variable"], heterogeneity["n_levels"], heterogeneity["df"]) == ("sex", 2, 1)
    assert heterogeneity["q"] == pytest.approx(2 * 0.25 / se**2)  # 5.142857


def test_a_level_below_the_gate_has_counts_but_no_numbers():
    data = paired_example()
    data = data[~data.index.isin([1, 2, 3])].reset_index(drop=True)  # one woman took part
    result = subgroup_effects(data, data["distance"], "outcome", ["sex"], caliper=None, min_treated=2)
    female = result.effects.set_index("level").loc["female"]
    assert (female["gate_status"], female["n_treated"], female["n_comparison"]) == ("too_few_treated", 1, 1)
    assert np.isnan(female["difference"]) and np.isnan(female["p_holm"])
    assert result.heterogeneity.empty  # one estimated level: nothing to compare


def test_people_without_a_value_take_no_part_in_that_variable():
    data = paired_example().assign(band=lambda f: ["a", "a", "a", "a", None, "a", "a", "a"] * 2)
    result = subgroup_effects(data, data["distance"], "outcome", ["band"], caliper=None, min_treated=2)
    row = result.effects.iloc[0]
    # two comparison people lack a band: 6 left for the 8 participants, matched 1:1
    assert (row["level"], row["n_treated"], row["n_comparison"]) == ("a", 6, 6)


def test_settings_default_to_the_declared_subgroups(make_settings):
    settings = make_settings()
    assert settings.subgroups.variables == ["sex", "age_band", "index_type", "risk_band"]
    assert settings.subgroups.age_band_edges == [18, 25, 35]
    assert (settings.risk_model.test_quarters, settings.risk_model.band_thresholds) == (4, [0.2, 0.4])


@pytest.mark.parametrize(("overrides", "message"), [
    ({"subgroups": {"variables": ["sex", "shoe_size"]}}, r"unknown subgroup variable\(s\) \['shoe_size'\]"),
    ({"subgroups": {"age_band_edges": [25, 18]}}, r"age_band_edges must be increasing ages, got \[25, 18\]"),
    ({"risk_model": {"band_thresholds": [0.5, 0.3]}}, "band_thresholds must be two increasing risks"),
    ({"risk_model": {"test_quarters": 0}}, "greater than or equal to 1"),
])
def test_settings_refuse_bad_subgroup_and_risk_model_settings(make_settings, overrides, message):
    from desist.config import SettingsError

    with pytest.raises(SettingsError, match=message):
        make_settings(**overrides)


def plain_subgroup_estimates(data, variables, exact, **matching) -> pd.DataFrame:
    """Each variable matched on its own people in data order (match_propensity, exact on the variable),
    then matched_difference per level: the estimates computed the plain way."""
    rows = []
    for variable in variables:
        people = data[data[variable].notna()].reset_index(drop=True)
        match = match_propensity(people, people["distance"], "treated", exact=[*exact, variable], **matching)
        y = people["outcome"].to_numpy(float)
        for level in people[variable].astype("category").cat.categories:  # a categorical's own order
            here = (match.weights > 0) & ~np.isnan(y) & (people[variable] == level).to_numpy()
            cluster = match.subclass[here] if match.subclass is not None else None
            estimate = matched_difference(y[here], people["treated"].to_numpy()[here] == 1, match.weights[here], cluster)
            rows.append({"variable": variable, "level": level, "n_treated": estimate.n_treated,
                         "n_comparison": estimate.n_comparison, "difference": estimate.difference, "se": estimate.se,
                         "n_clusters": estimate.n_clusters})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("matching", [{"caliper": 0.2}, {"caliper": 0.5, "ratio": 2}, {"caliper": None, "replace": True},
                                      {"caliper": 0.1, "ratio": 3, "replace": True}])
def test_subgroup_effects_equal_matching_each_variable_plainly(matching):
    # Ties in the distance (half the scores coarse), people without a band, a missing outcome and an exact-matching
    # variable: the estimates are those of matching each variable's people in data order.
    rng = np.random.default_rng(7)
    n = 3000
    treated = rng.random(n) < 0.45  # controls run short, so the caliper decides matches
    score = rng.normal(0.4 * treated, 1.0)
    data = pd.DataFrame({
        "treated": treated.astype(int),
        "distance": np.where(rng.random(n) < 0.5, np.round(score, 1), score),
        "sex": rng.choice(["female", "male"], n, p=[0.3, 0.7]),
        "band": pd.Categorical(np.where(score > 1, None, rng.choice(["low", "medium", "high"], n)),
                               categories=["low", "medium", "high"]),  # missing for the highest scores
        "region": rng.choice(["north", "south"], n),
        "outcome": np.where(rng.random(n) < 0.02, np.nan, (rng.random(n) < 0.4 - 0.1 * treated).astype(float)),
    })
    result = subgroup_effects(data, data["distance"], "outcome", ["sex", "band"], exact=["region"], min_treated=1,
                              **matching).effects
    expected = plain_subgroup_estimates(data, ["sex", "band"], ["region"], **matching)
    assert len(result) == len(expected) == 5
    for column in ("variable", "level", "n_treated", "n_comparison", "n_clusters"):
        assert result[column].tolist() == expected[column].tolist(), column
    np.testing.assert_allclose(result["difference"], expected["difference"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(result["se"], expected["se"], rtol=1e-12, atol=1e-15)
