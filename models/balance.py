"""Covariate balance before and after matching, as R MatchIt ``summary()`` reports it.

For each covariate term — numeric and binary covariates as they are, categorical
covariates as one indicator per level (all levels, as MatchIt) — and optionally the
matching distance:

* means in the treated and comparison groups (weighted by the matching weights after
  matching);
* standardised mean difference: the difference in means over the SD of the covariate in
  the treated group of the full sample (the ATT denominator; the same before and after
  matching). For a binary covariate the SD is sqrt(p(1 - p)) of the treated proportion.
  As in MatchIt, a difference below sqrt(machine epsilon) is reported unstandardised
  (it is zero for practical purposes), and a treated-group SD of (near) zero is replaced
  by the pooled SD;
* variance ratio, treated over comparison (weighted variances with MatchIt's
  ``1 - sum(w^2)`` correction), for non-binary terms only;
* eCDF mean and max: mean and largest absolute gap between the groups' (weighted)
  empirical CDFs over the distinct values of the term; for a binary term both equal the
  absolute difference in proportions.

No significance tests: balance is a property of the sample, not a hypothesis.
Thresholds (design defaults) flag |SMD| < 0.1 and 0.5 < variance ratio < 2.

Example::

    >>> import numpy as np, pandas as pd
    >>> data = pd.DataFrame({"age": [20, 30, 40, 25, 35, 45], "female": [1, 0, 1, 0, 0, 1]})
    >>> treated = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    >>> bal = assess_balance(data, treated, ["age", "female"])
    >>> bal.table[["term", "stage", "smd"]].round(3).to_dict("records")
    [{'term': 'age', 'stage': 'all', 'smd': -0.5}, {'term': 'female', 'stage': 'all', 'smd': 0.707}]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

SMD_THRESHOLD = 0.1
VARIANCE_RATIO_BOUNDS = (0.5, 2.0)
_TINY = np.sqrt(np.finfo(float).eps)


@dataclass(frozen=True)
class BalanceResult:
    """Balance statistics.

    Attributes:
        table: long format, one row per term and stage (``all`` = before matching,
            ``matched`` = after): ``term, variable, binary, stage, mean_treated,
            mean_control, smd, variance_ratio, ecdf_mean, ecdf_max, smd_ok,
            variance_ratio_ok`` (``variance_ratio`` and its flag are missing for binary
            terms).
        sample_sizes: rows ``All, Matched (ESS), Matched, Unmatched, Discarded`` ×
            columns ``control, treated`` (MatchIt ``summary()$nn``); ``None`` before matching.
        smd_threshold, variance_ratio_bounds: thresholds used for the flags.
    """

    table: pd.DataFrame
    sample_sizes: pd.DataFrame | None
    smd_threshold: float
    variance_ratio_bounds: tuple[float, float]

    def to_frame(self) -> pd.DataFrame:
        return self.table

    def wide(self) -> pd.DataFrame:
        """One row per term; statistics suffixed ``_all`` and ``_matched``."""
        stats = ["mean_treated", "mean_control", "smd", "variance_ratio", "ecdf_mean", "ecdf_max", "smd_ok", "variance_ratio_ok"]
        wide = self.table.pivot(index="term", columns="stage", values=stats)
        wide.columns = [f"{stat}_{stage}" for stat, stage in wide.columns]
        order = self.table.drop_duplicates("term").set_index("term")[["variable", "binary"]]
        return order.join(wide).reset_index()

    @property
    def balanced(self) -> bool:
        """All terms within the thresholds after matching (before, if there is no matching)."""
        stage = "matched" if (self.table.stage == "matched").any() else "all"
        rows = self.table[self.table.stage == stage]
        return bool(rows.smd_ok.all() and rows.variance_ratio_ok.dropna().all())

    def summary(self) -> str:
        stage = "matched" if (self.table.stage == "matched").any() else "all"
        rows = self.table[self.table.stage == stage]
        off_smd = rows.loc[~rows.smd_ok, "term"].tolist()
        off_vr = rows.loc[rows.variance_ratio_ok == False, "term"].tolist()  # noqa: E712 (missing is not False)
        label = "after matching" if stage == "matched" else "before matching"
        lines = [
            f"Balance {label}: largest |SMD| {rows.smd.abs().max():.3f} (threshold {self.smd_threshold}); "
            f"{len(off_smd)} of {len(rows)} terms over the SMD threshold, {len(off_vr)} with a variance ratio "
            f"outside {self.variance_ratio_bounds[0]}–{self.variance_ratio_bounds[1]}",
        ]
        if off_smd:
            lines.append(f"  SMD over threshold: {', '.join(off_smd)}")
        if off_vr:
            lines.append(f"  variance ratio out of range: {', '.join(off_vr)}")
        return "\n".join(lines)


def _balance_terms(
    data: pd.DataFrame, covariates: Sequence[str], categorical: Sequence[str] | None
) -> tuple[list[str], list[str], list[Callable[[], np.ndarray]]]:
    """(term names, source variables, values) with every level of a categorical covariate.

    Each term's values are made when asked for (a function per term): one float column of the
    cohort at a time, where every term at once would double a large cohort's covariates."""
    categorical = set(categorical or ())
    absent = [name for name in [*covariates, *categorical] if name not in data.columns]
    if absent:
        raise ValueError(f"covariates not in the data: {', '.join(map(repr, absent))}")
    names, sources, values = [], [], []
    for name in covariates:
        column = data[name]
        missing = int(column.isna().sum())
        if missing:
            raise ValueError(f"covariate {name!r} has {missing} missing values")
        numeric = pd.api.types.is_bool_dtype(column) or (
            pd.api.types.is_numeric_dtype(column) and not isinstance(column.dtype, pd.CategoricalDtype)
        )
        if name not in categorical and numeric:
            names.append(name)
            sources.append(name)
            values.append(lambda column=column: column.to_numpy(dtype=float))
            continue
        for level in column.astype("category").cat.categories:
            names.append(f"{name}[{level}]")
            sources.append(name)
            values.append(lambda column=column, level=level: (column == level).to_numpy(dtype=float))
    return names, sources, values


