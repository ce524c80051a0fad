"""Survival analysis of time to first proven reoffence.

Kaplan–Meier curves with Greenwood confidence intervals, the log-rank test, Cox
proportional-hazards models (covariate-adjusted on the full cohort; treatment-only on a
matched sample with a cluster-robust variance), a proportional-hazards test and the
restricted mean survival time (RMST).

Every estimator reproduces R's ``survival`` package (version 3.5) on the same data; the
R script that made the reference numbers is ``tests/fixtures/survival/make_fixtures.R``.
Conventions, all as in R:

* Case weights (MatchIt matching weights) enter every estimator as frequency-like
  weights: weighted numbers at risk and weighted events.
* Kaplan–Meier confidence intervals use the "log" transform (R ``survfit``'s default):
  ``S * exp(±z * se(log S))`` with the upper limit capped at 1, where ``se(log S)`` is
  Greenwood's ``sqrt(sum d / (n (n - d)))`` on weighted counts. This is
  ``survfit(..., robust = FALSE)``. R switches to an infinitesimal-jackknife variance by
  default when weights are not whole numbers; ``kaplan_meier(variance="robust",
  cluster=...)`` reproduces that too, clustered on the matched set.
* Cox models use Efron's method for tied event times.

Example::

    >>> import numpy as np
    >>> time = np.array([5, 8, 8, 12, 20, 30])
    >>> event = np.array([1, 1, 0, 1, 0, 1])
    >>> km = kaplan_meier(time, event, horizons=(10,))
    >>> km.horizons[["horizon", "n_at_risk", "survival"]].round(3).to_dict("records")
    [{'horizon': 10, 'n_at_risk': 3, 'survival': 0.667}]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse
from scipy import stats

from models.design import numeric_design

DEFAULT_HORIZONS: tuple[int, ...] = (91, 182, 365, 730)
"""Default reporting horizons in days: about 3, 6, 12 and 24 months."""

_NEWTON_MAX_ITER = 50
_NEWTON_STEP_TOL = 1e-10
# Rows per block when a sum over people would otherwise make an (n, p) temporary.
_BLOCK_ROWS = 1 << 16


# ---------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------


def _as_float_vector(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
    array = array.astype(float)
    missing = np.isnan(array)
    if missing.any():
        raise ValueError(f"{name} has {int(missing.sum())} missing values")
    return array


def _survival_inputs(time, event, weights=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated (time, event as 0/1 float, weights) arrays of one length."""
    time = _as_float_vector(time, "time")
    event = _as_float_vector(event, "event")
    if len(time) == 0:
        raise ValueError("no observations: time is empty")
    if len(event) != len(time):
        raise ValueError(f"event has {len(event)} values but time has {len(time)}")
    invalid_time = ~np.isfinite(time) | (time < 0)
    if invalid_time.any():
        raise ValueError(f"time must be finite and non-negative; {int(invalid_time.sum())} values are not")
    if not np.isin(event, (0.0, 1.0)).all():
        raise ValueError("event must be 0 (censored) or 1 (event)")
    if weights is None:
        weights = np.ones_like(time)
    else:
        weights = _as_float_vector(weights, "weights")
        if len(weights) != len(time):
            raise ValueError(f"weights has {len(weights)} values but time has {len(time)}")
        if not (np.isfinite(weights).all() and (weights > 0).all()):
            raise ValueError(
                "weights must be finite and positive; drop unmatched rows (weight 0) before fitting"
            )
    return time, event, weights


def _group_labels(group, n: int) -> np.ndarray:
    if group is None:
        return np.full(n, "all", dtype=object)
    labels = np.asarray(group)
    if labels.shape != (n,):
        raise ValueError(f"group has shape {labels.shape} but time has {n} values")
    if pd.isna(labels).any():
        raise ValueError(f"group has {int(pd.isna(labels).sum())} missing values")
    return labels


def _cluster_codes(cluster, n: int) -> np.ndarray:
    """Integer code per row for the cluster (matched set); each row alone if None."""
    if cluster is None:
        return np.arange(n)
    values = np.asarray(cluster)
    if values.shape != (n,):
        raise ValueError(f"cluster has shape {values.shape} but time has {n} values")
    if pd.isna(values).any():
        raise ValueError(f"cluster has {int(pd.isna(values).sum())} missing values")
    return pd.factorize(values)[0]


def _in_time_order(time: np.ndarray, *arrays):
    """``time`` and each array with rows sorted by time (stable); unchanged when already sorted.

    The Cox estimates do not depend on the order of the rows, but the Efron sums over risk
    sets do far less work on rows in time order: each distinct time's people are then a
    contiguous run of rows instead of rows scattered through memory.
    """
    if np.all(time[1:] >= time[:-1]):
        return (time, *arrays)
    order = np.argsort(time, kind="stable")
    return (time[order], *(array[order] for array in arrays))


def _z(conf_level: float) -> float:
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be between 0 and 1, got {conf_level}")
    return float(stats.norm.ppf(0.5 + conf_level / 2))


def _two_sided_p(z):
    return 2 * stats.norm.sf(np.abs(z))


# ---------------------------------------------------------------------------------------
# Kaplan–Meier
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _KMTable:
    """Kaplan–Meier estimate for one group at each distinct observed time."""

    time: np.ndarray
    n_at_risk: np.ndarray
    n_events: np.ndarray
    n_censored: np.ndarray
    weighted_at_risk: np.ndarray
    weighted_events: np.ndarray
    survival: np.ndarray
    greenwood_terms: np.ndarray  # d / (n (n - d)) per time; inf when everyone at risk has the event


def _km_table(time: np.ndarray, event: np.ndarray, weights: np.ndarray) -> _KMTable:
    distinct, position = np.unique(time, return_inverse=True)
    n_events = np.bincount(position, weights=event).astype(int)
    n_rows = np.bincount(position)
    weighted_events = np.bincount(position, weights=weights * event)
    weighted_rows = np.bincount(position, weights=weights)
    n_at_risk = np.cumsum(n_rows[::-1])[::-1]
    weighted_at_risk = np.cumsum(weighted_rows[::-1])[::-1]
    survivors = weighted_at_risk - weighted_events
    everyone_failed = survivors <= 1e-12 * weighted_at_risk
    survival = np.cumprod(np.where(everyone_failed, 0.0, survivors / weighted_at_risk))
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = np.where(
            everyone_failed, np.inf, weighted_events / (weighted_at_risk * np.where(everyone_failed, 1.0, survivors))
        )
    return _KMTable(
        time=distinct,
        n_at_risk=n_at_risk,
        n_events=n_events,
        n_censored=n_rows - n_events,
        weighted_at_risk=weighted_at_risk,
        weighted_events=weighted_events,
        survival=survival,
        greenwood_terms=greenwood,
    )


