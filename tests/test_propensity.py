"""Propensity model against R glm (tests/fixtures/matchit/make_fixtures.R) and bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import models.propensity
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


def _mixed_cohort(n: int, treated_share: float, seed: int = 7) -> pd.DataFrame:
    """Numeric, binary, text-categorical and pandas-categorical covariates; treatment
    depends on all of them."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "age": rng.normal(32, 9, n),
            "prior_offences": rng.poisson(2.5, n) + rng.random(n),
            "sentence_months": rng.lognormal(2, 0.6, n),
            "employed": rng.binomial(1, 0.4, n),
            "housed": rng.random(n) < 0.8,
            "region": rng.choice(["Wales", "North", "London", "East"], n),
            "order_type": pd.Categorical(rng.choice(["community", "suspended", "licence"], n),
                                         categories=["suspended", "community", "licence"]),
        }
    )
    logit = (
        0.03 * (data.age - 32) + 0.2 * data.prior_offences - 0.05 * data.sentence_months - 0.4 * data.employed
        + 0.3 * data.housed + data.region.map({"Wales": 0.3, "North": -0.2, "London": 0.1, "East": 0.0})
        + data.order_type.map({"community": 0.4, "suspended": 0.0, "licence": -0.3}).astype(float)
    )
    intercept = np.log(treated_share / (1 - treated_share)) - logit.mean()
    data["treat"] = rng.binomial(1, 1 / (1 + np.exp(-(intercept + logit))))
    return data


