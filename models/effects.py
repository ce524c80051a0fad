"""Effect estimates for an outcome: matched, naive and covariate-adjusted, with JDL gates.

Matched estimate (the headline)
    Weighted least squares of ``outcome ~ treated`` on the matched sample with the matching
    weights: the coefficient is the difference between the treated mean and the weighted
    comparison mean. Its variance is cluster-robust, exactly R
    ``sandwich::vcovCL(lm(y ~ treat, weights = weights), cluster = ~subclass)`` with the
    default ``type = "HC1"``, ``cadjust = TRUE``:
    ``V = G/(G-1) * (n-1)/(n-k) * B M B`` with ``B = (X'WX)^-1``, ``M`` the sum over
    clusters of the outer products of the summed scores ``w_i e_i x_i``, n rows, k = 2
    coefficients and G clusters. Clusters are the matched sets; after matching *with
    replacement*, where a control belongs to several sets, each person is their own
    cluster (clustering on the unit id over ``match.data()`` rows, i.e. HC1 robust — the
    robust SE MatchIt's documentation recommends there). Intervals and p-values use the
    normal distribution. For binary and count outcomes the ratio of means (risk or rate
    ratio) has a delta-method interval on the log scale from the same covariance.

Naive estimate
    Difference of unweighted means over everyone, before matching, with the Welch SE,
    Welch–Satterthwaite degrees of freedom and a t interval (R ``t.test``).

Covariate-adjusted estimate
    OLS of ``outcome ~ treated + covariates`` on the full cohort (a linear probability
    model for binary outcomes) with the HC3 robust SE (R ``sandwich::vcovHC(type =
    "HC3")``) and normal intervals.

Gates (UK Justice Data Lab rules, as parameters): at least ``min_treated`` (60) treated
people for any estimate; a time-to-first measure (days to first reoffence among
reoffenders) only with at least ``min_treated_reoffenders`` (30) treated reoffenders.
A gated estimate carries its counts and a status but no numbers.

Sensitivity: the E-value (VanderWeele & Ding, 2017) of the risk ratio and of its
confidence limit closest to 1.

Example::

    >>> import numpy as np
    >>> y = np.array([1, 0, 0, 1, 1, 0, 1, 1])
    >>> treated = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    >>> est = matched_difference(y, treated, np.ones(8), cluster=[1, 2, 3, 4, 1, 2, 3, 4])
    >>> est.mean_treated, est.mean_comparison, est.difference
    (0.5, 0.75, -0.25)
    >>> round(e_value(3.9), 2)
    7.26
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.linalg.lapack
from scipy import stats

from models.design import design_columns
from models.matching import MatchResult
from models.propensity import Design, check_estimable

OUTCOME_KINDS = ("binary", "count", "continuous", "time_to_first")
MIN_TREATED = 60
MIN_TREATED_REOFFENDERS = 30

STATUS_OK = "ok"
STATUS_TOO_FEW_TREATED = "too_few_treated"
STATUS_TOO_FEW_TREATED_REOFFENDERS = "too_few_treated_reoffenders"


@dataclass(frozen=True)
class EffectEstimate:
    """One estimate of the treated-minus-comparison difference.

    Attributes:
        method: ``matched``, ``naive`` or ``adjusted``.
        variance: how the SE was computed (e.g. ``cluster-robust HC1 (matched sets)``).
        mean_treated, mean_comparison: group means (comparison weighted when matched;
            for ``adjusted``, the comparison mean is the treated mean minus the difference).
        difference, se, ci_low, ci_high, p_value: the estimate and its inference.
        df: degrees of freedom of the t reference distribution (``inf`` = normal).
        ratio, ratio_ci_low, ratio_ci_high: treated/comparison ratio of means with a
            log-scale delta-method CI (matched binary and count outcomes; else NaN).
        n, n_treated, n_comparison: rows used; n_clusters: clusters in the variance.
        conf_level: confidence level of the intervals.
    """

    method: str
    variance: str
    mean_treated: float
    mean_comparison: float
    difference: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    df: float
    n: int
    n_treated: int
    n_comparison: int
    n_clusters: int
    conf_level: float
    ratio: float = np.nan
    ratio_ci_low: float = np.nan
    ratio_ci_high: float = np.nan

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.__dict__])


def _not_estimated(method: str, variance: str, n: int, n_treated: int, n_comparison: int, conf_level: float) -> EffectEstimate:
    nan = float("nan")
    return EffectEstimate(method, variance, nan, nan, nan, nan, nan, nan, nan, nan, n, n_treated, n_comparison, 0, conf_level)


def _two_sided_p(difference: float, se: float, df: float = np.inf) -> float:
    """Two-sided p-value of difference / se (NaN when the SE is zero)."""
    if not se > 0:
        return float("nan")
    return float(2 * stats.t.sf(abs(difference / se), df)) if np.isfinite(df) else float(2 * stats.norm.sf(abs(difference / se)))


def _normal_estimate(method: str, variance: str, mean_treated: float, mean_comparison: float, difference: float,
                     se: float, n: int, n_treated: int, n_clusters: int, conf_level: float) -> EffectEstimate:
    """An estimate whose interval and p-value come from the normal distribution."""
    z = _z(conf_level)
    return EffectEstimate(
        method=method,
        variance=variance,
        mean_treated=mean_treated,
        mean_comparison=mean_comparison,
        difference=difference,
        se=se,
        ci_low=difference - z * se,
        ci_high=difference + z * se,
        p_value=_two_sided_p(difference, se),
        df=float("inf"),
        n=n,
        n_treated=n_treated,
        n_comparison=n - n_treated,
        n_clusters=n_clusters,
        conf_level=conf_level,
    )


def _z(conf_level: float) -> float:
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be between 0 and 1, got {conf_level}")
    return float(stats.norm.ppf(0.5 + conf_level / 2))


def _as_vectors(outcome, treated, weights=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(outcome, dtype=float)
    t = np.asarray(treated)
    if t.dtype != bool:
        if not np.isin(t, (0, 1)).all():
            raise ValueError("treated must be boolean or 0/1")
        t = t == 1
    if y.ndim != 1 or t.shape != y.shape:
        raise ValueError(f"outcome and treated must be 1-d of equal length, got {y.shape} and {t.shape}")
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != y.shape:
        raise ValueError(f"weights has shape {w.shape} but outcome has {y.shape}")
    if (w < 0).any() or not np.isfinite(w).all():
        raise ValueError("weights must be finite and non-negative")
    return y, t, w


def matched_difference(
    outcome,
    treated,
    weights,
    cluster=None,
    *,
    ratio: bool = False,
    conf_level: float = 0.95,
) -> EffectEstimate:
    """Weighted difference in means with a cluster-robust (HC1) variance.

    Equals R ``lm(y ~ treat, weights = w)`` with ``sandwich::vcovCL(fit, cluster =
    cluster)``. Rows with zero weight or a missing outcome are left out (as
    ``match.data()`` leaves out unmatched people).

    Args:
        outcome: outcome per row.
        treated: boolean or 0/1 per row.
        weights: matching weights per row.
        cluster: matched-set id per row; ``None`` makes every row its own cluster.
        ratio: also estimate the ratio of means (risk or rate ratio).
        conf_level: confidence level.
    """
    y, t, w = _as_vectors(outcome, treated, weights)
    keep = (w > 0) & ~np.isnan(y)
    if cluster is None:
        codes = np.arange(int(keep.sum()))
        variance = "HC1 robust (each person a cluster)"
    else:
        cluster = np.asarray(cluster)
        if cluster.shape != y.shape:
            raise ValueError(f"cluster has shape {cluster.shape} but outcome has {y.shape}")
        if pd.isna(cluster[keep]).any():
            raise ValueError("cluster is missing for rows in the matched sample")
        codes = pd.factorize(cluster[keep])[0]  # the matched sample only: few rows of a large cohort
        variance = "cluster-robust HC1 (matched sets)"
    y, t, w = y[keep], t[keep], w[keep]
    n, n_treated = len(y), int(t.sum())
    if n_treated == 0 or n_treated == n:
        raise ValueError("the matched sample needs treated and comparison rows with an outcome")
    z = _z(conf_level)

    w1, w0 = w[t], w[~t]
    mean_treated = float(np.dot(w1, y[t]) / w1.sum())
    mean_comparison = float(np.dot(w0, y[~t]) / w0.sum())
    residual = y - np.where(t, mean_treated, mean_comparison)
    # Scores w e x with x = (1, treated), summed within clusters.
    score = np.column_stack([w * residual, w * residual * t])
    n_clusters = int(codes.max()) + 1
    cluster_score = np.column_stack([np.bincount(codes, weights=score[:, j], minlength=n_clusters) for j in range(2)])
    meat = cluster_score.T @ cluster_score
    total, total_treated = w.sum(), w1.sum()
    bread = np.linalg.inv(np.array([[total, total_treated], [total_treated, total_treated]]))
    k = 2
    adjustment = n_clusters / (n_clusters - 1) * (n - 1) / (n - k)
    vcov = adjustment * bread @ meat @ bread

    difference = mean_treated - mean_comparison
    se = float(np.sqrt(vcov[1, 1]))
    estimate = _normal_estimate("matched", variance, mean_treated, mean_comparison, difference, se,
                                n, n_treated, n_clusters, conf_level)
    if ratio and mean_treated > 0 and mean_comparison > 0:
        # log(mean_t / mean_c) with mean_c = b0 and mean_t = b0 + b1
        gradient = np.array([1 / mean_treated - 1 / mean_comparison, 1 / mean_treated])
        se_log = float(np.sqrt(gradient @ vcov @ gradient))
        log_ratio = np.log(mean_treated / mean_comparison)
        estimate = replace(
            estimate,
            ratio=mean_treated / mean_comparison,
            ratio_ci_low=float(np.exp(log_ratio - z * se_log)),
            ratio_ci_high=float(np.exp(log_ratio + z * se_log)),
        )
    return estimate


def naive_difference(outcome, treated, *, conf_level: float = 0.95) -> EffectEstimate:
    """Unmatched difference in means with the Welch SE and t interval (R ``t.test``).
    Rows with a missing outcome are left out."""
    y, t, _ = _as_vectors(outcome, treated)
    keep = ~np.isnan(y)
    if not keep.all():
        y, t = y[keep], t[keep]
    y1, y0 = y[t], y[~t]
    if len(y1) < 2 or len(y0) < 2:
        raise ValueError("the naive difference needs at least two treated and two comparison rows with an outcome")
    v1, v0 = y1.var(ddof=1) / len(y1), y0.var(ddof=1) / len(y0)
    se = float(np.sqrt(v1 + v0))
    df = float((v1 + v0) ** 2 / (v1**2 / (len(y1) - 1) + v0**2 / (len(y0) - 1)))
    difference = float(y1.mean() - y0.mean())
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be between 0 and 1, got {conf_level}")
    t_crit = float(stats.t.ppf(0.5 + conf_level / 2, df))
    return EffectEstimate(
        method="naive",
        variance="Welch",
        mean_treated=float(y1.mean()),
        mean_comparison=float(y0.mean()),
        difference=difference,
        se=se,
        ci_low=difference - t_crit * se,
        ci_high=difference + t_crit * se,
        p_value=_two_sided_p(difference, se, df),
        df=df,
        n=len(y),
        n_treated=len(y1),
        n_comparison=len(y0),
        n_clusters=len(y),
        conf_level=conf_level,
    )


# The screen before check_estimable uses its tolerance: a column whose share of variance not
# explained by the columns before it is below this is a linear combination of them.
_RANK_TOLERANCE = 1e-10
# A covariate whose centred sum of squares is below this share of its raw one may be constant on
# the rows used (rounding keeps the centred sum of a constant column from being exactly 0): the
# design is then checked row by row. A share this small is far above rounding and far below any
# real covariate's (a column of values 1000 +- 1 has 1e-6).
_CONSTANT_SHARE = 1e-9
# Rows per block of the cross-products. Their rounding decides the last digits of the
# estimates (the design's columns are not centred), so this block size and the zeroed rows
# left out are part of the published numbers: a treatment p-value of 1e-136 moved by 1.1e-9
# of itself with another blocking.
_CROSS_ROWS = 1 << 16
# Rows per block in the pass for hat values and residuals: small, so the block and its products
# stay in the fastest cache (measured fastest among 1024 to 65536 rows).
_BLOCK_ROWS = 1 << 10
# Blocks of that pass filled from the cohort's columns at once (a fill per block would cost more in
# calls than in copying).
_FILL_BLOCKS = 16


class CovariateAdjustment:
    """The covariate-adjusted model ``outcome ~ treatment + covariates`` of one cohort, built once.

    The design (intercept, treatment, covariates with categorical levels as indicators) is kept
    as its source columns and filled a block of rows at a time (models.design.DesignColumns):
    the whole float matrix, larger than the cohort's own columns, is never held. Every outcome
    reuses it. Outcomes measured on the same rows (e.g. the measures of one follow-up window) are
    estimated together, and one pass over the design serves the cross-products of every set of
    rows; a second pass, per set of rows, gives the hat values and residuals. On a subset of
    rows a categorical covariate gets indicators for the levels present there, against the first
    present level — exactly the design that would be built from those rows alone — so estimates
    equal a model fitted on the subset from scratch.
    """

    def __init__(self, data: pd.DataFrame, treatment: str, covariates: Sequence[str],
                 categorical: Sequence[str] | None = None):
        if treatment not in data.columns:
            raise ValueError(f"column {treatment!r} is not in the data")
        _, self.treated, _ = _as_vectors(np.zeros(len(data)), data[treatment].to_numpy())
        self.design = design_columns(data, covariates, categorical,
                                     leading={"(Intercept)": 1.0, treatment: self.treated})

    def _columns_present(self, keep: np.ndarray | None) -> np.ndarray:
        """Design columns of the model on these rows: a categorical covariate keeps indicators of
        the levels present, less the first present level (the reference of a design built there)."""
        used = np.ones(len(self.design.names), dtype=bool)
        for name, codes in self.design.codes.items():
            columns = self.design.columns_of(name)
            counts = np.bincount(codes if keep is None else codes[keep], minlength=len(columns) + 1)
            present = counts > 0
            present[np.argmax(present)] = False  # the first present level is the reference
            used[columns] = present[1:]
        return np.flatnonzero(used)

    def _check_estimable(self, keep: np.ndarray | None, columns: np.ndarray, cross: np.ndarray) -> None:
        """Raise as :func:`check_estimable` would on this design built from these rows alone.

        The check is made on the cross-products (a column of (near) zero centred sum of squares,
        or a near-singular correlation matrix); only if it finds a problem is the design
        materialised for ``check_estimable``, which names the covariates at fault."""
        covariate = columns[2:]  # after the intercept and the treatment
        if not len(covariate):
            return
        inner = np.arange(2, len(columns))  # positions in cross, which holds the used columns
        n = cross[0, 0]
        mean = cross[0, inner] / n
        centred = cross[np.ix_(inner, inner)] - n * np.outer(mean, mean)
        spread = np.diag(centred)
        suspect = bool((spread <= _CONSTANT_SHARE * np.diag(cross)[inner]).any())
        if not suspect:
            scale = np.sqrt(spread)
            _, _, rank, _ = scipy.linalg.lapack.dpstrf(centred / np.outer(scale, scale), tol=_RANK_TOLERANCE)
            suspect = rank < len(covariate)
        if suspect:
            rows = slice(0, self.design.n_rows) if keep is None else np.flatnonzero(keep)
            names = [self.design.names[j] for j in covariate]
            check_estimable(Design(pd.DataFrame(self.design.rows(rows)[:, covariate], columns=names),
                                   {name: self.design.source[j] for name, j in zip(names, covariate)}))

    def _cross_products(self, sets: list[tuple[np.ndarray, list[np.ndarray]]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per set of rows ``keep`` and the outcomes measured on them: X'WX and X'Wy with W the
        rows kept, in one pass over the design."""
        n, k = self.design.n_rows, len(self.design.names)
        sums = [(np.zeros((k, k)), np.zeros((k, len(outcomes)))) for _, outcomes in sets]
        weights = [None if keep.all() else keep.astype(float) for keep, _ in sets]
        block = np.empty((min(_CROSS_ROWS, n), k))  # reused: no fresh pages per block
        weighted_block = np.empty_like(block) if any(weight is not None for weight in weights) else None
        for start in range(0, n, _CROSS_ROWS):
            part = slice(start, start + _CROSS_ROWS)
            x = self.design.rows(part, out=block)
            for (keep, outcomes), weight, (cross, cross_outcomes) in zip(sets, weights, sums):
                # rows left out weigh 0, so X'WX = (WX)'(WX): a product with its own transpose (BLAS syrk)
                weighted = x if weight is None else np.multiply(x, weight[part, None], out=weighted_block[:len(x)])
                cross += weighted.T @ weighted
                cross_outcomes += weighted.T @ _outcome_block(outcomes, part, len(x), keep[part])
        return sums

    def _fit(self, keep: np.ndarray, outcomes: list[np.ndarray], cross: np.ndarray,
             cross_outcomes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Treatment coefficients and HC3 variances of the outcomes, all measured on the rows
        ``keep``, from their cross-products (:meth:`_cross_products`)."""
        every_row = bool(keep.all())
        columns = self._columns_present(None if every_row else keep)
        k, m = len(self.design.names), len(outcomes)
        cross = cross[np.ix_(columns, columns)]
        self._check_estimable(None if every_row else keep, columns, cross)
        # Columns left out (levels absent from the rows) get zero rows and columns: coefficient 0.
        inverse = np.zeros((k, k))
        inverse[np.ix_(columns, columns)] = np.linalg.inv(cross)
        beta = inverse @ cross_outcomes
        # HC3: V = B (sum_i x_i x_i' e_i^2 / (1 - h_i)^2) B with B = (X'X)^-1 and hat values
        # h_i = x_i' B x_i, whose treatment entry is sum_i (e_i (x_i' B e_treatment) / (1 - h_i))^2.
        rows = None if every_row else np.flatnonzero(keep)
        variance = np.zeros(m)
        # The design and outcomes are filled _FILL_BLOCKS blocks at a time (fewer, longer fills), the
        # sums still made a block at a time.
        buffer = np.empty((_BLOCK_ROWS * _FILL_BLOCKS, k))
        for fill_start in range(0, self.design.n_rows if every_row else len(rows), len(buffer)):
            part = (slice(fill_start, fill_start + len(buffer)) if every_row
                    else rows[fill_start:fill_start + len(buffer)])
            filled = self.design.rows(part, out=buffer)
            filled_outcomes = _outcome_block(outcomes, part, len(filled))
            for start in range(0, len(filled), _BLOCK_ROWS):
                block = filled[start:start + _BLOCK_ROWS]
                projected = block @ inverse  # x_i' B for every row of the block
                leverage = np.einsum("ij,ij->i", projected, block)
                scaled = ((filled_outcomes[start:start + _BLOCK_ROWS] - block @ beta)
                          * (projected[:, 1] / (1 - leverage))[:, None])
                variance += np.einsum("ij,ij->j", scaled, scaled)
        return beta[1], variance

    def estimate(self, outcome, *, conf_level: float = 0.95) -> EffectEstimate:
        """OLS of ``outcome`` (one value per row; missing values leave the row out) with the HC3
        robust SE, as :func:`adjusted_difference`."""
        return self.estimate_many([outcome], conf_level=conf_level)[0]

    def estimate_many(self, outcomes: Sequence, *, conf_level: float = 0.95) -> list[EffectEstimate]:
        """:meth:`estimate` of each outcome, those measured on the same rows fitted together."""
        # Floats as they are (a large cohort's outcomes may be float32, each converted a block at a
        # time); anything else as float64.
        values = [_floats(outcome) for outcome in outcomes]
        for y in values:
            if y.shape != self.treated.shape:
                raise ValueError(f"outcome has shape {y.shape} but the design has {self.treated.shape[0]} rows")
        measured = [~np.isnan(y) for y in values]
        groups: dict[bytes, list[int]] = {}  # outcomes by the rows they are measured on, in order
        for i, keep in enumerate(measured):
            groups.setdefault(np.packbits(keep).tobytes(), []).append(i)
        sets = [(measured[members[0]], [values[i] for i in members]) for members in groups.values()]
        estimates: list[EffectEstimate | None] = [None] * len(values)
        for members, (keep, outcomes), (cross, cross_outcomes) in zip(groups.values(), sets,
                                                                        self._cross_products(sets)):
            differences, variances = self._fit(keep, outcomes, cross, cross_outcomes)
            kept_treated = keep & self.treated
            n, n_treated = int(keep.sum()), int(kept_treated.sum())
            for i, difference, variance in zip(members, differences.tolist(), variances.tolist()):
                se = float(np.sqrt(variance))
                mean_treated = float(values[i][kept_treated].astype(float).mean())
                estimates[i] = _normal_estimate("adjusted", "HC3 robust", mean_treated, mean_treated - difference,
                                                difference, se, n, n_treated, n, conf_level)
        return estimates


def _floats(values) -> np.ndarray:
    array = np.asarray(values)
    return array if array.dtype.kind == "f" else array.astype(float)


def _outcome_block(outcomes: list[np.ndarray], rows: slice | np.ndarray, count: int,
                   kept: np.ndarray | None = None) -> np.ndarray:
    """The outcomes' values in ``rows`` (``count`` of them) as a (rows, outcomes) block, laid out
    as the transpose of one row per outcome; with ``kept``, 0 in the rows left out (whose outcome
    is missing)."""
    block = np.zeros((len(outcomes), count))
    for row, outcome in zip(block, outcomes):
        if kept is None:
            row[:] = outcome[rows]
        else:
            np.copyto(row, outcome[rows], where=kept)
    return block.T


def adjusted_difference(
    data: pd.DataFrame,
    outcome: str,
    treatment: str,
    covariates: Sequence[str],
    categorical: Sequence[str] | None = None,
    *,
    conf_level: float = 0.95,
) -> EffectEstimate:
    """OLS of ``outcome ~ treatment + covariates`` on the full cohort with the HC3
    robust SE (R ``sandwich::vcovHC(type = "HC3")``); rows with a missing outcome are
    left out. Categorical covariates enter as indicators for every level but the first.
    For several outcomes of one cohort, build one :class:`CovariateAdjustment` instead."""
    for name in (outcome, treatment):
        if name not in data.columns:
            raise ValueError(f"column {name!r} is not in the data")
    keep = data[outcome].notna().to_numpy()
    rows = data.loc[keep]
    model = CovariateAdjustment(rows, treatment, covariates, categorical)
    return model.estimate(rows[outcome].to_numpy(dtype=float), conf_level=conf_level)


def e_value(risk_ratio: float) -> float:
    """E-value of a risk ratio (VanderWeele & Ding 2017): RR + sqrt(RR (RR - 1)), with
    RR inverted first when below 1. The minimum strength of association (risk-ratio
    scale) an unmeasured confounder would need with both treatment and outcome to
    explain the estimate away."""
    if not risk_ratio > 0:
        raise ValueError(f"a risk ratio must be positive, got {risk_ratio}")
    rr = 1 / risk_ratio if risk_ratio < 1 else risk_ratio
    return float(rr + np.sqrt(rr * (rr - 1)))


def e_value_ci(risk_ratio: float, ci_low: float, ci_high: float) -> float:
    """E-value of the confidence limit closest to 1; 1 when the interval includes 1."""
    if ci_low <= 1 <= ci_high:
        return 1.0
    return e_value(ci_low if risk_ratio > 1 else ci_high)


def _round_half_away(value: float) -> int:
    return int(np.sign(value) * np.floor(abs(value) + 0.5))


def plain_language(
    ci_low: float,
    ci_high: float,
    *,
    took_part: str = "took part",
    event: str = "reoffended",
    window: str = "within a year",
) -> str:
    """The difference in a proportion (treated minus comparison, as a CI) per 100 people.

    >>> plain_language(-0.081, -0.032)
    'For 100 typical people who took part, compared with 100 similar people who did not, between 3 and 8 fewer reoffended within a year.'
    >>> plain_language(-0.03, 0.02)
    'For 100 typical people who took part, compared with 100 similar people who did not, between 3 fewer and 2 more reoffended within a year.'
    """
    low, high = _round_half_away(100 * ci_low), _round_half_away(100 * ci_high)
    if high < 0:
        amount = f"about {-high} fewer" if low == high else f"between {-high} and {-low} fewer"
    elif low > 0:
        amount = f"about {low} more" if low == high else f"between {low} and {high} more"
    elif low == high == 0:
        amount = "about the same number (a difference of less than 1 either way)"
    elif low == 0:
        amount = f"between 0 and {high} more"
    elif high == 0:
        amount = f"between 0 and {-low} fewer"
    else:
        amount = f"between {-low} fewer and {high} more"
    return (
        f"For 100 typical people who {took_part}, compared with 100 similar people who did not, "
        f"{amount} {event} {window}."
    )


@dataclass(frozen=True)
class EffectSummary:
    """Everything reported for one outcome.

    Attributes:
        outcome: outcome column name; kind: ``binary``, ``count``, ``continuous`` or
            ``time_to_first``.
        status: ``ok``, ``too_few_treated`` or ``too_few_treated_reoffenders``; when not
            ``ok`` the estimates hold counts only (numbers are NaN).
        n_treated: treated people in the matched sample (the JDL count);
            n_treated_reoffenders: treated people with a time-to-first value
            (``time_to_first`` only, else ``None``).
        matched, naive, adjusted: the three estimates (see :class:`EffectEstimate`).
        sentence: plain-language result for a binary outcome (``None`` otherwise or gated).
        e_value, e_value_ci: E-values of the matched risk/rate ratio and its CI limit
            closest to 1 (NaN when there is no ratio).
        min_treated, min_treated_reoffenders: the gates applied.
        notes: caveats for the report (e.g. treated people left unmatched by the caliper,
            which changes the population the matched estimate describes).
    """

    outcome: str
    kind: str
    status: str
    n_treated: int
    n_treated_reoffenders: int | None
    matched: EffectEstimate
    naive: EffectEstimate
    adjusted: EffectEstimate
    sentence: str | None
    e_value: float
    e_value_ci: float
    min_treated: int
    min_treated_reoffenders: int
    notes: tuple[str, ...] = field(default=())

    def to_frame(self) -> pd.DataFrame:
        """Three rows (matched, naive, adjusted) with the outcome, kind and status."""
        frame = pd.concat([e.to_frame() for e in (self.matched, self.naive, self.adjusted)], ignore_index=True)
        frame.insert(0, "status", self.status)
        frame.insert(0, "kind", self.kind)
        frame.insert(0, "outcome", self.outcome)
        frame["e_value"] = [self.e_value, np.nan, np.nan]
        frame["e_value_ci"] = [self.e_value_ci, np.nan, np.nan]
        return frame

    def summary(self) -> str:
        if self.status != STATUS_OK:
            return f"{self.outcome}: not estimated ({self.status.replace('_', ' ')}; {self.n_treated} treated)"
        m = self.matched
        line = (
            f"{self.outcome}: treated {m.mean_treated:.3f} vs matched comparison {m.mean_comparison:.3f}, "
            f"difference {m.difference:+.3f} ({m.conf_level:.0%} CI {m.ci_low:+.3f} to {m.ci_high:+.3f}, p = {m.p_value:.3g}); "
            f"naive {self.naive.difference:+.3f}, adjusted {self.adjusted.difference:+.3f}"
        )
        if self.sentence:
            line += f"\n  {self.sentence}"
        if np.isfinite(self.e_value):
            line += f"\n  E-value {self.e_value:.2f} (CI limit {self.e_value_ci:.2f})"
        return line


def _gate(y: np.ndarray, kind: str, match: MatchResult, min_treated: int,
          min_treated_reoffenders: int) -> tuple[str, int, int | None, np.ndarray]:
    """(status, treated people in the matched sample, treated reoffenders or None, the matched
    sample's rows): the JDL gates of :func:`estimate_effect`."""
    sample = np.flatnonzero(match.weights > 0)
    treated = match.treated[sample]
    if kind == "time_to_first":
        n_treated = int(np.count_nonzero(treated))
        n_reoffenders: int | None = int(np.count_nonzero(treated & ~np.isnan(y[sample])))
    else:
        n_treated = int(np.count_nonzero(treated & ~np.isnan(y[sample])))
        n_reoffenders = None
    status = STATUS_OK
    if n_treated < min_treated:
        status = STATUS_TOO_FEW_TREATED
    elif n_reoffenders is not None and n_reoffenders < min_treated_reoffenders:
        status = STATUS_TOO_FEW_TREATED_REOFFENDERS
    return status, n_treated, n_reoffenders, sample


def gate_status(outcome, match: MatchResult, *, kind: str = "binary", min_treated: int = MIN_TREATED,
                min_treated_reoffenders: int = MIN_TREATED_REOFFENDERS) -> str:
    """The status :func:`estimate_effect` gives ``outcome`` (values in the rows of ``match``):
    ``ok`` when its estimates are made."""
    return _gate(np.asarray(outcome, dtype=float), kind, match, min_treated, min_treated_reoffenders)[0]


def estimate_effect(
    data: pd.DataFrame,
    outcome: str,
    match: MatchResult,
    *,
    treatment: str,
    covariates: Sequence[str],
    categorical: Sequence[str] | None = None,
    kind: str = "binary",
    conf_level: float = 0.95,
    min_treated: int = MIN_TREATED,
    min_treated_reoffenders: int = MIN_TREATED_REOFFENDERS,
    took_part: str = "took part",
    event: str = "reoffended",
    window: str = "within a year",
    adjustment: CovariateAdjustment | None = None,
    adjusted: EffectEstimate | None = None,
) -> EffectSummary:
    """Matched, naive and adjusted estimates for ``outcome``, gated by the JDL rules.

    Args:
        data: the full cohort, rows aligned with ``match`` (the rows it was fitted on).
        outcome: outcome column. Missing values mean "not measured" (e.g. a follow-up
            window not yet complete) and those rows are left out — except for
            ``time_to_first``, where a missing value means "did not reoffend".
        match: the matching result (weights; matched sets as clusters, or each person
            after matching with replacement).
        treatment: 0/1 treatment column; covariates, categorical: for the adjusted model.
        kind: ``binary``, ``count``, ``continuous`` or ``time_to_first``.
        min_treated: fewest treated people for any estimate.
        min_treated_reoffenders: fewest treated reoffenders for ``time_to_first``.
        took_part, event, window: wording of the plain-language sentence.
        adjustment: the cohort's adjusted model built once (rows aligned with ``data``), to
            share among outcomes; by default it is built here from ``covariates``.
        adjusted: the adjusted estimate when already made (by
            :meth:`CovariateAdjustment.estimate_many` for the outcomes that :func:`gate_status`
            lets through, fitted together); used as it is.
    """
    if kind not in OUTCOME_KINDS:
        raise ValueError(f"kind must be one of {', '.join(OUTCOME_KINDS)}; got {kind!r}")
    if outcome not in data.columns:
        raise ValueError(f"outcome column {outcome!r} is not in the data")
    if len(data) != len(match.weights):
        raise ValueError(f"data has {len(data)} rows but the matching was done on {len(match.weights)}")
    if treatment not in data.columns:
        raise ValueError(f"treatment column {treatment!r} is not in the data")
    y = data[outcome].to_numpy(dtype=float)
    treated = match.treated
    if not np.array_equal(data[treatment].to_numpy() == 1, treated):
        raise ValueError(f"column {treatment!r} does not agree with the matching's treatment: are the rows aligned?")
    if adjustment is not None and not np.array_equal(adjustment.treated, treated):
        raise ValueError("the adjusted model's treatment does not agree with the matching's: are the rows aligned?")
    if kind == "binary" and not np.isin(y[~np.isnan(y)], (0, 1)).all():
        raise ValueError(f"binary outcome {outcome!r} has values other than 0 and 1")
    status, n_treated, n_reoffenders, sample = _gate(y, kind, match, min_treated, min_treated_reoffenders)
    if status != STATUS_OK:
        measured = ~np.isnan(y[sample])
        n_used = int(np.count_nonzero(measured))
        n_t = int(np.count_nonzero(measured & treated[sample]))
        gated = _not_estimated("matched", "", n_used, n_t, n_used - n_t, conf_level)
        return EffectSummary(
            outcome=outcome,
            kind=kind,
            status=status,
            n_treated=n_treated,
            n_treated_reoffenders=n_reoffenders,
            matched=gated,
            naive=replace(gated, method="naive"),
            adjusted=replace(gated, method="adjusted"),
            sentence=None,
            e_value=float("nan"),
            e_value_ci=float("nan"),
            min_treated=min_treated,
            min_treated_reoffenders=min_treated_reoffenders,
        )

    with_ratio = kind in ("binary", "count")
    # The matched sample's rows only (in their order, as matched_difference keeps them): a small
    # part of a large cohort.
    matched = matched_difference(y[sample], treated[sample], match.weights[sample],
                                 None if match.subclass is None else match.subclass[sample],
                                 ratio=with_ratio, conf_level=conf_level)
    naive = naive_difference(y, treated, conf_level=conf_level)
    if adjusted is None and adjustment is None:
        adjusted = adjusted_difference(data, outcome, treatment, covariates, categorical, conf_level=conf_level)
    elif adjusted is None:
        adjusted = adjustment.estimate(y, conf_level=conf_level)
    sentence = None
    if kind == "binary":
        sentence = plain_language(matched.ci_low, matched.ci_high, took_part=took_part, event=event, window=window)
    ev = ev_ci = float("nan")
    if with_ratio and np.isfinite(matched.ratio):
        ev = e_value(matched.ratio)
        ev_ci = e_value_ci(matched.ratio, matched.ratio_ci_low, matched.ratio_ci_high)
    notes = ()
    if len(match.unmatched_treated):
        notes = (
            f"{len(match.unmatched_treated)} treated people had no match within the caliper and are not in the "
            "matched estimate, which therefore describes the matched treated people only",
        )
    return EffectSummary(
        outcome=outcome,
        kind=kind,
        status=status,
        n_treated=n_treated,
        n_treated_reoffenders=n_reoffenders,
        matched=matched,
        naive=naive,
        adjusted=adjusted,
        sentence=sentence,
        e_value=ev,
        e_value_ci=ev_ci,
        min_treated=min_treated,
        min_treated_reoffenders=min_treated_reoffenders,
        notes=notes,
    )