class _GroupWeights:
    """One group's weights, with what every term's weighted mean and MatchIt ``wvar`` variance
    reuse computed once: p(1 - p) for binary terms, else sum w (x - m)^2 / (1 - sum w^2) with
    w normalised to sum to one (the n - 1 variance when all weights are equal)."""

    def __init__(self, w: np.ndarray):
        self.weights = w
        self.total = w.sum()
        self.normalised = w / self.total
        self.square_sum = np.dot(self.normalised, self.normalised)

    def mean(self, x: np.ndarray) -> float:
        return float(np.dot(x, self.weights) / self.total)

    def variance(self, x: np.ndarray, binary: bool) -> float:
        mean = float(np.dot(self.normalised, x))
        if binary:
            return mean * (1 - mean)
        return float(np.dot(self.normalised, (x - mean) ** 2) / (1 - self.square_sum))


def _pooled_sd(x: np.ndarray, treated: np.ndarray, binary: bool) -> float:
    """MatchIt ``pooled_sd`` (proportional contributions, unit weights)."""
    n = len(x)
    if binary:
        total = 0.0
        for group in (treated, ~treated):
            s = x[group].sum()
            total += s * (1 - s / group.sum()) / n
        return float(np.sqrt(total))
    centred = x.copy()
    for group in (treated, ~treated):
        centred[group] -= x[group].mean()
    return float(np.sqrt((centred**2).sum() / (n - 2)))