def _km_robust_std_err(km: _KMTable, time, event, weights, cluster_codes) -> np.ndarray:
    """Infinitesimal-jackknife standard error of log S(t) at each of km.time, summing the
    weighted influences within clusters (R survfit's robust variance with ``cluster``).

    Subject i's influence on S(t) is S(t) [H(min(t, T_i)) - event_i 1{T_i <= t} / (n_i - d_i)]
    with H the Greenwood cumulative sum. Per cluster c that is S(t) (H(t) A_c(t) + B_c(t)),
    A_c the weight of members still at risk after t and B_c the summed terms of members whose
    time has passed. Sum_c (H A_c + B_c)^2 is kept at every time from running sums of
    A^2, A B and B^2, updated as each member's time passes: O(n log n), no loop over times.
    """
    finite_terms = np.where(np.isinf(km.greenwood_terms), 0.0, km.greenwood_terms)
    cumulative = np.cumsum(finite_terms)
    position = np.searchsorted(km.time, time)
    survivors = km.weighted_at_risk - km.weighted_events
    with np.errstate(divide="ignore"):
        own_jump = np.where(survivors[position] > 0, 1 / survivors[position], 0.0)
    passed_term = weights * (cumulative[position] - event * own_jump)

    order = np.lexsort((time, cluster_codes))
    codes = cluster_codes[order]
    first_in_cluster = np.r_[True, codes[1:] != codes[:-1]]
    start = np.flatnonzero(first_in_cluster)
    size = np.diff(np.r_[start, len(codes)])

    def within_cluster_cumsum(values):
        total = np.cumsum(values)
        return total - np.repeat(total[start] - values[start], size)

    w_sorted = weights[order]
    cluster_weight = np.repeat(np.add.reduceat(w_sorted, start), size)
    a_after = cluster_weight - within_cluster_cumsum(w_sorted)
    a_before = a_after + w_sorted
    b_after = within_cluster_cumsum(passed_term[order])
    b_before = b_after - passed_term[order]

    def over_time(values):
        return np.cumsum(np.bincount(position[order], weights=values, minlength=len(km.time)))

    sum_aa = np.sum(np.add.reduceat(w_sorted, start) ** 2) + over_time(a_after**2 - a_before**2)
    sum_ab = over_time(a_after * b_after - a_before * b_before)
    sum_bb = over_time(b_after**2 - b_before**2)
    variance = cumulative**2 * sum_aa + 2 * cumulative * sum_ab + sum_bb
    return np.where(np.isinf(km.greenwood_terms).cumsum() > 0, np.inf, np.sqrt(np.maximum(variance, 0.0)))


