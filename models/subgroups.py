"""For whom it works: matched effects within pre-declared subgroups.

Each subgrouping variable (sex, age band, index type, risk band...) is matched on its own:
the programme's propensity score is kept, and matching is made *exact* on the variable
(added to any exact-matching variables of the headline), so every participant is compared
only with comparison people of the same subgroup and each level's estimate is a proper
matched comparison. Within a level the matched difference and its cluster-robust interval
are :func:`models.effects.matched_difference` on that level's matched sets; the headline's
gate applies (at least ``min_treated`` matched participants with an outcome per level).

Heterogeneity across the levels of a variable is Cochran's Q on the level estimates (the
levels hold different people, so their estimates are independent):
``Q = sum w_i (d_i - d_w)^2`` with ``w_i = 1 / se_i^2`` and ``d_w`` the inverse-variance
weighted mean, referred to chi-square with (levels - 1) degrees of freedom — the test
statsmodels' ``combine_effects(...).test_homogeneity()`` reports. p-values across all the
subgroup estimates of a programme are adjusted by Holm's step-down method.

Subgroup results are less certain than the headline (fewer people, several tests) and are
read as pre-declared descriptions of where the effect may differ, not as findings in themselves.

Example::

    >>> holm([0.01, 0.04, 0.03, 0.005]).round(3).tolist()
    [0.03, 0.06, 0.06, 0.02]
    >>> test = heterogeneity_test([-0.10, 0.02], [0.04, 0.05])
    >>> round(test.q, 3), test.df
    (3.512, 1)
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from models.effects import MIN_TREATED, STATUS_OK, STATUS_TOO_FEW_TREATED, matched_difference
from models.matching import match_nearest

EFFECT_COLUMNS = [
    "variable", "level", "n_treated", "n_comparison", "treated_value", "comparison_value", "difference",
    "se", "ci_lower", "ci_upper", "p_value", "p_holm", "n_clusters", "gate_status",
]
HETEROGENEITY_COLUMNS = ["variable", "n_levels", "q", "df", "p_value"]


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (as statsmodels ``multipletests(method="holm")``).

    The i-th smallest of m p-values becomes ``max over j <= i of min(1, (m - j + 1) p_(j))``.
    Missing p-values stay missing and do not count towards m.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    m = len(present)
    if not m:
        return adjusted
    order = present[np.argsort(p[present], kind="stable")]
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted


@dataclass(frozen=True)
class HeterogeneityTest:
    """Cochran's Q across independent estimates: ``q`` on ``df`` degrees of freedom."""

    q: float
    df: int
    p_value: float


def heterogeneity_test(estimates, standard_errors) -> HeterogeneityTest:
    """Cochran's Q test that independent estimates share one value (needs two or more)."""
    d = np.asarray(estimates, dtype=float)
    se = np.asarray(standard_errors, dtype=float)
    if d.shape != se.shape or d.ndim != 1:
        raise ValueError(f"estimates and standard errors must be 1-d of equal length, got {d.shape} and {se.shape}")
    if len(d) < 2:
        raise ValueError("a heterogeneity test needs at least two estimates")
    if not (np.isfinite(d).all() and (se > 0).all()):
        raise ValueError("estimates must be finite and standard errors positive")
    w = 1 / se**2
    pooled = np.sum(w * d) / np.sum(w)
    q = float(np.sum(w * (d - pooled) ** 2))
    df = len(d) - 1
    return HeterogeneityTest(q=q, df=df, p_value=float(stats.chi2.sf(q, df)))


def age_bands(age, edges: Sequence[int]) -> pd.Categorical:
    """Age bands from increasing edges: [18, 25, 35] gives 18-24, 25-34, 35+ (and 'under 18')."""
    edges = list(edges)
    labels = [f"{low}-{high - 1}" for low, high in zip(edges, edges[1:])] + [f"{edges[-1]}+"]
    age = np.asarray(age, dtype=float)
    # The number of edges at or below the age is the band's place among the categories (0: under).
    codes = np.searchsorted(np.asarray(edges, dtype=float), age, side="right")
    codes[np.isnan(age) | (age == np.inf)] = -1
    return pd.Categorical.from_codes(codes, categories=[f"under {edges[0]}", *labels])


@dataclass
class SubgroupEffects:
    """``effects``: one row per variable and level (``EFFECT_COLUMNS``); ``heterogeneity``: one
    row per variable with at least two estimated levels (``HETEROGENEITY_COLUMNS``)."""

    effects: pd.DataFrame
    heterogeneity: pd.DataFrame


def _levels(column: pd.Series) -> list:
    present = column.dropna()
    if isinstance(column.dtype, pd.CategoricalDtype):
        return [level for level in column.cat.categories if (present == level).any()]
    return sorted(present.unique().tolist(), key=str)