@pytest.mark.parametrize(
    ("n", "treated_share", "subsample_from"),
    [
        (3_000, 0.3, None),  # small data: Newton from the intercept-only fit
        (40_000, 0.02, 5_000),  # rare treatment: start from a subsample of the comparison group
        (40_000, 0.97, 5_000),  # common treatment: start from a subsample of the treated
    ],
)
def test_fit_equals_statsmodels_glm_binomial(monkeypatch, n, treated_share, subsample_from):
    if subsample_from is not None:
        monkeypatch.setattr(models.propensity, "_SUBSAMPLE_FROM_ROWS", subsample_from)
        # The passes' sums come from several tasks, run by threads.
        assert len(models.propensity._tasks(n)) == 5
    data = _mixed_cohort(n, treated_share)
    covariates = ["age", "prior_offences", "sentence_months", "employed", "housed", "region", "order_type"]
    fit = fit_propensity(data, "treat", covariates, categorical=["region"])
    # The same model built independently: R's treatment contrasts, levels sorted for text and
    # in category order for the pandas Categorical.
    exog = pd.DataFrame({"(Intercept)": 1.0}, index=data.index)
    for name in ["age", "prior_offences", "sentence_months", "employed", "housed"]:
        exog[name] = data[name].astype(float)
    for level in ["London", "North", "Wales"]:
        exog[f"region[{level}]"] = (data.region == level).astype(float)
    for level in ["community", "licence"]:
        exog[f"order_type[{level}]"] = (data.order_type == level).astype(float)
    reference = sm.GLM(data.treat, exog, family=sm.families.Binomial()).fit(tol=1e-14, maxiter=100)
    assert fit.coefficients.index.tolist() == exog.columns.tolist()
    np.testing.assert_allclose(fit.coefficients.coef, reference.params, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fit.coefficients.se, reference.bse, rtol=1e-8)
    np.testing.assert_allclose(fit.coefficients.z, reference.tvalues, rtol=1e-8)
    np.testing.assert_allclose(fit.coefficients.p, reference.pvalues, rtol=1e-6, atol=1e-300)
    np.testing.assert_allclose(fit.linear_predictor, exog.to_numpy() @ reference.params.to_numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(fit.score, reference.fittedvalues, rtol=0, atol=1e-10)
    assert fit.log_likelihood == pytest.approx(reference.llf, rel=1e-10)
    assert (fit.n, fit.n_treated) == (n, int(data.treat.sum()))
    if subsample_from is not None:
        # The subsample's start (intercept corrected for the sampling fractions) lies within
        # sampling error of the full fit; the intercept-only start lies many SEs away.
        model = models.propensity._model_matrix(data, covariates, ["region"])
        treated = data.treat.to_numpy() == 1
        start = models.propensity._starting_values(model.values, treated)
        intercept_only = models.propensity._intercept_only(treated, len(start))
        assert np.abs((start - reference.params) / reference.bse).max() < 2
        assert np.abs((intercept_only - reference.params) / reference.bse).max() > 5


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


def _far_from_zero(n=20_000, seed=4):
    """A calendar year (mean 2019, SD 2) beside age: sums of squares about zero would cancel."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({"year": 2015.0 + rng.integers(0, 9, n), "age": rng.normal(30, 8, n)})
    logit = -2 + 0.15 * (data.year - 2019) + 0.02 * (data.age - 30)
    data["treated"] = rng.binomial(1, 1 / (1 + np.exp(-logit)))
    return data


def test_covariate_far_from_zero_is_estimated_exactly():
    data = _far_from_zero()
    fit = fit_propensity(data, "treated", ["year", "age"])
    exog = sm.add_constant(data[["year", "age"]])
    reference = sm.GLM(data.treated, exog, family=sm.families.Binomial()).fit(tol=1e-14, maxiter=100)
    np.testing.assert_allclose(fit.coefficients.coef, reference.params, rtol=1e-8)
    np.testing.assert_allclose(fit.coefficients.se, reference.bse, rtol=1e-8)
    np.testing.assert_allclose(fit.linear_predictor, exog.to_numpy() @ reference.params.to_numpy(), rtol=0, atol=1e-8)


def test_dependence_through_a_covariate_far_from_zero_is_told_from_near_dependence():
    data = _far_from_zero()
    data["birth_year"] = data.year - data.age
    with pytest.raises(CollinearCovariatesError, match="linear combinations") as caught:
        fit_propensity(data, "treated", ["year", "age", "birth_year"])
    assert caught.value.covariates == ["age", "birth_year", "year"]
    # Birth years recorded to the day are not a combination of year and age: the fit goes on.
    data["birth_year"] += np.random.default_rng(9).uniform(-0.5, 0.5, len(data)) / 365
    fit = fit_propensity(data, "treated", ["year", "age", "birth_year"])
    assert fit.coefficients.index.tolist() == ["(Intercept)", "year", "age", "birth_year"]


def test_perfect_separation_is_named():
    data = _toy()
    data["enrolled_flag"] = data.treated.astype(float)
    with pytest.raises(SeparationError, match="'enrolled_flag'") as caught:
        fit_propensity(data, "treated", ["age", "enrolled_flag"])
    assert caught.value.covariates == ["enrolled_flag"]
    assert isinstance(caught.value, PropensityModelError)


def test_quasi_complete_separation_is_named():
    # Every participant has the flag but so do half the comparison people: the likelihood
    # still has no finite maximum (the flag's coefficient runs off to infinity).
    data = _toy()
    rng = np.random.default_rng(5)
    data["referred"] = np.where(data.treated == 1, 1.0, (rng.random(len(data)) < 0.5).astype(float))
    with pytest.raises(SeparationError, match="'referred'") as caught:
        fit_propensity(data, "treated", ["age", "score", "referred"])
    assert caught.value.covariates == ["referred"]


@pytest.mark.parametrize("kind", ["flag", "shifted", "quasi"])
def test_separation_is_named_when_the_fit_starts_from_a_subsample(monkeypatch, kind):
    # The first pass's information (weighted by p(1 - p) at the subsample's start) checks the
    # rank: separation must still be told from collinearity there.
    monkeypatch.setattr(models.propensity, "_SUBSAMPLE_FROM_ROWS", 5_000)
    rng = np.random.default_rng(8)
    data = _toy(n=40_000)
    data["treated"] = (rng.random(len(data)) < 0.02).astype(int)
    flag = data.treated.astype(float)
    data["culprit"] = {"flag": flag, "shifted": 100 * flag + data.age,
                       "quasi": np.where(flag == 1, 1.0, (rng.random(len(data)) < 0.5).astype(float))}[kind]
    with pytest.raises(SeparationError, match="'culprit'") as caught:
        fit_propensity(data, "treated", ["age", "score", "culprit"])
    assert caught.value.covariates == ["culprit"]


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
