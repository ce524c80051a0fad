"""Balance statistics against R MatchIt summary() (tests/fixtures/matchit/make_fixtures.R)
and hand-worked values."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.balance import assess_balance, sample_size_table

FIXTURES = Path(__file__).parent / "fixtures" / "matchit"
COVARIATES = ["age", "prior_offences", "risk_score", "female", "employed", "region"]
STATS = ["mean_treated", "mean_control", "smd", "variance_ratio", "ecdf_mean", "ecdf_max"]
SCENARIOS = ["nn1", "nn2", "nn1_replace", "nn1_caliper", "nn2_caliper", "nn1_exact", "nn1_replace_caliper"]


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "data.csv.gz")


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    table = pd.read_csv(FIXTURES / "balance.csv")
    table["term"] = table.term.str.replace(r"^region(\w+)$", r"region[\1]", regex=True)
    return table


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_matches_r_summary(cohort, reference, scenario):
    weights = pd.read_csv(FIXTURES / f"units_{scenario}.csv.gz").weights.to_numpy()
    result = assess_balance(cohort, cohort.treat, COVARIATES, weights=weights, distance=cohort.lp)
    expected = reference[reference.scenario == scenario]
    merged = expected.merge(result.table, on=["term", "stage"], suffixes=("_r", ""), validate="one_to_one")
    assert len(merged) == len(expected) == len(result.table) == 20
    for stat in STATS:
        np.testing.assert_allclose(merged[stat], merged[f"{stat}_r"], rtol=1e-9, atol=1e-12, err_msg=stat)
    sizes = pd.read_csv(FIXTURES / "sample_sizes.csv")
    sizes = sizes[sizes.scenario == scenario].set_index("row").loc[result.sample_sizes.index]
    np.testing.assert_allclose(result.sample_sizes.to_numpy(), sizes[["control", "treated"]].to_numpy(), rtol=1e-12)


def test_terms_cover_every_region_level(cohort):
    result = assess_balance(cohort, cohort.treat, COVARIATES)
    assert result.table.term.tolist() == [
        "age", "prior_offences", "risk_score", "female", "employed",
        "region[Midlands]", "region[North]", "region[South]", "region[Wales]",
    ]
    assert result.sample_sizes is None
    assert set(result.table.stage) == {"all"}


def test_hand_worked_statistics():
    # age: treated 20, 30, 40 (mean 30, SD 10); comparison 25, 35, 45 (mean 35, SD 10).
    # female: treated 2/3, comparison 1/3; SD sqrt(2/3 * 1/3).
    # eCDF gaps of age at 20, 25, 30, 35, 40, 45: 1/3, 0, 1/3, 0, 1/3, 0.
    data = pd.DataFrame({"age": [20, 30, 40, 25, 35, 45], "female": [1, 0, 1, 0, 0, 1]})
    treated = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    table = assess_balance(data, treated, ["age", "female"]).table.set_index("term")
    assert table.loc["age", "smd"] == pytest.approx(-0.5)
    assert table.loc["age", "variance_ratio"] == pytest.approx(1.0)
    assert table.loc["age", "ecdf_mean"] == pytest.approx(1 / 6)
    assert table.loc["age", "ecdf_max"] == pytest.approx(1 / 3)
    assert table.loc["female", "smd"] == pytest.approx((1 / 3) / np.sqrt(2 / 9))
    assert np.isnan(table.loc["female", "variance_ratio"])
    assert table.loc["female", "ecdf_max"] == pytest.approx(1 / 3)
    assert table.loc["female", "binary"]


def test_weighted_matched_stage_and_thresholds():
    # After weighting only rows 0, 3 and 4 count: treated age 20, comparison 25 and 35
    # with weights 1 and 3 -> comparison mean 32.5; SMD uses the full-sample treated SD 10.
    data = pd.DataFrame({"age": [20, 30, 40, 25, 35, 45]})
    treated = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    weights = np.array([1, 0, 0, 1, 3, 0])
    result = assess_balance(data, treated, ["age"], weights=weights)
    matched = result.table.set_index("stage").loc["matched"]
    assert matched.mean_control == pytest.approx(32.5)
    assert matched.smd == pytest.approx(-1.25)
    assert not matched.smd_ok
    assert not result.balanced
    assert result.sample_sizes.loc["Matched", "control"] == 2
    assert result.sample_sizes.loc["Matched (ESS)", "control"] == pytest.approx(16 / 10)
    assert "SMD over threshold: age" in result.summary()


def test_negligible_difference_is_reported_unstandardised():
    data = pd.DataFrame({"x": [1.0, 2.0, 3.0, 1.0, 2.0, 3.0 + 1e-12]})
    treated = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    smd = assess_balance(data, treated, ["x"]).table.smd.iloc[0]
    assert smd == pytest.approx(-1e-12 / 3, abs=1e-15)


def test_constant_treated_covariate_uses_the_pooled_sd():
    # Treated all 0 -> treated SD 0; pooled binary SD: sum over groups of s (1 - s/n_g) / n
    # = 0 + 2 (1 - 2/4) / 7 = 1/7.
    data = pd.DataFrame({"flag": [0, 0, 0, 1, 1, 0, 0]})
    treated = np.array([1, 1, 1, 0, 0, 0, 0], dtype=bool)
    smd = assess_balance(data, treated, ["flag"]).table.smd.iloc[0]
    assert smd == pytest.approx(-0.5 / np.sqrt(1 / 7))


def test_sample_size_table():
    table = sample_size_table([1, 1, 0, 0, 0], [1, 0, 2, 2, 0])
    assert table.loc["Matched"].tolist() == [2, 1]
    assert table.loc["Unmatched"].tolist() == [1, 1]
    assert table.loc["Matched (ESS)", "control"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(covariates=["height"]), "not in the data: 'height'"),
        (dict(weights=np.array([1, -1, 1, 1])), "finite and non-negative"),
        (dict(weights=np.array([1, 1, 0, 0])), "no treated or no comparison"),
        (dict(weights=np.ones(3)), "weights has 3 values"),
    ],
)
def test_bad_input_is_explained(kwargs, message):
    data = pd.DataFrame({"age": [20.0, 30.0, 25.0, 35.0]})
    arguments = dict(covariates=["age"]) | kwargs
    with pytest.raises(ValueError, match=message):
        assess_balance(data, [1, 1, 0, 0], **arguments)


def _plain_ecdf_gaps(x, treated, w):
    """Mean and max |F_treated - F_comparison| over the distinct values, each weighted eCDF read
    directly (no running sums)."""
    gaps = []
    for value in np.unique(x):
        below = x <= value
        gaps.append(abs(w[treated & below].sum() / w[treated].sum() - w[~treated & below].sum() / w[~treated].sum()))
    return np.mean(gaps), np.max(gaps)


def test_ecdf_gaps_equal_a_plain_computation_with_few_and_many_distinct_values():
    # Ages (63 values among 6000 people: counted per value) and a continuous score (sorted).
    rng = np.random.default_rng(7)
    n = 6000
    data = pd.DataFrame({"age": rng.integers(18, 81, n), "score": rng.normal(size=n)})
    treated = rng.random(n) < 0.3
    weights = np.where(treated, 1.0, rng.choice([0.0, 0.5, 2.0], n))
    table = assess_balance(data, treated, ["age", "score"], weights=weights).table.set_index(["term", "stage"])
    for name in ("age", "score"):
        x = data[name].to_numpy(float)
        for stage, w in (("all", np.ones(n)), ("matched", weights)):
            want = _plain_ecdf_gaps(x, treated, w)
            got = table.loc[(name, stage), ["ecdf_mean", "ecdf_max"]].to_numpy(float)
            np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"{name} {stage}")
