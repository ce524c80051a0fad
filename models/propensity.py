"""Propensity score: logistic regression of treatment on the configured covariates.

The model is R's ``glm(treat ~ covariates, family = binomial())`` — the model MatchIt
fits for ``distance = "glm"``. Numeric and binary covariates enter as they are;
categorical covariates enter as indicator columns for every level but the first (R's
treatment contrasts: levels in sorted order, or in category order for a pandas
``Categorical``). The linear predictor (the logit of the score) is the distance that
matching uses (MatchIt ``link = "linear.logit"``).

The fit is Newton's method (for the logit link the same as glm's IRLS) on one float64
design matrix built once (categorical columns from their category codes), each covariate
column centred on its mean (estimates are reported on the covariates' own scale), with the
score and information accumulated over blocks of rows by BLAS, the blocks shared among the
cores by threads in a fixed split (the same sums, in the same order, on any machine). The
information at the first pass doubles as the check that the covariates are linearly
independent. On large data it starts from a fit
on a case-control subsample (everyone in the smaller group and a systematic sample of the
larger one, the intercept corrected for the sampling fractions), so a million rows take
about four passes. It stops once the Newton decrement ``g' I^-1 g`` falls below 1e-14,
after taking that last step: the step is then under 1e-7 standard errors long and, Newton
converging quadratically, the estimates are left much closer than that to the maximum.
glm's default rule (relative deviance change below 1e-8) is implied, and on its own would
stop with errors near 1e-7 in the estimates. Standard errors come from the inverse
information, as in ``summary.glm`` and statsmodels.

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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.linalg.lapack
import scipy.stats

from models.design import DesignColumns, design_columns, numeric_design
from models.threads import map_in_threads

INTERCEPT = "(Intercept)"

# A design column whose share of variance not explained by the columns before it (in
# pivoted order) is below this counts as a linear combination of them.
_RANK_TOLERANCE = 1e-10
# A fitted probability this close to 0 or 1 means the likelihood has no finite maximum.
_SEPARATION_PROBABILITY = 1e-10
# Newton stops when g' I^-1 g (about twice the log-likelihood still to be gained) is below this.
_DECREMENT_TOLERANCE = 1e-14
# Full-data Newton steps before giving up (glm's default maxit is 25).
_MAX_ITERATIONS = 25
# Rows per block when accumulating score and information: small enough to stay in cache.
_BLOCK_ROWS = 8192
# A sweep is shared among threads (NumPy and BLAS release the GIL) in about this many tasks
# of whole blocks, each at most _TASK_ROWS rows. The split depends on the rows only, not on
# the cores, so partial sums are added in the same order, and give the same estimates, on
# any machine.
_TASKS = 8
_TASK_ROWS = 16 * _BLOCK_ROWS
# The starting fit uses a case-control subsample when the data have more rows than this...
_SUBSAMPLE_FROM_ROWS = 200_000
# ...keeping every person of the smaller group and this many of the larger group per person.
_SUBSAMPLE_RATIO = 5


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


@dataclass(frozen=True)
class _ModelMatrix:
    """The design as one float64 array whose first column is the intercept (a block of rows is
    one contiguous BLAS operand)."""

    values: np.ndarray
    columns: list[str]
    source: dict[str, str]

    def design(self, index) -> Design:
        return Design(pd.DataFrame(self.values[:, 1:], index=index, columns=self.columns, copy=False), self.source)


def _model_matrix(
    data: pd.DataFrame,
    covariates: Sequence[str],
    categorical: Sequence[str] | None = None,
) -> _ModelMatrix:
    design = numeric_design(data, covariates, categorical, leading={INTERCEPT: 1.0})
    columns = list(design.names[1:])
    return _ModelMatrix(design.matrix, columns, dict(zip(columns, design.source[1:])))


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
    return _model_matrix(data, covariates, categorical).design(data.index)


def _blocks(rows: slice):
    return (slice(start, min(start + _BLOCK_ROWS, rows.stop)) for start in range(rows.start, rows.stop, _BLOCK_ROWS))


def _tasks(n: int) -> list[slice]:
    blocks = -(-n // (_TASKS * _BLOCK_ROWS))  # per task, rounded up
    size = min(_TASK_ROWS, max(blocks, 1) * _BLOCK_ROWS)
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


class _ColumnSummary:
    """Range and centred cross-products of the design columns, accumulated over row blocks.

    Rows are shifted by the mean of the first block before the products are summed (and
    the shift's contribution removed at the end), which keeps the centring exact enough
    without a separate pass for the means.
    """

    def __init__(self, first_block: np.ndarray):
        k = first_block.shape[1]
        self.shift = first_block.mean(axis=0)
        self.low, self.high = np.full(k, np.inf), np.full(k, -np.inf)
        self.total, self.cross, self.n = np.zeros(k), np.zeros((k, k)), 0

    def add(self, block: np.ndarray) -> None:
        self.low = np.minimum(self.low, block.min(axis=0))
        self.high = np.maximum(self.high, block.max(axis=0))
        shifted = block - self.shift
        self.total += shifted.sum(axis=0)
        self.cross += shifted.T @ shifted  # A'A: NumPy calls BLAS syrk
        self.n += len(block)

    def check(self, names: list[str], source: dict[str, str]) -> None:
        """Raise CollinearCovariatesError for a constant column or exact linear dependence."""
        _check_not_constant(self.low == self.high, names, source)
        _check_full_rank(self.cross - np.outer(self.total, self.total) / self.n, names, source)


def _check_not_constant(constant: np.ndarray, names: list[str], source: dict[str, str]) -> None:
    """Raise CollinearCovariatesError naming the columns flagged ``constant``."""
    if constant.any():
        constant = [name for name, flag in zip(names, constant) if flag]
        culprits = sorted({source[name] for name in constant})
        raise CollinearCovariatesError(
            f"covariate(s) {', '.join(map(repr, constant))} take a single value, so their effect "
            "cannot be estimated; drop them from the propensity model",
            culprits,
        )


def _check_full_rank(cross: np.ndarray, names: list[str], source: dict[str, str]) -> None:
    """Raise CollinearCovariatesError when the columns whose centred (possibly weighted)
    cross-products are ``cross`` are linearly dependent."""
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
        culprits = sorted({source[name] for name in involved})
        raise CollinearCovariatesError(
            f"covariate column(s) {', '.join(map(repr, dependent))} are exact linear combinations of "
            f"other covariates (involved: {', '.join(map(repr, culprits))}); drop one of them",
            culprits,
        )


def check_estimable(design: Design) -> None:
    """Raise CollinearCovariatesError for a constant column or exact linear dependence.

    Dependence is found by a pivoted Cholesky factorisation of the correlation matrix of
    the design (LAPACK ``dpstrf``, equivalent to QR with column pivoting on the centred,
    scaled columns): the columns pivoted past the numerical rank are combinations of
    those before them.
    """
    values = design.matrix.to_numpy()
    summary = _ColumnSummary(values[:_BLOCK_ROWS])
    for rows in _blocks(slice(0, len(values))):
        summary.add(values[rows])
    summary.check(list(design.matrix.columns), design.source)


def _separating_columns(values: np.ndarray, names: list[str], treated: np.ndarray, coefficients: np.ndarray) -> list[str]:
    """Design columns that separate the groups on their own, else those with the largest
    standardised coefficients (the directions in which the likelihood runs off)."""
    t, c = values[treated], values[~treated]
    alone = (t.min(axis=0) > c.max(axis=0)) | (t.max(axis=0) < c.min(axis=0))
    is_indicator = np.all((values == 0) | (values == 1), axis=0)
    # An indicator separates when all its 1s (or all its 0s) fall in one group.
    for j in np.flatnonzero(is_indicator):
        ones = values[:, j] == 1
        alone[j] |= treated[ones].all() or (~treated[ones]).all()
    if alone.any():
        return [name for name, flag in zip(names, alone) if flag]
    standardised = np.abs(coefficients) * values.std(axis=0)
    return [name for name, s in zip(names, standardised) if s >= 0.5 * standardised.max()]


def _logistic(linear_predictor: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """1 / (1 + exp(-eta)), within an ulp of scipy.special.expit and three times as fast
    (NumPy's exp is vectorised); it is 0 rather than tiny below eta = -709."""
    probability = np.negative(linear_predictor, out=out)
    np.exp(probability, out=probability)
    probability += 1.0
    return np.reciprocal(probability, out=probability)


@dataclass
class _NewtonPass:
    """Score vector, information matrix and largest |residual| at one coefficient vector."""

    score: np.ndarray
    information: np.ndarray
    largest_residual: float


def _newton_pass(x: np.ndarray, treated: np.ndarray, beta: np.ndarray) -> _NewtonPass:
    """One sweep over the rows, a task of blocks per thread; the tasks' sums are added in order."""
    k = x.shape[1]

    def over(task: slice) -> _NewtonPass:
        score, information, largest = np.zeros(k), np.zeros((k, k)), 0.0
        # One buffer per task for the weighted rows: a fresh array per block would cost page faults.
        weighted = np.empty((_BLOCK_ROWS, k), order="F" if x.flags.f_contiguous else "C")
        for rows in _blocks(task):
            block = x[rows]
            probability = _logistic(np.dot(block, beta))
            residual = treated[rows] - probability
            score += np.dot(residual, block)
            root_weight = np.sqrt(probability * (1.0 - probability))
            scaled = np.multiply(block, root_weight[:, None], out=weighted[: len(block)])
            information += np.dot(scaled.T, scaled)  # A'A: BLAS syrk (np.dot, unlike @, runs in parallel threads)
            largest = max(largest, float(np.abs(residual).max()))
        return _NewtonPass(score, information, largest)

    parts = map_in_threads(over, _tasks(len(x)))
    return _NewtonPass(
        sum(part.score for part in parts),
        sum(part.information for part in parts),
        max(part.largest_residual for part in parts),
    )


class _Separated(Exception):
    """The likelihood has no finite maximum (or the information became singular)."""

    def __init__(self, coefficients: np.ndarray):
        super().__init__("separation")
        self.coefficients = coefficients


def _newton(
    x: np.ndarray,
    treated: np.ndarray,
    beta: np.ndarray,
    tolerance: float,
    max_iterations: int,
    first: _NewtonPass | None = None,
):
    """Newton's method from ``beta`` (``first``: the pass at ``beta``, if already made);
    returns (beta, information at the last pass, passes).

    Raises _Separated when every fitted value equals its outcome (complete separation, as
    statsmodels checks), when the information is singular, or when the iterations run out.
    """
    for iteration in range(1, max_iterations + 1):
        state = first if iteration == 1 and first is not None else _newton_pass(x, treated, beta)
        if state.largest_residual < 1e-8:
            raise _Separated(beta)
        try:
            factor = scipy.linalg.cho_factor(state.information)
        except np.linalg.LinAlgError as error:
            raise _Separated(beta) from error
        step = scipy.linalg.cho_solve(factor, state.score)
        decrement = float(state.score @ step)
        if not np.isfinite(decrement):
            raise _Separated(beta)
        beta = beta + step
        if decrement < tolerance:
            return beta, state.information, iteration
    raise _Separated(beta)


def _intercept_only(treated: np.ndarray, k: int) -> np.ndarray:
    start = np.zeros(k)
    share = treated.mean()
    start[0] = np.log(share / (1 - share))
    return start


def _centred_design(design: DesignColumns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The design (intercept first) in column order, every column but the intercept centred on
    its mean; the means; and which columns are constant.

    Centring reparametrises the model (the slopes are unchanged, the intercept moves by
    ``means @ slopes``) and leaves Newton's steps as they are. It lets the information at the
    first pass serve the rank check without cancellation: with the intercept partialled out it
    is the weighted cross-product matrix of the centred columns (weights p(1 - p) > 0, which
    leave exact dependence as it is). Each column is one contiguous copy; threads share them.
    """
    n, k = design.n_rows, len(design.names)
    x = np.empty((n, k), order="F")
    means, constant = np.zeros(k), np.zeros(k, dtype=bool)

    def fill(j: int) -> None:
        column = design.column(j)
        if j == 0:
            x[:, 0] = column
            return
        constant[j] = column.min() == column.max()
        means[j] = column.mean()
        np.subtract(column, means[j], out=x[:, j])

    map_in_threads(fill, range(k))
    return x, means, constant


def _starting_values(x: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """Coefficients from a case-control subsample, else the intercept-only fit.

    Sampling on the outcome leaves the slopes of a logistic model unbiased and shifts the
    intercept by log(f1 / f0), the ratio of the groups' sampling fractions.
    """
    start = _intercept_only(treated, x.shape[1])
    if len(x) <= _SUBSAMPLE_FROM_ROWS:
        return start
    n_treated = int(treated.sum())
    small_is_treated = n_treated <= len(x) - n_treated
    small = np.flatnonzero(treated if small_is_treated else ~treated)
    large = np.flatnonzero(~treated if small_is_treated else treated)
    stride = len(large) // max(_SUBSAMPLE_RATIO * len(small), _SUBSAMPLE_FROM_ROWS // 4)
    if stride < 2:
        return start
    rows = np.sort(np.concatenate([small, large[::stride]]))
    sample_treated = treated[rows]
    try:
        beta, _, _ = _newton(x[rows], sample_treated, _intercept_only(sample_treated, x.shape[1]), 1e-2, 10)
    except _Separated:
        return start
    fraction_large = len(large[::stride]) / len(large)
    beta[0] += np.log(fraction_large) if small_is_treated else -np.log(fraction_large)
    return beta


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
    iterations: int

    @property
    def log_likelihood(self) -> float:
        """Maximised log-likelihood (scores stay away from 0 and 1: no separation)."""
        return float(np.log(np.where(self.treated, self.score, 1.0 - self.score)).sum())

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
    design = design_columns(data, covariates, categorical, leading={INTERCEPT: 1.0})
    columns, source = list(design.names[1:]), dict(zip(design.names[1:], design.source[1:]))
    x, means, constant = _centred_design(design)
    _check_not_constant(constant[1:], columns, source)
    start = _starting_values(x, treated)
    first = _newton_pass(x, treated, start)
    # The information with the intercept partialled out: weighted cross-products of the centred columns.
    information = first.information
    _check_full_rank(information[1:, 1:] - np.outer(information[1:, 0], information[0, 1:]) / information[0, 0],
                     columns, source)
    try:
        centred, information, iterations = _newton(x, treated, start, _DECREMENT_TOLERANCE, _MAX_ITERATIONS, first)
        linear_predictor, score = np.empty(len(x)), np.empty(len(x))

        def predict(task: slice) -> None:
            np.matmul(x[task], centred, out=linear_predictor[task])
            _logistic(linear_predictor[task], out=score[task])

        map_in_threads(predict, _tasks(len(x)))
        # Back to the covariates' own scale: beta = uncentre @ centred.
        uncentre = np.eye(len(centred))
        uncentre[0, 1:] = -means[1:]
        beta = uncentre @ centred
        centred_covariance = scipy.linalg.cho_solve(scipy.linalg.cho_factor(information), np.eye(len(beta)))
        se = np.sqrt(np.diag(uncentre @ centred_covariance @ uncentre.T))
        extreme = (score < _SEPARATION_PROBABILITY) | (score > 1 - _SEPARATION_PROBABILITY)
        separated = bool(extreme.any()) or not np.all(np.isfinite(se))
    except _Separated as stopped:
        beta, separated = stopped.coefficients, True
    if separated:
        columns = _separating_columns(x[:, 1:] + means[1:], columns, treated, beta[1:])
        culprits = sorted({source[name] for name in columns})
        raise SeparationError(
            f"covariate(s) {', '.join(map(repr, columns))} separate treated from comparison people "
            "perfectly, so the propensity model has no finite estimate; coarsen or drop them, "
            "or restrict the cohort to people with overlapping values",
            culprits,
        )
    z = beta / se
    coefficients = pd.DataFrame(
        {"coef": beta, "se": se, "z": z, "p": 2 * scipy.stats.norm.sf(np.abs(z))},
        index=pd.Index([INTERCEPT, *columns], name="term"),
    )
    return PropensityResult(
        coefficients=coefficients,
        score=score,
        linear_predictor=linear_predictor,
        treated=treated,
        n=len(data),
        n_treated=int(treated.sum()),
        treatment=treatment,
        covariates=tuple(covariates),
        categorical=tuple(categorical or ()),
        design_columns=tuple(columns),
        iterations=iterations,
    )