def _log_ci(survival: np.ndarray, se_log: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """R survfit's conf.type = "log" limits; undefined (NaN) where survival is 0."""
    with np.errstate(invalid="ignore", over="ignore"):
        positive = survival > 0
        lower = np.where(positive, survival * np.exp(-z * se_log), np.nan)
        upper = np.where(positive, np.minimum(survival * np.exp(z * se_log), 1.0), np.nan)
    return lower, upper


@dataclass(frozen=True)
class KaplanMeierResult:
    """Kaplan–Meier curves per group.

    Attributes:
        curves: one row per group and distinct observed time (event or censoring), columns
            ``group, time, n_at_risk, n_events, n_censored`` (people, unweighted),
            ``weighted_at_risk, weighted_events`` (weighted counts used by the estimator),
            ``survival, std_err`` (standard error of log survival, R's ``std.err``),
            ``lower, upper`` (CI for survival), ``cum_incidence`` (1 − survival),
            ``cum_incidence_lower, cum_incidence_upper``. The curve is a right-continuous
            step function that starts at survival 1 at time 0 (that row is not listed).
        horizons: one row per group and horizon, columns ``group, horizon, n_at_risk``
            (people still at risk at the horizon, i.e. time >= horizon),
            ``weighted_at_risk, cumulative_events`` (people with an event by the horizon),
            ``survival, lower, upper, cum_incidence, cum_incidence_lower,
            cum_incidence_upper``. Estimates are NaN for a horizon beyond a group's longest
            follow-up.
        conf_level: confidence level of the intervals.
        variance: ``"greenwood"`` or ``"robust"`` (clustered infinitesimal jackknife).
        conf_type: the CI transform, always ``"log"`` (as R survfit's default).
    """

    curves: pd.DataFrame
    horizons: pd.DataFrame
    conf_level: float
    variance: str
    conf_type: str = "log"

    def to_frame(self) -> pd.DataFrame:
        return self.curves

    def summary(self) -> pd.DataFrame:
        return self.horizons


def kaplan_meier(
    time,
    event,
    group=None,
    weights=None,
    horizons: Sequence[float] = DEFAULT_HORIZONS,
    conf_level: float = 0.95,
    variance: str = "greenwood",
    cluster=None,
) -> KaplanMeierResult:
    """Kaplan–Meier survival curve per group with log-transformed confidence intervals.

    With ``variance="greenwood"`` (default) this matches R
    ``survfit(Surv(time, event) ~ group, weights = w, robust = FALSE)``. With
    ``variance="robust"`` the standard error is the infinitesimal jackknife summed within
    ``cluster`` (each row its own cluster if None), matching R
    ``survfit(Surv(time, event) ~ group, weights = w, cluster = subclass)``, which is R's
    default whenever the weights are not whole numbers; use it for matched samples so the
    interval allows for people in one matched set being alike.

    Args:
        time: follow-up time (e.g. days from index to first proven reoffence or censoring).
        event: 1 if the event (reoffence) was observed, 0 if censored.
        group: optional group label per row (e.g. treated / comparison); one curve each.
        weights: optional positive case weights (e.g. MatchIt matching weights).
        horizons: times at which to tabulate at-risk counts and cumulative incidence.
        conf_level: confidence level for the intervals.
        variance: ``"greenwood"`` or ``"robust"``.
        cluster: matched-set identifier per row, for the robust variance.

    Example::

        >>> km = kaplan_meier([3, 5, 5, 9], [1, 1, 0, 1], group=["a", "a", "b", "b"], horizons=(4,))
        >>> km.horizons[["group", "survival", "cum_incidence"]].to_dict("records")
        [{'group': 'a', 'survival': 0.5, 'cum_incidence': 0.5}, {'group': 'b', 'survival': 1.0, 'cum_incidence': 0.0}]
    """
    time, event, weights = _survival_inputs(time, event, weights)
    labels = _group_labels(group, len(time))
    z = _z(conf_level)
    if variance not in ("greenwood", "robust"):
        raise ValueError(f"variance must be 'greenwood' or 'robust', got {variance!r}")
    if cluster is not None and variance != "robust":
        raise ValueError("cluster is used only by the robust variance; pass variance='robust'")
    cluster_codes = _cluster_codes(cluster, len(time))
    horizon_values = np.asarray(horizons, dtype=float)
    if horizon_values.ndim != 1 or (horizon_values < 0).any() or np.isnan(horizon_values).any():
        raise ValueError(f"horizons must be a list of non-negative times, got {horizons!r}")

    curve_frames, horizon_frames = [], []
    for label in np.unique(labels).tolist():
        rows = labels == label
        km = _km_table(time[rows], event[rows], weights[rows])
        if variance == "greenwood":
            std_err = np.sqrt(np.cumsum(km.greenwood_terms))
        else:
            std_err = _km_robust_std_err(km, time[rows], event[rows], weights[rows], cluster_codes[rows])
        lower, upper = _log_ci(km.survival, std_err, z)
        curve_frames.append(
            pd.DataFrame(
                {
                    "group": label,
                    "time": km.time,
                    "n_at_risk": km.n_at_risk,
                    "n_events": km.n_events,
                    "n_censored": km.n_censored,
                    "weighted_at_risk": km.weighted_at_risk,
                    "weighted_events": km.weighted_events,
                    "survival": km.survival,
                    "std_err": std_err,
                    "lower": lower,
                    "upper": upper,
                    "cum_incidence": 1 - km.survival,
                    "cum_incidence_lower": 1 - upper,
                    "cum_incidence_upper": 1 - lower,
                }
            )
        )
        horizon_frames.append(_at_horizons(label, km, std_err, lower, upper, horizon_values))
    return KaplanMeierResult(
        curves=pd.concat(curve_frames, ignore_index=True),
        horizons=pd.concat(horizon_frames, ignore_index=True),
        conf_level=conf_level,
        variance=variance,
    )


def _at_horizons(label, km: _KMTable, std_err, lower, upper, horizons: np.ndarray) -> pd.DataFrame:
    # Index of the last distinct time at or before each horizon; -1 means before any time.
    last = np.searchsorted(km.time, horizons, side="right") - 1
    before_first = last < 0
    beyond_follow_up = horizons > km.time[-1]
    safe = np.maximum(last, 0)
    survival = np.where(before_first, 1.0, km.survival[safe])
    low = np.where(before_first, 1.0, lower[safe])
    high = np.where(before_first, 1.0, upper[safe])
    survival, low, high = (np.where(beyond_follow_up, np.nan, v) for v in (survival, low, high))
    # People at risk at a horizon: observed time >= horizon.
    first_at_or_after = np.searchsorted(km.time, horizons, side="left")
    at_risk = np.append(km.n_at_risk, 0)[first_at_or_after]
    weighted_at_risk = np.append(km.weighted_at_risk, 0.0)[first_at_or_after]
    cumulative_events = np.where(before_first, 0, np.cumsum(km.n_events)[safe])
    horizon_column = horizons.astype(int) if np.all(horizons == np.round(horizons)) else horizons
    return pd.DataFrame(
        {
            "group": label,
            "horizon": horizon_column,
            "n_at_risk": at_risk,
            "weighted_at_risk": weighted_at_risk,
            "cumulative_events": cumulative_events,
            "survival": survival,
            "lower": low,
            "upper": high,
            "cum_incidence": 1 - survival,
            "cum_incidence_lower": 1 - high,
            "cum_incidence_upper": 1 - low,
        }
    )


# ---------------------------------------------------------------------------------------
# Log-rank test
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogRankResult:
    """Log-rank test of equal survival across groups (R ``survdiff`` with rho = 0).

    Attributes:
        chi2: test statistic.
        df: degrees of freedom (number of groups − 1).
        p: p-value from the chi-square distribution.
        table: per group ``group, n, observed, expected`` events.
    """

    chi2: float
    df: int
    p: float
    table: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        return self.table

    def summary(self) -> str:
        return f"Log-rank test: chi-square = {self.chi2:.2f} on {self.df} df, p = {self.p:.3g}"


def log_rank_test(time, event, group) -> LogRankResult:
    """Log-rank test that survival is the same in every group.

    Unweighted, as R ``survdiff(Surv(time, event) ~ group)`` (which takes no case
    weights); for a weighted matched comparison use :func:`cox_matched`, whose robust
    test is the matched-sample analogue.

    Example (Rossi recidivism data, financial aid vs none)::

        >>> from lifelines.datasets import load_rossi
        >>> rossi = load_rossi()
        >>> round(log_rank_test(rossi.week, rossi.arrest, rossi.fin).chi2, 2)
        3.84
    """
    time, event, _ = _survival_inputs(time, event)
    labels = _group_labels(group, len(time))
    levels, group_index = np.unique(labels, return_inverse=True)
    if len(levels) < 2:
        raise ValueError(f"log-rank test needs at least two groups, got {len(levels)}")
    distinct, time_index = np.unique(time, return_inverse=True)
    n_times, n_groups = len(distinct), len(levels)
    cell = time_index * n_groups + group_index
    rows = np.bincount(cell, minlength=n_times * n_groups).reshape(n_times, n_groups)
    deaths = np.bincount(cell, weights=event, minlength=n_times * n_groups).reshape(n_times, n_groups)
    at_risk = np.cumsum(rows[::-1], axis=0)[::-1].astype(float)
    total_at_risk = at_risk.sum(axis=1)
    total_deaths = deaths.sum(axis=1)
    share = at_risk / total_at_risk[:, None]
    expected = (total_deaths[:, None] * share).sum(axis=0)
    observed = deaths.sum(axis=0)
    # Hypergeometric covariance of the observed counts, summed over event times.
    with np.errstate(invalid="ignore", divide="ignore"):
        tie_factor = np.where(
            total_at_risk > 1, total_deaths * (total_at_risk - total_deaths) / (total_at_risk - 1), 0.0
        )
    covariance = np.diag((tie_factor[:, None] * share).sum(axis=0)) - np.einsum(
        "t,ti,tj->ij", tie_factor, share, share
    )
    difference = (observed - expected)[:-1]
    chi2 = float(difference @ np.linalg.solve(covariance[:-1, :-1], difference))
    df = n_groups - 1
    table = pd.DataFrame(
        {"group": levels, "n": rows.sum(axis=0), "observed": observed, "expected": expected}
    )
    return LogRankResult(chi2=chi2, df=df, p=float(stats.chi2.sf(chi2, df)), table=table)


# ---------------------------------------------------------------------------------------
# Efron partial likelihood (weighted), shared by the matched Cox fit and the PH test
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _EfronTerms:
    """Efron partial-likelihood pieces at a given coefficient vector.

    Event times are the distinct times with at least one event, ascending. "Tie rows"
    expand each event time into one row per tied event (Efron's k = 0 .. d - 1).
    """

    loglik: float
    schoenfeld: np.ndarray  # (event times, p): weighted Schoenfeld residual sums; score = column sums
    tie_time: np.ndarray  # (tie rows,) event-time index of each tie row
    tie_fraction: np.ndarray  # (tie rows,) k / d
    tie_weight: np.ndarray  # (tie rows,) mean event weight W / d (R's meanwt)
    tie_denominator: np.ndarray  # (tie rows,) sum over risk set of w exp(eta), Efron-reduced
    # Per event time j, the Efron-reduced risk set of tie row k is R_j - f_k E_j (f = k / d):
    risk_sum_x: np.ndarray  # (event times, p) R_j: sum over the risk set of w exp(eta) x
    event_risk_x: np.ndarray  # (event times, p) E_j: the same over the events at t_j
    # sums over the tie rows of event time j of 1/D, f/D, 1/D^2, f/D^2 and f^2/D^2 (D the denominator)
    inverse_sums: np.ndarray  # (5, event times)
    event_times: np.ndarray  # (event times,)
    n_tied: np.ndarray  # (event times,) number of events at each event time
    # Per subject (in the caller's order):
    risk: np.ndarray  # exp(eta)
    subject_event_time: np.ndarray  # number of event times <= subject's time
    subject_own_time: np.ndarray  # event-time index of the subject's own time, or -1


@dataclass(frozen=True)
class _RiskSets:
    """The parts of the Efron likelihood that do not depend on the coefficients, made once
    per fit. Sums over people at each time are sparse products (one entry per person), so
    every column of the design is summed in one pass and nothing is sorted again."""

    by_time: scipy.sparse.csr_array  # (distinct times, n): 1 where a person's time is that time
    by_time_people: np.ndarray  # (n,) the person behind each entry of by_time (people sorted by time)
    events_by_time: scipy.sparse.csr_array  # (event times, n): 1 where a person has the event then
    events_by_time_people: np.ndarray  # the person behind each entry of events_by_time
    has_event: np.ndarray  # (distinct times,) at least one event there
    is_event: np.ndarray  # (n,) event indicator
    event_times: np.ndarray  # (event times,)
    n_tied: np.ndarray  # (event times,) events at each event time
    event_weight: np.ndarray  # (event times,) summed case weights of the events
    tie_time: np.ndarray  # (tie rows,) event-time index of each tie row (ascending)
    tie_start: np.ndarray  # (event times,) first tie row of each event time
    tie_fraction: np.ndarray  # (tie rows,) k / d
    subject_event_time: np.ndarray  # (n,) number of event times <= the person's time
    subject_own_time: np.ndarray  # (n,) event-time index of the person's own time, or -1
    event_x: np.ndarray | None  # (event times, p): summed w x of the events, when x was given


def _risk_sets(time, event, weights, x=None) -> _RiskSets:
    n = len(time)
    distinct, own_time = np.unique(time, return_inverse=True)
    is_event = event == 1
    events_at = np.bincount(own_time[is_event], minlength=len(distinct))
    has_event = events_at > 0
    event_index = np.cumsum(has_event) - 1  # distinct time -> event-time index
    subject_own = np.where(has_event[own_time], event_index[own_time], -1)
    m = int(has_event.sum())
    n_tied = events_at[has_event]
    ev = subject_own[is_event]
    tie_time = np.repeat(np.arange(m), n_tied)
    tie_start = np.cumsum(n_tied) - n_tied
    event_times = distinct[has_event]
    by_time_people = np.argsort(own_time, kind="stable")
    events = np.flatnonzero(is_event)
    events_by_time_people = events[np.argsort(ev, kind="stable")]

    def one_per_person(row: np.ndarray, people: np.ndarray, rows: int) -> scipy.sparse.csr_array:
        """Row row[i] holds person people[i]; people come sorted by row, as CSR lays them out."""
        indptr = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=rows))])
        return scipy.sparse.csr_array((np.ones(len(people)), people, indptr), shape=(rows, n))

    events_by_time = one_per_person(subject_own[events_by_time_people], events_by_time_people, m)
    return _RiskSets(
        by_time=one_per_person(own_time[by_time_people], by_time_people, len(distinct)),
        by_time_people=by_time_people,
        events_by_time=events_by_time,
        events_by_time_people=events_by_time_people,
        has_event=has_event,
        is_event=is_event,
        event_times=event_times,
        n_tied=n_tied,
        event_weight=np.bincount(ev, weights=weights[is_event], minlength=m),
        tie_time=tie_time,
        tie_start=tie_start,
        tie_fraction=(np.arange(len(tie_time)) - tie_start[tie_time]) / n_tied[tie_time],
        subject_event_time=np.cumsum(has_event)[own_time],
        subject_own_time=subject_own,
        event_x=None if x is None else _summed_by_row(events_by_time, events_by_time_people, weights, x),
    )