def _ecdf_signed_weights(treated: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Each row's step in the difference of the groups' weighted eCDFs (treated minus comparison)."""
    return np.where(treated, w / w[treated].sum(), -w / w[~treated].sum())


class _Ecdf:
    """The distinct values of one term, to read the gap between the groups' weighted eCDFs at
    each. With few distinct values (most covariates: ages, counts, scores in steps) each row gets
    the rank of its value by hashing, and a stage sums its steps per value; otherwise (the
    propensity distance) the rows are sorted once and the running sum is read at the last row of
    each value. Either way the order within ties does not matter."""

    # Rows in the sample that decides: more distinct values than half of it means sorting.
    _SAMPLE_STRIDE = 64

    def __init__(self, x: np.ndarray):
        sample = x[::self._SAMPLE_STRIDE]
        self.ranks = self.order = self.last_of_value = None
        if len(np.unique(sample)) <= len(sample) // 2:
            self.ranks, values = pd.factorize(x, sort=True)
            self.n_values = len(values)
        else:
            self.order = np.argsort(x)
            x_sorted = x[self.order]
            self.last_of_value = np.append(x_sorted[1:] != x_sorted[:-1], True)

    def gaps(self, signed: np.ndarray) -> tuple[float, float]:
        """Mean and max absolute gap over the distinct values; ``signed`` is :func:`_ecdf_signed_weights`."""
        if self.ranks is not None:
            gaps = np.abs(np.cumsum(np.bincount(self.ranks, weights=signed, minlength=self.n_values)))
        else:
            gaps = np.abs(np.cumsum(signed[self.order]))[self.last_of_value]
        return float(gaps.mean()), float(gaps.max())


class _Stage:
    """One stage's weights, split by group and summarised once for every term. After matching,
    the variances use only the rows with weight above zero (a matched sample is a small part
    of a large comparison pool)."""

    def __init__(self, name: str, weights: np.ndarray, treated: np.ndarray, all_rows: bool):
        self.name = name
        self.treated, self.control = _GroupWeights(weights[treated]), _GroupWeights(weights[~treated])
        self.ecdf_steps = _ecdf_signed_weights(treated, weights)
        self.n_treated, self.n_control = int((self.treated.weights != 0).sum()), int((self.control.weights != 0).sum())
        self.matched = None
        if not all_rows:
            rows_treated, rows_control = np.flatnonzero(self.treated.weights), np.flatnonzero(self.control.weights)
            self.matched = (rows_treated, _GroupWeights(self.treated.weights[rows_treated]),
                            rows_control, _GroupWeights(self.control.weights[rows_control]))

    def variance(self, x1: np.ndarray, x0: np.ndarray) -> tuple[float, float]:
        """Weighted variances of the treated and comparison values over the rows with weight."""
        if self.matched is None:
            return self.treated.variance(x1, False), self.control.variance(x0, False)
        rows_treated, treated, rows_control, control = self.matched
        return treated.variance(x1[rows_treated], False), control.variance(x0[rows_control], False)


def _term_statistics(x: np.ndarray, treated: np.ndarray, stages: list[_Stage]) -> list[dict]:
    """MatchIt ``bal1var`` for one term at every stage."""
    binary = bool(np.all((x == 0) | (x == 1)))
    x1, x0 = x[treated], x[~treated]
    sd_treated = np.sqrt(stages[0].treated.variance(x1, binary))  # the first stage has unit weights
    if not np.isfinite(sd_treated) or sd_treated < _TINY:
        sd_treated = _pooled_sd(x, treated, binary)
    ecdf = None if binary else _Ecdf(x)
    rows = []
    for stage in stages:
        mean_treated = stage.treated.mean(x1)
        mean_control = stage.control.mean(x0)
        difference = mean_treated - mean_control
        too_small = stage.n_treated < 2 and stage.n_control < 2
        smd = difference / sd_treated if abs(difference) > _TINY and not too_small else difference
        variance_ratio = np.nan
        if binary:
            ecdf_mean = ecdf_max = abs(difference)
        elif too_small:
            ecdf_mean = ecdf_max = np.nan
        else:
            # a group with a single weighted unit has no variance: NaN, as in R
            with np.errstate(invalid="ignore", divide="ignore"):
                variance_treated, variance_control = stage.variance(x1, x0)
                variance_ratio = variance_treated / variance_control
            ecdf_mean, ecdf_max = ecdf.gaps(stage.ecdf_steps)
        rows.append(
            {
                "stage": stage.name,
                "binary": binary,
                "mean_treated": mean_treated,
                "mean_control": mean_control,
                "smd": smd,
                "variance_ratio": variance_ratio,
                "ecdf_mean": ecdf_mean,
                "ecdf_max": ecdf_max,
            }
        )
    return rows


def sample_size_table(treated, weights) -> pd.DataFrame:
    """MatchIt's sample sizes: ``All, Matched (ESS), Matched, Unmatched, Discarded`` ×
    ``control, treated`` (ESS = (sum w)^2 / sum w^2; nothing is discarded here)."""
    treated = np.asarray(treated, dtype=bool)
    weights = np.asarray(weights, dtype=float)
    columns = {}
    for label, group in (("control", ~treated), ("treated", treated)):
        w = weights[group]
        matched = int((w > 0).sum())
        ess = float(w.sum() ** 2 / (w**2).sum()) if matched else 0.0
        columns[label] = [group.sum(), ess, matched, group.sum() - matched, 0]
    return pd.DataFrame(
        columns, index=pd.Index(["All", "Matched (ESS)", "Matched", "Unmatched", "Discarded"], name="sample")
    ).astype(float)


def assess_balance(
    data: pd.DataFrame,
    treated,
    covariates: Sequence[str],
    *,
    weights=None,
    categorical: Sequence[str] | None = None,
    distance=None,
    smd_threshold: float = SMD_THRESHOLD,
    variance_ratio_bounds: tuple[float, float] = VARIANCE_RATIO_BOUNDS,
) -> BalanceResult:
    """Balance of ``covariates`` between treated and comparison rows of ``data``.

    Args:
        data: one row per person (the full cohort, matched or not).
        treated: boolean or 0/1 per row.
        covariates: covariate names; text and pandas-categorical columns (and any named in
            ``categorical``) are expanded into one indicator per level.
        weights: matching weights per row (e.g. ``MatchResult.weights``); if given, a
            ``matched`` stage is computed on the rows with positive weight.
        categorical: covariates to treat as categorical.
        distance: matching distance per row, reported as the first term ``distance``.
        smd_threshold: |SMD| below this counts as balanced.
        variance_ratio_bounds: variance ratios strictly inside count as balanced.
    """
    treated = np.asarray(treated)
    if treated.dtype != bool:
        if not np.isin(treated, (0, 1)).all():
            raise ValueError("treated must be boolean or 0/1")
        treated = treated == 1
    if len(treated) != len(data):
        raise ValueError(f"treated has {len(treated)} values but data has {len(data)} rows")
    if treated.sum() < 1 or (~treated).sum() < 1:
        raise ValueError("both treated and comparison rows are needed to assess balance")
    names, sources, values = _balance_terms(data, covariates, categorical)
    if distance is not None:
        distance = np.asarray(distance, dtype=float)
        if distance.shape != treated.shape:
            raise ValueError(f"distance has {len(distance)} values but data has {len(data)} rows")
        names, sources, values = ["distance", *names], ["distance", *sources], [lambda: distance, *values]
    stages = [_Stage("all", np.ones(len(treated)), treated, all_rows=True)]
    if weights is not None:
        weights = np.asarray(weights, dtype=float)
        if weights.shape != treated.shape:
            raise ValueError(f"weights has {len(weights)} values but data has {len(data)} rows")
        if (weights < 0).any() or not np.isfinite(weights).all():
            raise ValueError("weights must be finite and non-negative")
        if not (weights[treated] > 0).any() or not (weights[~treated] > 0).any():
            raise ValueError("weights leave no treated or no comparison rows in the matched sample")
        stages.append(_Stage("matched", weights, treated, all_rows=False))

    rows = [
        {"term": name, "variable": source, **statistics}
        for name, source, term in zip(names, sources, values)
        for statistics in _term_statistics(term(), treated, stages)
    ]
    table = pd.DataFrame(rows)
    low, high = variance_ratio_bounds
    table["smd_ok"] = table.smd.abs() < smd_threshold
    table["variance_ratio_ok"] = ((table.variance_ratio > low) & (table.variance_ratio < high)).where(
        table.variance_ratio.notna()
    )
    table = table[
        ["term", "variable", "binary", "stage", "mean_treated", "mean_control", "smd", "variance_ratio", "ecdf_mean", "ecdf_max", "smd_ok", "variance_ratio_ok"]
    ]
    return BalanceResult(
        table=table,
        sample_sizes=sample_size_table(treated, weights) if weights is not None else None,
        smd_threshold=smd_threshold,
        variance_ratio_bounds=variance_ratio_bounds,
    )
