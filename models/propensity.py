"""Propensity score: logistic regression of treatment on the configured covariates.

The model is R's ``glm(treat ~ covariates, family = binomial())`` — the model MatchIt
fits for ``distance = "glm"`` — fitted with statsmodels. Numeric and binary covariates
enter as they are; categorical covariates enter as indicator columns for every level
but the first (R's treatment contrasts: levels in sorted order, or in category order for
a pandas ``Categorical``). The linear predictor (the logit of the score) is the distance
that matching uses (MatchIt ``link = "linear.logit"``).

A model that cannot be estimated fails loudly with a :class:`PropensityModelError`
naming the covariates at fault: a constant covariate, covariates that are exact linear
combinations of others, or covariates that separate treated from comparison people
perfectly.

Example::

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> data = pd.DataFrame({"age": rng.normal(30, 8, 400),
    ...                      "region": rng.choice(["North", "South", "West"], 400)})
    >>> data["treated"] = rng.binomial(1, 1 / (1 + np.exp(-(data.age - 30) / 8)))
    >>> fit = fit_propensity(data, "treated", ["age", "region"])
    >>> fit.coefficients.index.tolist()
    ['(Intercept)', 'age', 'region[South]', 'region[West]']
    >>> fit.linear_predictor.shape
    (400,)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.linalg.lapack
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import (
    ConvergenceWarning,
    HessianInversionWarning,
    PerfectSeparationError,
    PerfectSeparationWarning,
)

INTERCEPT = "(Intercept)"

# A design column whose share of variance not explained by the columns before it (in
# pivoted order) is below this counts as a linear combination of them.
_RANK_TOLERANCE = 1e-10
# A fitted probability this close to 0 or 1 means the likelihood has no finite maximum.
_SEPARATION_PROBABILITY = 1e-10


class PropensityModelError(ValueError):
    """The propensity model cannot be estimated; ``covariates`` names the culprits."""

    def __init__(self, message: str, covariates: Sequence[str]):
        super().__init__(message)
        self.covariates = list(covariates)


class CollinearCovariatesError(PropensityModelError):
    """A covariate is constant or an exact linear combination of other covariates."""


class SeparationError(PropensityModelError):
    """Covariates predict treatment perfectly, so the logistic model has no finite fit."""


@dataclass(frozen=True)
class Design:
    """Numeric design matrix (without intercept) and the covariate behind each column."""

    matrix: pd.DataFrame
    source: dict[str, str]


def design_matrix(
    data: pd.DataFrame,
    covariates: Sequence[str],
    categorical: Sequence[str] | None = None,
) -> Design:
    """Model columns for ``covariates``: numbers and booleans as they are, categorical
    covariates as indicators ``name[level]`` for every level but the first.

    Covariates named in ``categorical``, and any text or pandas-categorical column, are
    categorical. Raises ValueError naming a missing column or a column with missing values.
    """
    categorical = set(categorical or ())
    absent = [name for name in [*covariates, *categorical] if name not in data.columns]
    if absent:
        raise ValueError(f"covariates not in the data: {', '.join(map(repr, absent))}")
    unused = categorical - set(covariates)
    if unused:
        raise ValueError(f"categorical covariates not listed among the covariates: {', '.join(map(repr, sorted(unused)))}")
    columns: dict[str, np.ndarray] = {}
    source: dict[str, str] = {}
    for name in covariates:
        column = data[name]
        missing = int(column.isna().sum())
        if missing:
            raise ValueError(f"covariate {name!r} has {missing} missing values")
        is_number = pd.api.types.is_bool_dtype(column) or (
            pd.api.types.is_numeric_dtype(column) and not isinstance(column.dtype, pd.CategoricalDtype)
        )
        if name not in categorical and is_number:
            columns[name] = column.to_numpy(dtype=float)
            source[name] = name
            continue
        levels = column.astype("category").cat.categories
        for level in levels[1:]:
            indicator = f"{name}[{level}]"
            columns[indicator] = (column == level).to_numpy(dtype=float)
            source[indicator] = name
    return Design(pd.DataFrame(columns, index=data.index), source)


def check_estimable(design: Design) -> None:
    """Raise CollinearCovariatesError for a constant column or exact linear dependence.

    Dependence is found by a pivoted Cholesky factorisation of the correlation matrix of
    the design (LAPACK ``dpstrf``, equivalent to QR with column pivoting on the centred,
    scaled columns): the columns pivoted past the numerical rank are combinations of
    those before them.
    """
    matrix = design.matrix.to_numpy()
    names = list(design.matrix.columns)
    constant = [name for name, values in zip(names, matrix.T) if np.ptp(values) == 0]
    if constant:
        culprits = sorted({design.source[name] for name in constant})
        raise CollinearCovariatesError(
            f"covariate(s) {', '.join(map(repr, constant))} take a single value, so their effect "
            "cannot be estimated; drop them from the propensity model",
            culprits,
        )
    centred = matrix - matrix.mean(axis=0)
    cross = centred.T @ centred
    scale = np.sqrt(np.diag(cross))
    correlation = cross / np.outer(scale, scale)
    factor, pivot, rank, _ = scipy.linalg.lapack.dpstrf(correlation, tol=_RANK_TOLERANCE)
    pivot = pivot - 1
    if rank < len(names):
        dependent = [names[j] for j in pivot[rank:]]
        # Name every column involved: the dependent ones and those they are built from.
        combination = scipy.linalg.solve_triangular(factor[:rank, :rank], factor[:rank, rank:])
        involved = {names[pivot[i]] for i in np.flatnonzero(np.abs(combination).max(axis=1) > 1e-6)}
        involved.update(dependent)
        culprits = sorted({design.source[name] for name in involved})
        raise CollinearCovariatesError(
            f"covariate column(s) {', '.join(map(repr, dependent))} are exact linear combinations of "
            f"other covariates (involved: {', '.join(map(repr, culprits))}); drop one of them",
            culprits,
        )


def _separating_columns(design: pd.DataFrame, treated: np.ndarray, coefficients: np.ndarray) -> list[str]:
    """Design columns that separate the groups on their own, else those with the largest
    standardised coefficients (the directions in which the likelihood runs off)."""
    values = design.to_numpy()
    t, c = values[treated], values[~treated]
    alone = (t.min(axis=0) > c.max(axis=0)) | (t.max(axis=0) < c.min(axis=0))
    is_indicator = np.all((values == 0) | (values == 1), axis=0)
    # An indicator separates when all its 1s (or all its 0s) fall in one group.
    for j in np.flatnonzero(is_indicator):
        ones = values[:, j] == 1
        alone[j] |= treated[ones].all() or (~treated[ones]).all()
    if alone.any():
        return [name for name, flag in zip(design.columns, alone) if flag]
    standardised = np.abs(coefficients) * values.std(axis=0)
    return [name for name, s in zip(design.columns, standardised) if s >= 0.5 * standardised.max()]


@dataclass(frozen=True)
class PropensityResult:
    """Fitted propensity model.

    Attributes:
        coefficients: indexed by term (``(Intercept)``, covariates, ``name[level]``) with
            columns ``coef, se, z, p`` (Wald tests, as R ``summary.glm``).
        score: fitted probability of treatment for every row, in data order.
        linear_predictor: logit of ``score`` — the matching distance.
        treated: boolean treatment indicator per row.
        n: rows used; n_treated: treated rows among them.
        treatment, covariates, categorical: the specification fitted.
        design_columns: names of the model columns (without the intercept).
        log_likelihood: maximised log-likelihood.
        iterations: Newton iterations used.
    """

    coefficients: pd.DataFrame
    score: np.ndarray
    linear_predictor: np.ndarray
    treated: np.ndarray
    n: int
    n_treated: int
    treatment: str
    covariates: tuple[str, ...]
    categorical: tuple[str, ...]
    design_columns: tuple[str, ...]
    log_likelihood: float
    iterations: int

    def to_frame(self) -> pd.DataFrame:
        """Coefficient table as columns ``term, coef, se, z, p``."""
        return self.coefficients.rename_axis("term").reset_index()

    def scores_frame(self, index=None) -> pd.DataFrame:
        """One row per person: ``treated, propensity_score, linear_predictor``."""
        return pd.DataFrame(
            {"treated": self.treated, "propensity_score": self.score, "linear_predictor": self.linear_predictor},
            index=index,
        )

    def summary(self) -> str:
        lines = [
            f"Propensity model: logistic regression of {self.treatment!r} on {len(self.covariates)} covariates; "
            f"{self.n_treated} treated of {self.n}; log-likelihood {self.log_likelihood:.2f}",
        ]
        for term, row in self.coefficients.iterrows():
            lines.append(f"  {term:<32} {row.coef:>10.4f} (SE {row.se:.4f}, z {row.z:>7.2f}, p {row.p:.3g})")
        return "\n".join(lines)


def _treatment_indicator(data: pd.DataFrame, treatment: str) -> np.ndarray:
    if treatment not in data.columns:
        raise ValueError(f"treatment column {treatment!r} is not in the data")
    column = data[treatment]
    if column.isna().any():
        raise ValueError(f"treatment column {treatment!r} has {int(column.isna().sum())} missing values")
    values = column.to_numpy()
    if values.dtype != bool:
        if not pd.api.types.is_numeric_dtype(column) or not np.isin(values, (0, 1)).all():
            raise ValueError(f"treatment column {treatment!r} must be 0/1 or boolean")
        values = values == 1
    if values.all() or not values.any():
        raise ValueError(f"treatment column {treatment!r} has only one group; treated and comparison people are needed")
    return values


def fit_propensity(
    data: pd.DataFrame,
    treatment: str,
    covariates: Sequence[str],
    categorical: Sequence[str] | None = None,
) -> PropensityResult:
    """Fit the logistic propensity model of ``treatment`` on ``covariates``.

    Args:
        data: one row per person.
        treatment: name of the 0/1 (or boolean) treatment column.
        covariates: covariate column names, in model order.
        categorical: covariates to expand into indicators (text and pandas categorical
            columns are expanded anyway).

    Raises:
        CollinearCovariatesError: a covariate is constant or linearly dependent on others.
        SeparationError: covariates predict treatment perfectly.
        ValueError: missing columns or values, or a treatment that is not 0/1.
    """
    if not covariates:
        raise ValueError("no covariates given for the propensity model")
    treated = _treatment_indicator(data, treatment)
    design = design_matrix(data, covariates, categorical)
    check_estimable(design)
    exog = np.column_stack([np.ones(len(data)), design.matrix.to_numpy()])
    terms = [INTERCEPT, *design.matrix.columns]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("ignore", (ConvergenceWarning, HessianInversionWarning, RuntimeWarning))
        try:
            # rank already checked above, with covariate names in the message
            model = sm.Logit(treated.astype(float), exog, check_rank=False)
            # start from the intercept-only fit: saves Newton steps when treatment is rare
            share = treated.mean()
            start = np.zeros(exog.shape[1])
            start[0] = np.log(share / (1 - share))
            fit = model.fit(method="newton", start_params=start, tol=1e-12, maxiter=100, disp=0)
            separated = False
        except (PerfectSeparationWarning, PerfectSeparationError, np.linalg.LinAlgError):
            fit, separated = None, True
    if not separated:
        probability = fit.predict(exog)
        extreme = (probability < _SEPARATION_PROBABILITY) | (probability > 1 - _SEPARATION_PROBABILITY)
        separated = bool(extreme.any()) or not np.all(np.isfinite(fit.bse))
    if separated:
        params = fit.params[1:] if fit is not None else np.zeros(design.matrix.shape[1])
        columns = _separating_columns(design.matrix, treated, np.asarray(params))
        culprits = sorted({design.source[name] for name in columns})
        raise SeparationError(
            f"covariate(s) {', '.join(map(repr, columns))} separate treated from comparison people "
            "perfectly, so the propensity model has no finite estimate; coarsen or drop them, "
            "or restrict the cohort to people with overlapping values",
            culprits,
        )
    linear_predictor = exog @ fit.params
    coefficients = pd.DataFrame(
        {"coef": fit.params, "se": fit.bse, "z": fit.tvalues, "p": fit.pvalues},
        index=pd.Index(terms, name="term"),
    )
    return PropensityResult(
        coefficients=coefficients,
        score=1.0 / (1.0 + np.exp(-linear_predictor)),
        linear_predictor=linear_predictor,
        treated=treated,
        n=len(data),
        n_treated=int(treated.sum()),
        treatment=treatment,
        covariates=tuple(covariates),
        categorical=tuple(categorical or ()),
        design_columns=tuple(design.matrix.columns),
        log_likelihood=float(fit.llf),
        iterations=int(fit.mle_retvals.get("iterations", 0)),
    )