def _summed_by_row(matrix: scipy.sparse.csr_array, people: np.ndarray, values: np.ndarray, columns: np.ndarray):
    """Per row of a one-per-person matrix, the sum of values_i * columns_i over its people."""
    return scipy.sparse.csr_array((values[people], matrix.indices, matrix.indptr), shape=matrix.shape) @ columns


def _efron_terms(time, event, weights, x, beta, sets: _RiskSets | None = None) -> _EfronTerms:
    """Evaluate Efron's weighted partial likelihood as R coxph does (no Python loop over
    people or event times: risk sets are reverse cumulative sums over the distinct times).
    ``sets`` (from :func:`_risk_sets` on the same time, event and weights) saves rebuilding
    the risk sets when the likelihood is evaluated at several coefficients."""
    if sets is None:
        sets = _risk_sets(time, event, weights)
    eta = x @ beta
    risk = np.exp(eta - eta.max())  # a common factor cancels from every Efron term
    weighted_risk = weights * risk

    # Risk-set sums at each distinct time (everyone with time >= t), kept at event times.
    def from_the_end(values):
        return np.cumsum(values[::-1], axis=0)[::-1][sets.has_event]

    risk_sum = from_the_end(np.add.reduceat(weighted_risk[sets.by_time_people], sets.by_time.indptr[:-1]))
    risk_sum_x = from_the_end(_summed_by_row(sets.by_time, sets.by_time_people, weighted_risk, x))
    event_risk = np.add.reduceat(weighted_risk[sets.events_by_time_people], sets.events_by_time.indptr[:-1])
    event_risk_x = _summed_by_row(sets.events_by_time, sets.events_by_time_people, weighted_risk, x)
    event_x = sets.event_x if sets.event_x is not None else _summed_by_row(
        sets.events_by_time, sets.events_by_time_people, weights, x)

    tie_time, tie_fraction = sets.tie_time, sets.tie_fraction
    mean_event_weight = sets.event_weight / sets.n_tied
    tie_weight = mean_event_weight[tie_time]
    tie_denominator = risk_sum[tie_time] - tie_fraction * event_risk[tie_time]
    inverse = 1 / tie_denominator
    inverse_sums = np.add.reduceat(
        np.vstack([inverse, tie_fraction * inverse, inverse**2, tie_fraction * inverse**2,
                   tie_fraction**2 * inverse**2]), sets.tie_start, axis=1)
    # Schoenfeld sums: events' x less the mean event weight times the summed Efron means
    # (R_j - f E_j) / D over the tie rows.
    schoenfeld = event_x - mean_event_weight[:, None] * (
        risk_sum_x * inverse_sums[0][:, None] - event_risk_x * inverse_sums[1][:, None])
    # The exp(eta - max) shift adds max(eta) to each log-denominator; put it back.
    is_event = sets.is_event
    loglik = float(
        np.sum(weights[is_event] * eta[is_event]) - np.sum(tie_weight * (np.log(tie_denominator) + eta.max()))
    )
    return _EfronTerms(
        loglik=loglik,
        schoenfeld=schoenfeld,
        tie_time=tie_time,
        tie_fraction=tie_fraction,
        tie_weight=tie_weight,
        tie_denominator=tie_denominator,
        risk_sum_x=risk_sum_x,
        event_risk_x=event_risk_x,
        inverse_sums=inverse_sums,
        event_times=sets.event_times,
        n_tied=sets.n_tied,
        risk=risk,
        subject_event_time=sets.subject_event_time,
        subject_own_time=sets.subject_own_time,
    )