def subgroup_effects(
    data: pd.DataFrame,
    distance,
    outcome: str,
    variables: Sequence[str],
    *,
    treatment: str = "treated",
    ratio: int = 1,
    replace: bool = False,
    caliper: float | None = 0.2,
    exact: Sequence[str] = (),
    min_treated: int = MIN_TREATED,
    conf_level: float = 0.95,
) -> SubgroupEffects:
    """Matched effect on ``outcome`` within each level of each subgrouping variable.

    Args:
        data: one row per analysed person: the 0/1 ``treatment``, the ``outcome`` (missing =
            not measured) and the subgroup columns. A person whose value of a variable is
            missing takes no part in that variable's estimates.
        distance: the matching distance per row (the programme's logit propensity score).
        variables: subgrouping columns; each is matched exactly on its own.
        ratio, replace, caliper, exact: the headline's matching settings.
        min_treated: fewest matched participants with an outcome for a level's estimate.
    """
    distance = np.asarray(distance, dtype=float)
    if len(distance) != len(data):
        raise ValueError(f"distance has {len(distance)} values but data has {len(data)} rows")
    absent = [name for name in [treatment, outcome, *exact, *variables] if name not in data.columns]
    if absent:
        raise ValueError(f"columns not in the data: {', '.join(map(repr, absent))}")
    treated_all = data[treatment].to_numpy() == 1
    y_all = data[outcome].to_numpy(dtype=float)
    # Matching sorts the people by distance; sorted once here (stably, so equal distances keep
    # the data order that breaks ties), every variable's matching starts from sorted rows.
    by_distance = np.argsort(distance, kind="stable")
    rows, tests = [], []
    for variable in variables:
        column = data[variable]
        has_value = column.notna().to_numpy()
        levels = _levels(column)
        treated = treated_all & has_value
        if not treated.any() or not (has_value & ~treated_all).any():
            rows += [_gated(variable, level, 0, 0) for level in levels]
            continue
        weights, subclass = _matched_within(
            data, distance, treated_all, has_value, by_distance, [*dict.fromkeys([*exact, variable])],
            ratio=ratio, replace=replace, caliper=caliper)
        in_sample = (weights > 0) & ~np.isnan(y_all)
        level_rows = []
        for level in levels:
            here = in_sample & (column == level).to_numpy()
            n_treated, n_comparison = int((here & treated_all).sum()), int((here & ~treated_all).sum())
            if n_treated < max(min_treated, 1) or n_comparison == 0:
                level_rows.append(_gated(variable, level, n_treated, n_comparison))
                continue
            cluster = subclass[here] if subclass is not None else None
            estimate = matched_difference(y_all[here], treated_all[here], weights[here], cluster,
                                          conf_level=conf_level)
            level_rows.append({
                "variable": variable, "level": str(level), "n_treated": n_treated, "n_comparison": n_comparison,
                "treated_value": estimate.mean_treated, "comparison_value": estimate.mean_comparison,
                "difference": estimate.difference, "se": estimate.se, "ci_lower": estimate.ci_low,
                "ci_upper": estimate.ci_high, "p_value": estimate.p_value, "n_clusters": estimate.n_clusters,
                "gate_status": STATUS_OK,
            })
        rows += level_rows
        estimated = [r for r in level_rows if r["gate_status"] == STATUS_OK]
        if len(estimated) >= 2:
            test = heterogeneity_test([r["difference"] for r in estimated], [r["se"] for r in estimated])
            tests.append({"variable": variable, "n_levels": len(estimated), "q": test.q, "df": test.df,
                          "p_value": test.p_value})
    effects = pd.DataFrame(rows, columns=[c for c in EFFECT_COLUMNS if c != "p_holm"])
    effects.insert(EFFECT_COLUMNS.index("p_holm"), "p_holm", holm(effects["p_value"].to_numpy(dtype=float)))
    return SubgroupEffects(effects=effects[EFFECT_COLUMNS], heterogeneity=pd.DataFrame(tests, columns=HETEROGENEITY_COLUMNS))


def _matched_within(data: pd.DataFrame, distance: np.ndarray, treated: np.ndarray, has_value: np.ndarray,
                    by_distance: np.ndarray, exact: list[str], *, ratio: int, replace: bool,
                    caliper: float | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Matching weights and matched sets per row (0 and 0 outside) of the people with a value,
    matched exactly on ``exact``: :func:`models.matching.match_nearest` on those people in
    distance order, which makes the same matches as on them in data order (ties in distance
    keep their data order) and the same matched sets under other numbers."""
    rows = by_distance[has_value[by_distance]]
    strata = np.column_stack([_codes(data[name])[rows] for name in exact])
    missing = [name for name, codes in zip(exact, strata.T) if (codes < 0).any()]
    if missing:
        raise ValueError(f"exact-matching variable(s) with missing values: {', '.join(missing)}")
    # The caliper in SDs of these people's distance, summed in data order as matching them in data
    # order would, so the width is the same to the last bit (all distances equal: no such width).
    width = None if caliper is None else float(caliper * np.std(distance[has_value], ddof=1))
    match = match_nearest(treated[rows], distance[rows], ratio=ratio, replace=replace,
                          caliper=width or caliper, std_caliper=not width, exact=strata)
    weights = np.zeros(len(distance))
    weights[rows] = match.weights
    if match.subclass is None:
        return weights, None
    subclass = np.zeros(len(distance), dtype=np.int64)
    subclass[rows] = match.subclass
    return weights, subclass


def _codes(column: pd.Series) -> np.ndarray:
    """An integer per distinct value (-1 where missing)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy()
    return pd.factorize(column.to_numpy())[0]


def _gated(variable: str, level, n_treated: int, n_comparison: int) -> dict:
    return {"variable": variable, "level": str(level), "n_treated": n_treated, "n_comparison": n_comparison,
            "gate_status": STATUS_TOO_FEW_TREATED}
