"""Propensity model against R glm (tests/fixtures/matchit/make_fixtures.R) and bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.propensity import (
    CollinearCovariatesError,
    PropensityModelError,
    SeparationError,
    design_matrix,
    fit_propensity,
)

FIXTURES = Path(__file__).parent / "fixtures" / "matchit"
COVARIATES = ["age", "prior_offences", "risk_score", "female", "employed", "region"]


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "data.csv.gz")


@pytest.fixture(scope="module")
def fit(cohort):
    return fit_propensity(cohort, "treat", COVARIATES, categorical=["region"])


def test_coefficients_match_r_glm(fit):
    reference = pd.read_csv(FIXTURES / "propensity_coefficients.csv")
    reference["term"] = reference.term.str.replace(r"^region(\w+)$", r"region[\1]", regex=True)
    reference = reference.set_index("term")
    assert fit.coefficients.index.tolist() == reference.index.tolist()
    np.testing.assert_allclose(fit.coefficients.coef, reference.coef, rtol=1e-9, atol=1e-12)
    # R's standard errors come from the weights of its last IRLS step, 1e-8 away from ours
    np.testing.assert_allclose(fit.coefficients.se, reference.se, rtol=1e-6)
    np.testing.assert_allclose(fit.coefficients.z, reference.z, rtol=1e-6)
    np.testing.assert_allclose(fit.coefficients.p, reference.p, rtol=1e-4, atol=1e-12)


def test_linear_predictor_and_score_match_r(cohort, fit):
    np.testing.assert_allclose(fit.linear_predictor, cohort.lp, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fit.score, 1 / (1 + np.exp(-cohort.lp)), rtol=0, atol=1e-10)
    assert (fit.n, fit.n_treated) == (5500, 500)
    assert fit.to_frame().columns.tolist() == ["term", "coef", "se", "z", "p"]
    assert len(fit.scores_frame(cohort.index)) == 5500


def test_categorical_levels_drop_the_first_in_sorted_order():
    data = pd.DataFrame({"region": ["b", "a", "c", "a"], "x": [1.0, 2.0, 3.0, 4.0]})
    design = design_matrix(data, ["x", "region"])
    assert design.matrix.columns.tolist() == ["x", "region[b]", "region[c]"]
    assert design.matrix["region[b]"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert design.source == {"x": "x", "region[b]": "region", "region[c]": "region"}


def test_integer_coded_categorical_is_expanded_when_named():
    data = pd.DataFrame({"band": [1, 2, 3, 1]})
    assert design_matrix(data, ["band"], categorical=["band"]).matrix.columns.tolist() == ["band[2]", "band[3]"]


def _toy(n=400, seed=3):
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({"age": rng.normal(30, 8, n), "score": rng.normal(0, 1, n)})
    data["treated"] = rng.binomial(1, 1 / (1 + np.exp(-data.score)))
    return data


def test_constant_covariate_is_named():
    data = _toy().assign(pilot_site=1.0)
    with pytest.raises(CollinearCovariatesError, match="'pilot_site'") as caught:
        fit_propensity(data, "treated", ["age", "pilot_site"])
    assert caught.value.covariates == ["pilot_site"]
    assert isinstance(caught.value, ValueError)


def test_linear_combination_is_named():
    data = _toy()
    data["age_in_months"] = 12 * data.age + 3
    with pytest.raises(CollinearCovariatesError, match="linear combinations") as caught:
        fit_propensity(data, "treated", ["age", "score", "age_in_months"])
    assert caught.value.covariates == ["age", "age_in_months"]


def test_perfect_separation_is_named():
    data = _toy()
    data["enrolled_flag"] = data.treated.astype(float)
    with pytest.raises(SeparationError, match="'enrolled_flag'") as caught:
        fit_propensity(data, "treated", ["age", "enrolled_flag"])
    assert caught.value.covariates == ["enrolled_flag"]
    assert isinstance(caught.value, PropensityModelError)


def test_separation_by_a_continuous_covariate():
    data = _toy()
    data["days_waiting"] = np.where(data.treated == 1, 100.0, 0.0) + data.age
    with pytest.raises(SeparationError, match="'days_waiting'"):
        fit_propensity(data, "treated", ["score", "days_waiting"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.assign(age=d.age.where(d.index > 4)), "'age' has 5 missing values"),
        (lambda d: d.assign(treated=2), "must be 0/1"),
        (lambda d: d.assign(treated=0), "only one group"),
        (lambda d: d.drop(columns="age"), "not in the data: 'age'"),
    ],
)
def test_bad_input_is_explained(change, message):
    with pytest.raises(ValueError, match=message):
        fit_propensity(change(_toy()), "treated", ["age", "score"])