def _efron_information(terms: _EfronTerms, event, weights, x, time_weight=None) -> np.ndarray:
    """Efron information matrix sum_k (W/d) [S2_k / D_k - mean_k mean_k'], each event time
    multiplied by time_weight (default 1).

    The risk-set second moments S2 are never formed per event time: sum_j a_j S2_j equals
    x' diag(w exp(eta) A) x with A the cumulative sum of a_j up to each subject's time.
    """
    m = len(terms.event_times)
    g = np.ones(m) if time_weight is None else time_weight
    per_row = terms.tie_weight * g[terms.tie_time] / terms.tie_denominator
    a = np.bincount(terms.tie_time, weights=per_row, minlength=m)
    b = np.bincount(terms.tie_time, weights=per_row * terms.tie_fraction, minlength=m)
    cumulative_a = np.concatenate([[0.0], np.cumsum(a)])[terms.subject_event_time]
    own = terms.subject_own_time
    tied_reduction = np.where((event == 1) & (own >= 0), b[np.maximum(own, 0)], 0.0)
    subject_factor = weights * terms.risk * (cumulative_a - tied_reduction)
    p = x.shape[1]
    second_moment = np.zeros((p, p))
    root = np.sqrt(subject_factor) if (subject_factor >= 0).all() else None
    for start in range(0, len(x), _BLOCK_ROWS):  # in blocks: no (n, p) temporary
        block = x[start:start + _BLOCK_ROWS]
        if root is None:
            second_moment += block.T @ (subject_factor[start:start + _BLOCK_ROWS, None] * block)
        else:  # a product of a matrix with its own transpose: half the work (BLAS syrk)
            scaled = root[start:start + _BLOCK_ROWS, None] * block
            second_moment += scaled.T @ scaled
    # sum over tie rows of (W/d) g mean mean' with mean = (R - f E) / D, per event time:
    # R R' sum 1/D^2 - (R E' + E R') sum f/D^2 + E E' sum f^2/D^2.
    scale = g * _mean_event_weight(terms)
    r, e = terms.risk_sum_x, terms.event_risk_x
    _, _, s0, s1, s2 = terms.inverse_sums
    cross = r.T @ ((scale * s1)[:, None] * e)
    mean_outer = r.T @ ((scale * s0)[:, None] * r) - cross - cross.T + e.T @ ((scale * s2)[:, None] * e)
    return second_moment - mean_outer


def _mean_event_weight(terms: _EfronTerms) -> np.ndarray:
    """W / d per event time (R's meanwt)."""
    first_tie_row = np.cumsum(terms.n_tied) - terms.n_tied
    return terms.tie_weight[first_tie_row]


def _tie_mean(terms: _EfronTerms) -> np.ndarray:
    """(tie rows, p): weighted mean covariate over each tie row's Efron-reduced risk set."""
    t = terms.tie_time
    return (terms.risk_sum_x[t] - terms.tie_fraction[:, None] * terms.event_risk_x[t]) / terms.tie_denominator[:, None]


def _efron_score_residuals(terms: _EfronTerms, event, x) -> np.ndarray:
    """Per-subject score residuals (unweighted), as R residuals(coxph, "score") with
    Efron ties: sum_i w_i r_i is the score vector."""
    m = len(terms.event_times)
    p = x.shape[1]
    hazard = terms.tie_weight / terms.tie_denominator
    tie_mean = _tie_mean(terms)
    kept = 1 - terms.tie_fraction  # an event's own share of the Efron risk set

    def by_time(values):
        return np.bincount(terms.tie_time, weights=values, minlength=m)

    def by_time_cols(values):
        return np.column_stack([by_time(values[:, j]) for j in range(p)])

    hazard_all = by_time(hazard)
    hazard_kept = by_time(hazard * kept)
    mean_hazard_all = by_time_cols(hazard[:, None] * tie_mean)
    mean_hazard_kept = by_time_cols((hazard * kept)[:, None] * tie_mean)
    mean_of_means = by_time_cols(tie_mean / terms.n_tied[terms.tie_time][:, None])

    upto = terms.subject_event_time
    cumulative_hazard = np.concatenate([[0.0], np.cumsum(hazard_all)])[upto]
    cumulative_mean_hazard = np.vstack([np.zeros((1, p)), np.cumsum(mean_hazard_all, axis=0)])[upto]
    residual = -terms.risk[:, None] * (x * cumulative_hazard[:, None] - cumulative_mean_hazard)

    is_event = event == 1
    own = terms.subject_own_time[is_event]
    r = terms.risk[is_event][:, None]
    residual[is_event] += (
        (x[is_event] - mean_of_means[own])
        + r * x[is_event] * (hazard_all[own] - hazard_kept[own])[:, None]
        - r * (mean_hazard_all[own] - mean_hazard_kept[own])
    )
    return residual


def _newton_raphson(time, event, weights, x) -> tuple[np.ndarray, _EfronTerms, np.ndarray, int]:
    """Maximise the Efron partial likelihood with step halving, as R coxph does."""
    beta = np.zeros(x.shape[1])
    sets = _risk_sets(time, event, weights, x)
    terms = _efron_terms(time, event, weights, x, beta, sets)
    information = _efron_information(terms, event, weights, x)
    for iteration in range(1, _NEWTON_MAX_ITER + 1):
        step = np.linalg.solve(information, terms.schoenfeld.sum(axis=0))
        candidate = _efron_terms(time, event, weights, x, beta + step, sets)
        while candidate.loglik < terms.loglik - 1e-12 * abs(terms.loglik) and np.max(np.abs(step)) > _NEWTON_STEP_TOL:
            step = step / 2
            candidate = _efron_terms(time, event, weights, x, beta + step, sets)
        beta, terms = beta + step, candidate
        information = _efron_information(terms, event, weights, x)
        if np.max(np.abs(step)) < _NEWTON_STEP_TOL:
            return beta, terms, information, iteration
    raise RuntimeError(
        f"Cox model did not converge in {_NEWTON_MAX_ITER} Newton–Raphson iterations; "
        "check for a treatment group with no events (infinite hazard ratio)"
    )


# ---------------------------------------------------------------------------------------
# Proportional-hazards test
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PHTestResult:
    """Test of proportional hazards, one row per covariate plus ``GLOBAL``.

    Attributes:
        table: ``term, chisq, df, p``.
        transform: time transform, ``"km"`` (1 − left-continuous Kaplan–Meier).
        alpha: threshold below which ``warning`` is set.
        warning: plain-words warning naming the covariates whose p < alpha (or saying the
            test is impossible because all events share one time), else None.
    """

    table: pd.DataFrame
    transform: str
    alpha: float
    warning: str | None

    def to_frame(self) -> pd.DataFrame:
        return self.table

    def summary(self) -> str:
        return self.warning or "No evidence against proportional hazards."


def proportional_hazards_test(
    time,
    event,
    covariates,
    coef,
    weights=None,
    names: Sequence[str] | None = None,
    alpha: float = 0.05,
) -> PHTestResult:
    """Proportional-hazards test of a fitted Cox model, exactly as R ``cox.zph(fit)``
    (survival >= 3.0, transform = "km", terms = FALSE).

    For each covariate x this is the score test, at the fitted coefficients, of adding
    x * g(t) to the model, where g(t) = 1 − KM(t−) is the unweighted Kaplan–Meier
    transform of time centred at its mean over events (Efron ties, case weights as in
    the fit). It is the test behind R's plot of scaled Schoenfeld residuals against
    g(t); a small p means the log hazard ratio drifts over follow-up. (lifelines'
    ``proportional_hazard_test`` uses the older approximation of survival < 3.0 and
    gives slightly different numbers.)

    Args:
        time, event, weights: as for the fitted model.
        covariates: (n, p) design matrix used in the fit.
        coef: fitted coefficients (length p).
        names: covariate names for the table.
        alpha: significance level for the plain-words warning.

    Example (Rossi, treatment-only)::

        >>> from lifelines.datasets import load_rossi
        >>> rossi = load_rossi()
        >>> fit = cox_matched(rossi.week, rossi.arrest, rossi.fin)
        >>> round(float(fit.ph_test.table.p[0]), 2)
        0.86
    """
    time, event, weights = _survival_inputs(time, event, weights)
    x = np.asarray(covariates, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[0] != len(time):
        raise ValueError(f"covariates have {x.shape[0]} rows but time has {len(time)}")
    beta = np.asarray(coef, dtype=float).reshape(-1)
    p = x.shape[1]
    if len(beta) != p:
        raise ValueError(f"coef has {len(beta)} values but covariates have {p} columns")
    names = list(names) if names is not None else [f"x{j + 1}" for j in range(p)]
    if len(names) != p:
        raise ValueError(f"names has {len(names)} entries but covariates have {p} columns")

    x = x - x.mean(axis=0)
    time, event, weights, x = _in_time_order(time, event, weights, x)
    terms = _efron_terms(time, event, weights, x, beta)
    return _ph_test(terms, _efron_information(terms, event, weights, x), time, event, weights, x, names, alpha)


def _ph_test(terms: _EfronTerms, information, time, event, weights, x, names, alpha) -> PHTestResult:
    """cox.zph from the Efron terms and information of the fit at its coefficients, with x
    centred at its means (a fit on centred columns passes its own, so nothing is redone)."""
    p = x.shape[1]
    # g(t) = 1 - KM(t-) from the unweighted pooled Kaplan–Meier, centred over events.
    km = _km_table(time, event, np.ones_like(time))
    survival_before = np.concatenate([[1.0], km.survival])[np.searchsorted(km.time, time, side="left")]
    g_subject = 1 - survival_before
    g_subject = g_subject - g_subject[event == 1].mean()
    g = np.zeros(len(terms.event_times))
    g[terms.subject_own_time[event == 1]] = g_subject[event == 1]
    if np.all(g == 0):
        untestable = pd.DataFrame(
            {"term": [*names, "GLOBAL"], "chisq": np.nan, "df": np.r_[np.ones(p, dtype=int), p], "p": np.nan}
        )
        note = "Proportional hazards cannot be tested: every event happened at the same time."
        return PHTestResult(table=untestable, transform="km", alpha=alpha, warning=note)

    # Score and information of the model with covariates (x, x * g(t)) at (beta, 0).
    score_gamma = g @ terms.schoenfeld
    info_bb = information
    info_bg = _efron_information(terms, event, weights, x, time_weight=g)
    info_gg = _efron_information(terms, event, weights, x, time_weight=g * g)
    information = np.block([[info_bb, info_bg], [info_bg.T, info_gg]])

    chisq = np.empty(p + 1)
    for j in range(p):  # one score test per covariate; R sets the beta part of the score to 0
        keep = np.r_[np.arange(p), p + j]
        u = np.r_[np.zeros(p), score_gamma[j]]
        chisq[j] = u @ np.linalg.solve(information[np.ix_(keep, keep)], u)
    u = np.r_[np.zeros(p), score_gamma]
    chisq[p] = u @ np.linalg.solve(information, u)
    df = np.r_[np.ones(p, dtype=int), p]
    p_values = stats.chi2.sf(chisq, df)
    table = pd.DataFrame({"term": [*names, "GLOBAL"], "chisq": chisq, "df": df, "p": p_values})

    flagged = [f"{name} (p = {pv:.3g})" for name, pv in zip(names, p_values[:p]) if pv < alpha]
    warning = None
    if flagged:
        warning = (
            "The proportional-hazards assumption looks doubtful for "
            + ", ".join(flagged)
            + ": the hazard ratio appears to change over follow-up time, so a single hazard "
            "ratio averages an effect that varies. Read it alongside the Kaplan–Meier curves "
            "and the restricted mean survival time difference."
        )
    return PHTestResult(table=table, transform="km", alpha=alpha, warning=warning)


# ---------------------------------------------------------------------------------------
# Cox models
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchedCoxResult:
    """Treatment-only Cox model on a matched sample.

    Attributes:
        coef: log hazard ratio of treatment.
        se: model-based (naive) standard error.
        robust_se: cluster-robust standard error (clusters = matched sets).
        hazard_ratio, hr_lower, hr_upper: exp(coef) and its CI from the robust SE.
        z, p: Wald test with the robust SE.
        conf_level: confidence level of the interval.
        n: rows; n_events: rows with an event; n_clusters: matched sets.
        log_likelihood: Efron partial log-likelihood at the estimate.
        iterations: Newton–Raphson iterations used.
        ph_test: proportional-hazards test (R cox.zph).
    """

    coef: float
    se: float
    robust_se: float
    hazard_ratio: float
    hr_lower: float
    hr_upper: float
    z: float
    p: float
    conf_level: float
    n: int
    n_events: int
    n_clusters: int
    log_likelihood: float
    iterations: int
    ph_test: PHTestResult

    def to_frame(self) -> pd.DataFrame:
        """One row: ``covariate, coef, se, robust_se, hr, hr_lower, hr_upper, z, p``."""
        return pd.DataFrame(
            [
                {
                    "covariate": "treated",
                    "coef": self.coef,
                    "se": self.se,
                    "robust_se": self.robust_se,
                    "hr": self.hazard_ratio,
                    "hr_lower": self.hr_lower,
                    "hr_upper": self.hr_upper,
                    "z": self.z,
                    "p": self.p,
                }
            ]
        )

    def summary(self) -> str:
        return (
            f"Hazard ratio {self.hazard_ratio:.2f} ({self.conf_level:.0%} CI {self.hr_lower:.2f} to "
            f"{self.hr_upper:.2f}, p = {self.p:.3g}; robust SE clustered on {self.n_clusters} "
            f"matched sets; {self.n_events} events among {self.n} people)"
        )


def cox_matched(
    time,
    event,
    treatment,
    weights=None,
    cluster=None,
    conf_level: float = 0.95,
) -> MatchedCoxResult:
    """Treatment-only Cox model with case weights and a cluster-robust variance.

    Reproduces R ``coxph(Surv(time, event) ~ treat, weights = w, cluster = subclass,
    ties = "efron")``: the coefficient by weighted Efron Newton–Raphson, the naive SE from
    the information, and the robust variance V (sum over clusters of d_c d_c') V with d_c
    the weighted score residuals summed within the matched set and V the naive variance
    (R's summed ``dfbeta`` residuals). Without ``cluster`` every row is its own cluster
    (R's ``robust = TRUE``). Runs in O(n log n) with no loop over people or event times.

    Args:
        time: follow-up time.
        event: 1 = event observed, 0 = censored.
        treatment: 1 = treated, 0 = comparison.
        weights: positive matching weights (default 1).
        cluster: matched-set identifier per row (e.g. MatchIt ``subclass``).
        conf_level: confidence level for the hazard-ratio interval.

    Example::

        >>> from lifelines.datasets import load_rossi
        >>> rossi = load_rossi()
        >>> fit = cox_matched(rossi.week, rossi.arrest, rossi.fin)
        >>> round(fit.coef, 4), round(fit.se, 4)
        (-0.3691, 0.1897)
    """
    time, event, weights = _survival_inputs(time, event, weights)
    treat = _as_float_vector(treatment, "treatment")
    if len(treat) != len(time):
        raise ValueError(f"treatment has {len(treat)} values but time has {len(time)}")
    if not np.isin(treat, (0.0, 1.0)).all():
        raise ValueError("treatment must be 0 (comparison) or 1 (treated)")
    if len(np.unique(treat)) < 2:
        raise ValueError("treatment has only one value; both treated and comparison rows are needed")
    for value, name in ((1.0, "treated"), (0.0, "comparison")):
        if event[treat == value].sum() == 0:
            raise ValueError(
                f"no events in the {name} group: the hazard ratio is 0 or infinite and cannot be estimated"
            )
    cluster_codes = _cluster_codes(cluster, len(time))
    z_crit = _z(conf_level)

    time, event, weights, treat, cluster_codes = _in_time_order(time, event, weights, treat, cluster_codes)
    x = treat[:, None]
    beta, terms, information, iterations = _newton_raphson(time, event, weights, x)
    naive_var = np.linalg.inv(information)
    residuals = _efron_score_residuals(terms, event, x)
    n_clusters = int(cluster_codes.max()) + 1
    cluster_score = np.bincount(cluster_codes, weights=weights * residuals[:, 0], minlength=n_clusters)
    robust_var = naive_var @ np.atleast_2d(cluster_score @ cluster_score) @ naive_var

    coef = float(beta[0])
    se = float(np.sqrt(naive_var[0, 0]))
    robust_se = float(np.sqrt(robust_var[0, 0]))
    z = coef / robust_se
    ph = proportional_hazards_test(time, event, x, beta, weights=weights, names=["treated"])
    return MatchedCoxResult(
        coef=coef,
        se=se,
        robust_se=robust_se,
        hazard_ratio=float(np.exp(coef)),
        hr_lower=float(np.exp(coef - z_crit * robust_se)),
        hr_upper=float(np.exp(coef + z_crit * robust_se)),
        z=float(z),
        p=float(_two_sided_p(z)),
        conf_level=conf_level,
        n=len(time),
        n_events=int(event.sum()),
        n_clusters=n_clusters,
        log_likelihood=terms.loglik,
        iterations=iterations,
        ph_test=ph,
    )


@dataclass(frozen=True)
class CoxResult:
    """Covariate-adjusted Cox model (Efron ties).

    Attributes:
        table: one row per design column: ``covariate, coef, se, hr, hr_lower, hr_upper,
            z, p`` (Wald, model-based SE).
        conf_level: confidence level of the hazard-ratio intervals.
        n, n_events: rows and events used.
        log_likelihood: partial log-likelihood at the estimate.
        ph_test: proportional-hazards test (R cox.zph, one row per design column).
    """

    table: pd.DataFrame
    conf_level: float
    n: int
    n_events: int
    log_likelihood: float
    ph_test: PHTestResult

    def to_frame(self) -> pd.DataFrame:
        return self.table

    def summary(self) -> str:
        lines = [f"Cox model: {self.n_events} events among {self.n} people; hazard ratios:"]
        for row in self.table.itertuples():
            lines.append(f"  {row.covariate}: {row.hr:.3f} ({row.hr_lower:.3f} to {row.hr_upper:.3f}), p = {row.p:.3g}")
        return "\n".join(lines)


def cox_adjusted(
    data: pd.DataFrame,
    duration_col: str,
    event_col: str,
    covariates: Sequence[str],
    conf_level: float = 0.95,
) -> CoxResult:
    """Covariate-adjusted Cox proportional-hazards model on a full cohort.

    Fitted by the weighted Efron Newton–Raphson of :func:`cox_matched` (all weights 1), which
    reproduces R ``coxph(Surv(duration, event) ~ covariates)``; the SE is model-based. Text
    or categorical covariates become indicator columns named ``covariate[level]`` against
    their first level.

    Example (the published Rossi recidivism model)::

        >>> from lifelines.datasets import load_rossi
        >>> fit = cox_adjusted(load_rossi(), "week", "arrest",
        ...                    ["fin", "age", "race", "wexp", "mar", "paro", "prio"])
        >>> fit.table.set_index("covariate").loc["fin", ["coef", "se"]].round(4).tolist()
        [-0.3794, 0.1914]
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    covariates = list(covariates)
    if not covariates:
        raise ValueError("covariates is empty; name at least one column")
    missing = [c for c in [duration_col, event_col, *covariates] if c not in data.columns]
    if missing:
        raise KeyError(f"columns not in data: {missing}")
    time, event, _ = _survival_inputs(data[duration_col].to_numpy(), data[event_col].to_numpy())
    if event.sum() == 0:
        raise ValueError("no events: a Cox model needs at least one observed event")
    design = numeric_design(data, covariates)
    x = design.matrix
    constant = [name for name, low, high in zip(design.names, x.min(axis=0), x.max(axis=0)) if low == high]
    if constant:
        raise ValueError(f"covariate {constant[0]!r} is constant, so its effect cannot be estimated")
    # Centred columns (in place: the design is ours) fit the same coefficients and partial
    # likelihood, with better-conditioned sums.
    x -= x.mean(axis=0)
    time, event, x = _in_time_order(time, event, x)
    coef, terms, information, _ = _newton_raphson(time, event, np.ones_like(time), x)
    se = np.sqrt(np.diag(np.linalg.inv(information)))
    z_crit = _z(conf_level)
    table = pd.DataFrame(
        {
            "covariate": list(design.names),
            "coef": coef,
            "se": se,
            "hr": np.exp(coef),
            "hr_lower": np.exp(coef - z_crit * se),
            "hr_upper": np.exp(coef + z_crit * se),
            "z": coef / se,
            "p": _two_sided_p(coef / se),
        }
    )
    ph = _ph_test(terms, information, time, event, np.ones_like(time), x, list(design.names), 0.05)
    return CoxResult(
        table=table,
        conf_level=conf_level,
        n=len(time),
        n_events=int(event.sum()),
        log_likelihood=terms.loglik,
        ph_test=ph,
    )


# ---------------------------------------------------------------------------------------
# Restricted mean survival time
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RMSTResult:
    """Restricted mean survival time to ``tau`` per group and the difference.

    Attributes:
        tau: restriction time.
        groups: ``group, rmst, se, lower, upper`` (one row per group).
        difference: ``group − reference``: ``difference, se, lower, upper, z, p``.
        group, reference: the two group labels compared.
        conf_level: confidence level.
        note: plain-words caution when tau is beyond a group's longest follow-up, else None.
    """

    tau: float
    groups: pd.DataFrame
    group: object
    reference: object
    difference: float
    se: float
    lower: float
    upper: float
    z: float
    p: float
    conf_level: float
    note: str | None

    def to_frame(self) -> pd.DataFrame:
        return self.groups

    def summary(self) -> str:
        return (
            f"Mean time free of the event over the first {self.tau:g} days: difference "
            f"{self.group} minus {self.reference} = {self.difference:.1f} days "
            f"({self.conf_level:.0%} CI {self.lower:.1f} to {self.upper:.1f}, p = {self.p:.3g})"
        )


def _rmst_one_group(km: _KMTable, tau: float) -> tuple[float, float]:
    """Area under the KM curve to tau and its variance, as R print(survfit, rmean = tau):
    Var = sum over times t_j <= tau of A_j^2 d_j / (n_j (n_j - d_j)), A_j the area from t_j
    to tau (a time where everyone at risk has the event contributes 0, as in R)."""
    keep = km.time <= tau
    times = np.append(km.time[keep], tau)
    survival = np.append(km.survival[keep], km.survival[keep][-1] if keep.any() else 1.0)
    hazard_terms = np.append(np.where(np.isinf(km.greenwood_terms[keep]), 0.0, km.greenwood_terms[keep]), 0.0)
    widths = np.diff(np.concatenate([[0.0], times]))
    rectangles = widths * np.concatenate([[1.0], survival[:-1]])
    area_after = np.cumsum(rectangles[::-1])[::-1][1:]  # area from each time to tau
    variance = float(np.sum(area_after**2 * hazard_terms[:-1]))
    return float(rectangles.sum()), variance


def restricted_mean_survival_time(
    time,
    event,
    group,
    tau: float,
    weights=None,
    reference=None,
    conf_level: float = 0.95,
) -> RMSTResult:
    """Restricted mean survival time (RMST) to ``tau`` per group and their difference.

    The RMST is the area under the Kaplan–Meier curve from 0 to tau: the mean number of
    days free of the event during the first tau days. Its variance is the Greenwood-type
    variance of that area, identical to R's ``se(rmean)`` from
    ``print(survfit(Surv(time, event) ~ group, weights = w), rmean = tau)``, also with case
    weights (weighted counts in the Greenwood terms). The groups are treated as
    independent samples for the difference.

    Args:
        time, event, weights: as for :func:`kaplan_meier`.
        group: exactly two group labels.
        tau: restriction time (e.g. 365 days).
        reference: the label subtracted (default: the first in sorted order, e.g. 0).
        conf_level: confidence level.

    Example::

        >>> res = restricted_mean_survival_time([2, 4, 6, 8], [1, 1, 1, 1], [0, 0, 1, 1], tau=10)
        >>> res.groups.rmst.tolist(), res.difference
        ([3.0, 7.0], 4.0)
    """
    time, event, weights = _survival_inputs(time, event, weights)
    labels = _group_labels(group, len(time))
    levels = np.unique(labels).tolist()
    if len(levels) != 2:
        raise ValueError(f"RMST difference needs exactly two groups, got {len(levels)}: {list(levels)}")
    if not (np.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a positive number of days, got {tau}")
    if reference is None:
        reference = levels[0]
    elif reference not in set(levels):
        raise ValueError(f"reference {reference!r} is not one of the groups {list(levels)}")
    other = levels[1] if reference == levels[0] else levels[0]
    z_crit = _z(conf_level)

    rows, short = [], []
    for label in (reference, other):
        in_group = labels == label
        km = _km_table(time[in_group], event[in_group], weights[in_group])
        rmst, variance = _rmst_one_group(km, tau)
        se = np.sqrt(variance)
        rows.append({"group": label, "rmst": rmst, "se": se, "lower": rmst - z_crit * se, "upper": rmst + z_crit * se})
        if km.time[-1] < tau:
            short.append(str(label))
    groups = pd.DataFrame(rows)
    difference = float(groups.rmst[1] - groups.rmst[0])
    se = float(np.sqrt(groups.se[0] ** 2 + groups.se[1] ** 2))
    z = difference / se if se > 0 else np.nan
    note = None
    if short:
        note = (
            f"Follow-up in group {', '.join(short)} ends before {tau:g} days; the curve is carried "
            "flat to tau, so the restricted mean there rests on an assumption."
        )
    return RMSTResult(
        tau=float(tau),
        groups=groups,
        group=other,
        reference=reference,
        difference=difference,
        se=se,
        lower=difference - z_crit * se,
        upper=difference + z_crit * se,
        z=float(z),
        p=float(_two_sided_p(z)),
        conf_level=conf_level,
        note=note,
    )
