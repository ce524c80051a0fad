"""Success-criteria indicators: estimates, 95% confidence intervals, status and disclosure control.

Every indicator is computed per programme for the whole period (``period = "all"``) and per
cohort quarter (``"2022Q3"``) so progress can be followed over time. The quarter of a
participant is the quarter of their enrolment ``start_date`` in the programme (their earliest
enrolment if they enrolled more than once); a survey response belongs to the quarter of its
``response_date``. The matched reoffending estimate exists for the whole period only.

Estimates and intervals (two-sided, 95% by default):

* proportions (``employment_gain``, ``settled_accommodation_gain``, ``share_satisfied``,
  ``completion_rate``, ``mentoring_ended_within_4_weeks``): the Wilson score interval;
* means and mean changes (``life_skills_change``, ``community_integration_change``,
  ``satisfaction_mean``, ``sessions_attended_share``): the t interval
  ``mean ± t(0.975, n - 1) · sd / sqrt(n)``; for changes it is taken on the paired
  differences ``exit - baseline`` of each person;
* the median (``mentoring_median_days``): the distribution-free order-statistic interval
  ``[x(l), x(n - l + 1)]``, ``l`` the largest rank with ``P(Binomial(n, 1/2) <= l - 1) <= 0.025``
  (n = 20 gives ranks 6 and 15); undefined below n = 6;
* differences between two proportions (mentor–participant compatibility): Newcombe's hybrid
  score interval (his method 10), built from the two Wilson intervals;
* ``reoffending_rate_difference``: read from the matched effect estimate
  (``results.effects``: measure ``reoffended``, estimator ``matched``, the headline window),
  whose interval is clustered on the matched sets.

Status of a criterion with target ``T`` (``estimate``, ``[lower, upper]`` its 95% CI):

================  ====================================  ======================================
direction         met                                   not_met
================  ====================================  ======================================
``increase``      estimate > T and lower > T            upper <= T
``at_least``      estimate >= T and lower >= T          upper < T
``decrease``      estimate < T and upper < T            lower >= T
``at_most``       estimate <= T and upper <= T          lower > T
================  ====================================  ======================================

Met means the estimate meets the target *and* the interval excludes every value on the wrong
side; not met means the whole interval lies on the wrong side; otherwise the interval spans
the target and the status is ``inconclusive``. ``not_enough_data`` takes precedence over all
three: fewer people or responses than the disclosure threshold (``min_count``, default 10),
for a difference either group below it, no estimate (e.g. the reoffending estimate failed its
sample-size gate) or an undefined interval.

Disclosure control (as in ``reports/disclosure.py``): no count from 1 to ``min_count - 1`` is
shown, and no estimate computed from one. A row with ``not_enough_data`` shows no estimate and
no interval, and its count ``n`` is blank when it is from 1 to ``min_count - 1`` (a zero is
shown: it describes no one). For a proportion, or a difference of proportions, the estimate and
interval are also blanked when the number with the outcome, or without it, in any group is from
1 to ``min_count - 1``; the status is kept, since met / not met does not reveal that count. The
``notes`` column says what was suppressed and why.

Descriptive indicators (engagement, mentoring-relationship durability and how mentor–participant
compatibility is *associated with* completion and reoffending) carry an estimate and interval
but no target: their ``criterion_id``, ``target``, ``direction`` and ``status`` are blank
unless the row is suppressed (``status = "not_enough_data"``). The compatibility differences are
descriptive associations between groups that chose or were given different mentors, not effects.

Example::

    >>> import pandas as pd
    >>> feedback = pd.DataFrame({"programme_id": "P1", "period": "2022Q1",
    ...                          "respondent_type": "participant", "satisfaction": [5, 4, 4, 3, 5] * 10})
    >>> criterion = Criterion("satisfied", "Stakeholders are satisfied", "share_satisfied", 0.75, "at_least")
    >>> table = compute_indicators([criterion], programmes=["P1"], feedback=feedback, min_count=10)
    >>> row = table.criteria.query("period == 'all' and criterion_id == 'satisfied'").iloc[0]
    >>> round(float(row.estimate), 2), round(float(row.ci_lower), 3), row.status
    (0.8, 0.67, 'inconclusive')
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

DIRECTIONS = ("increase", "decrease", "at_least", "at_most")
STATUSES = ("met", "not_met", "inconclusive", "not_enough_data")  # descriptive rows: NULL unless suppressed
ALL_PERIODS = "all"

SATISFIED_FROM = 4
"""A survey response counts as satisfied when its satisfaction score (1–5) is at least this."""

COLUMNS = (
    "programme_id", "period", "criterion_id", "label", "indicator", "estimate", "ci_lower",
    "ci_upper", "n", "target", "direction", "status", "unit", "notes",
)
"""The columns of ``results.indicators``, in order."""

PROPORTION = "proportion"
SCORE_CHANGE = "mean change in score (1-10 scale)"
DIFFERENCE = "difference in proportions"


@dataclass(frozen=True)
class IndicatorSpec:
    """What one named indicator measures, from which input frame and with which statistic."""

    name: str
    source: str  # "assessments" | "enrolments" | "feedback" | "effects"
    column: str
    statistic: str  # "mean" | "proportion" | "median" | "difference" | "effect"
    unit: str
    target_range: tuple[float, float] = (-np.inf, np.inf)
    factor: str | None = None  # for "difference": the boolean column that splits the groups
    label: str = ""  # the plain-words label of a descriptive indicator


CRITERION_INDICATORS: dict[str, IndicatorSpec] = {
    spec.name: spec
    for spec in (
        IndicatorSpec("reoffending_rate_difference", "effects", "difference", "effect",
                      f"{DIFFERENCE} (participants minus matched comparison)", (-1, 1)),
        IndicatorSpec("life_skills_change", "assessments", "life_skills_change", "mean", SCORE_CHANGE, (-9, 9)),
        IndicatorSpec("employment_gain", "assessments", "employment_gain", "proportion", PROPORTION, (0, 1)),
        IndicatorSpec("settled_accommodation_gain", "assessments", "settled_accommodation_gain", "proportion",
                      PROPORTION, (0, 1)),
        IndicatorSpec("community_integration_change", "assessments", "community_integration_change", "mean",
                      SCORE_CHANGE, (-9, 9)),
        IndicatorSpec("satisfaction_mean", "feedback", "satisfaction", "mean", "mean score (1-5 scale)", (1, 5)),
        IndicatorSpec("share_satisfied", "feedback", "satisfied", "proportion", PROPORTION, (0, 1)),
    )
}
"""The indicators a success criterion in evaluation.yaml may name, with the targets they allow."""

_FACTORS = {
    "mentor_lived_experience": ("lived_experience", "a mentor with lived experience of the justice system"),
    "mentor_close_in_age": ("age_gap", "a mentor within 10 years of the participant's age"),
    "mentor_same_sex": ("same_sex", "a mentor of the same sex"),
}
_OUTCOMES = {
    "completed": ("completion", "the completion rate"),
    "reoffended": ("reoffending", "the {window}-month proven reoffending rate"),
}

DESCRIPTIVE_INDICATORS: dict[str, IndicatorSpec] = {
    spec.name: spec
    for spec in (
        IndicatorSpec("completion_rate", "enrolments", "completed", "proportion", PROPORTION,
                      label="Share of participants who finished the programme who completed it rather than withdrew"),
        IndicatorSpec("sessions_attended_share", "enrolments", "sessions_attended_share", "mean",
                      "mean proportion per participant",
                      label="Average share of offered sessions that a participant attended"),
        IndicatorSpec("mentoring_median_days", "enrolments", "relationship_days", "median", "days (median)",
                      label="Median length in days of mentoring relationships that have ended"),
        IndicatorSpec("mentoring_ended_within_4_weeks", "enrolments", "ended_within_4_weeks", "proportion",
                      PROPORTION,
                      label="Share of mentoring relationships that ended within four weeks of starting"),
        *(
            IndicatorSpec(
                f"{outcome_name}_difference_{factor_name}", "enrolments", outcome, "difference",
                f"{DIFFERENCE} (with minus without)", factor=factor,
                label=(f"Difference in {outcome_words} associated with having {factor_words} "
                       "(with minus without); an association, not an effect"),
            )
            for outcome, (outcome_name, outcome_words) in _OUTCOMES.items()
            for factor, (factor_name, factor_words) in _FACTORS.items()
        ),
    )
}
"""Indicators reported without a target: engagement, durability and compatibility."""

INPUT_COLUMNS = {
    "assessments": ("programme_id", "period", "life_skills_change", "community_integration_change",
                    "employment_gain", "settled_accommodation_gain"),
    "enrolments": ("programme_id", "period", "completed", "sessions_attended_share", "relationship_days",
                   "ended_within_4_weeks", *_FACTORS, "reoffended"),
    "feedback": ("programme_id", "period", "respondent_type", "satisfaction"),
    "effects": ("programme_id", "measure", "window_months", "estimator", "n_treated", "difference",
                "ci_lower", "ci_upper", "gate_status"),
}
"""The columns each input frame must have (one row per participant, enrolment, response or estimate)."""


class CriterionLike(Protocol):
    id: str
    label: str
    indicator: str
    target: float
    direction: str


@dataclass(frozen=True)
class Criterion:
    """A success criterion: ``indicator`` should move in ``direction`` relative to ``target``."""

    id: str
    label: str
    indicator: str
    target: float
    direction: str


# ---------------------------------------------------------------------------------------
# Intervals (vectorised over groups)
# ---------------------------------------------------------------------------------------


def _z(conf_level: float) -> float:
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be between 0 and 1, got {conf_level}")
    from scipy import stats  # here, not at the top: desist/config.py imports this module for its constants

    return float(stats.norm.ppf(0.5 + conf_level / 2))


def wilson_interval(successes, n, conf_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for ``successes / n``; NaN where ``n`` is 0.

    >>> lower, upper = wilson_interval(81, 263)
    >>> round(float(lower), 4), round(float(upper), 4)
    (0.2553, 0.3662)
    """
    x = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    if np.any(x < 0) or np.any(x > n):
        raise ValueError("successes must lie between 0 and n")
    z = _z(conf_level)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = x / n
        denominator = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denominator
        half = z / denominator * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


def t_interval(mean, sd, n, conf_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """t interval ``mean ± t(1 - alpha/2, n - 1) · sd / sqrt(n)``; NaN where ``n < 2``."""
    from scipy import stats

    mean = np.asarray(mean, dtype=float)
    sd = np.asarray(sd, dtype=float)
    n = np.asarray(n, dtype=float)
    _z(conf_level)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = np.where(n >= 2, n - 1, np.nan)
        half = stats.t.ppf(0.5 + conf_level / 2, df) * sd / np.sqrt(n)
    return mean - half, mean + half


def newcombe_interval(x1, n1, x2, n2, conf_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's hybrid score interval for ``x1/n1 - x2/n2`` (Newcombe 1998, method 10).

    >>> lower, upper = newcombe_interval(56, 70, 48, 80)
    >>> round(float(lower), 4), round(float(upper), 4)
    (0.0524, 0.3339)
    """
    l1, u1 = wilson_interval(x1, n1, conf_level)
    l2, u2 = wilson_interval(x2, n2, conf_level)
    with np.errstate(invalid="ignore", divide="ignore"):
        p1 = np.asarray(x1, dtype=float) / np.asarray(n1, dtype=float)
        p2 = np.asarray(x2, dtype=float) / np.asarray(n2, dtype=float)
    difference = p1 - p2
    below = np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    above = np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return difference - below, difference + above


def median_ranks(n, conf_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks ``(l, n - l + 1)`` of the order-statistic interval for a median; 0 where undefined.

    ``l`` is the largest rank with ``P(Binomial(n, 1/2) <= l - 1) <= alpha / 2``.

    >>> median_ranks([6, 20, 100])
    (array([ 1,  6, 40]), array([ 6, 15, 61]))
    """
    from scipy import stats

    n = np.asarray(n, dtype=int)
    alpha_half = (1 - conf_level) / 2
    _z(conf_level)
    k = stats.binom.ppf(alpha_half, n, 0.5).astype(int)
    lower = np.where(stats.binom.cdf(k, n, 0.5) <= alpha_half, k + 1, k)
    lower = np.where(n > 0, lower, 0)
    upper = np.where(lower >= 1, n - lower + 1, 0)
    return lower, upper


# ---------------------------------------------------------------------------------------
# Status
# ---------------------------------------------------------------------------------------


def criterion_status(estimate, ci_lower, ci_upper, n, target, direction, min_count: int) -> np.ndarray:
    """The status of each criterion row (see the module docstring for the rule).

    All arguments but ``min_count`` broadcast: arrays of one length or scalars.

    >>> criterion_status([0.30, 0.30, 0.10, 0.30], [0.26, 0.20, 0.05, 0.2], [0.34, 0.40, 0.20, 0.4],
    ...                  [50, 50, 50, 8], 0.25, "at_least", 10).tolist()
    ['met', 'inconclusive', 'not_met', 'not_enough_data']
    """
    estimate, lower, upper, n, target = (
        np.asarray(value, dtype=float) for value in (estimate, ci_lower, ci_upper, n, target)
    )
    direction = np.asarray(direction, dtype=object)
    unknown = ~np.isin(direction, DIRECTIONS)
    if unknown.any():
        bad = sorted({str(d) for d in np.atleast_1d(direction)[np.atleast_1d(unknown)]})
        raise ValueError(f"unknown direction(s) {bad}; expected one of {list(DIRECTIONS)}")
    up = np.isin(direction, ("increase", "at_least"))
    strict = np.isin(direction, ("increase", "decrease"))
    with np.errstate(invalid="ignore"):
        meets = np.where(up, np.where(strict, estimate > target, estimate >= target),
                         np.where(strict, estimate < target, estimate <= target))
        excludes_wrong_side = np.where(up, np.where(strict, lower > target, lower >= target),
                                       np.where(strict, upper < target, upper <= target))
        all_wrong_side = np.where(up, np.where(strict, upper <= target, upper < target),
                                  np.where(strict, lower >= target, lower > target))
        enough = (n >= min_count) & np.isfinite(estimate) & np.isfinite(lower) & np.isfinite(upper)
    status = np.where(meets & excludes_wrong_side, "met", np.where(all_wrong_side, "not_met", "inconclusive"))
    return np.where(enough, status, "not_enough_data").astype(object)


# ---------------------------------------------------------------------------------------
# Group summaries: one row per (programme_id, period[, respondent_type])
# ---------------------------------------------------------------------------------------

_SUMMARY = ["estimate", "ci_lower", "ci_upper", "n", "n_smallest_group"]


def _as_float(series: pd.Series) -> np.ndarray:
    """Numbers, booleans or nullable values as floats with NaN for missing."""
    return series.astype("Float64").to_numpy(dtype=float, na_value=np.nan)


def _observed(frame: pd.DataFrame, keys: list[str], columns: list[str]) -> pd.DataFrame:
    out = frame[keys].copy()
    for column in columns:
        out[column] = _as_float(frame[column])
    return out.dropna(subset=columns)


def _mean_summary(frame, column, keys, conf_level) -> pd.DataFrame:
    grouped = _observed(frame, keys, [column]).groupby(keys)[column].agg(["size", "mean", "std"])
    lower, upper = t_interval(grouped["mean"], grouped["std"], grouped["size"], conf_level)
    return pd.DataFrame({"estimate": grouped["mean"], "ci_lower": lower, "ci_upper": upper,
                         "n": grouped["size"], "n_smallest_group": grouped["size"]}).reset_index()


def _smallest_positive(*counts) -> np.ndarray:
    """Per row, the smallest of `counts` above zero (NaN when all are zero)."""
    stacked = np.column_stack([np.asarray(c, dtype=float) for c in counts])
    smallest = np.where(stacked > 0, stacked, np.inf).min(axis=1)
    return np.where(np.isinf(smallest), np.nan, smallest)


def _proportion_summary(frame, column, keys, conf_level) -> pd.DataFrame:
    observed = _observed(frame, keys, [column])
    if not observed[column].isin((0.0, 1.0)).all():
        raise ValueError(f"{column} must be true/false (or 1/0) for a proportion")
    grouped = observed.groupby(keys)[column].agg(["size", "sum"])
    lower, upper = wilson_interval(grouped["sum"], grouped["size"], conf_level)
    return pd.DataFrame({"estimate": grouped["sum"] / grouped["size"], "ci_lower": lower, "ci_upper": upper,
                         "n": grouped["size"], "n_smallest_group": grouped["size"],
                         "smallest_part": _smallest_positive(grouped["sum"], grouped["size"] - grouped["sum"])},
                        index=grouped.index).reset_index()


def _median_summary(frame, column, keys, conf_level) -> pd.DataFrame:
    ordered = _observed(frame, keys, [column]).sort_values([*keys, column], ignore_index=True)
    values = ordered[column].to_numpy()
    groups = ordered.groupby(keys, sort=False).size()
    n = groups.to_numpy()
    start = np.cumsum(n) - n
    median = (values[start + (n - 1) // 2] + values[start + n // 2]) / 2
    lower_rank, upper_rank = median_ranks(n, conf_level)
    defined = lower_rank >= 1
    lower = np.where(defined, values[start + np.maximum(lower_rank, 1) - 1], np.nan)
    upper = np.where(defined, values[start + np.maximum(upper_rank, 1) - 1], np.nan)
    return pd.DataFrame({"estimate": median, "ci_lower": lower, "ci_upper": upper, "n": n,
                         "n_smallest_group": n}, index=groups.index).reset_index()


def _difference_summary(frame, column, factor, keys, conf_level) -> pd.DataFrame:
    observed = _observed(frame, keys, [column, factor])
    counts = observed.groupby([*keys, factor])[column].agg(["size", "sum"]).unstack(factor, fill_value=0)
    for part in ("size", "sum"):
        for level in (0.0, 1.0):
            if (part, level) not in counts.columns:
                counts[(part, level)] = 0
    n_with, x_with = counts[("size", 1.0)], counts[("sum", 1.0)]
    n_without, x_without = counts[("size", 0.0)], counts[("sum", 0.0)]
    lower, upper = newcombe_interval(x_with, n_with, x_without, n_without, conf_level)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = x_with / n_with - x_without / n_without
    return pd.DataFrame({
        "estimate": estimate, "ci_lower": lower, "ci_upper": upper, "n": n_with + n_without,
        "n_smallest_group": np.minimum(n_with, n_without),
        "smallest_part": _smallest_positive(x_with, n_with - x_with, x_without, n_without - x_without),
    }, index=counts.index).reset_index()


def _summarise(spec: IndicatorSpec, frame: pd.DataFrame, keys: list[str], conf_level: float) -> pd.DataFrame:
    if spec.statistic == "mean":
        return _mean_summary(frame, spec.column, keys, conf_level)
    if spec.statistic == "proportion":
        return _proportion_summary(frame, spec.column, keys, conf_level)
    if spec.statistic == "median":
        return _median_summary(frame, spec.column, keys, conf_level)
    return _difference_summary(frame, spec.column, spec.factor, keys, conf_level)


def _effect_summary(effects: pd.DataFrame | None, window_months: int) -> pd.DataFrame:
    """The matched reoffending-rate difference per programme, withheld when its gate failed."""
    columns = ["programme_id", "period", *_SUMMARY, "notes"]
    if effects is None or effects.empty:
        return pd.DataFrame(columns=columns)
    rows = effects[(effects["measure"] == "reoffended") & (effects["estimator"] == "matched")
                   & (effects["window_months"] == window_months)]
    duplicated = rows["programme_id"].duplicated()
    if duplicated.any():
        raise ValueError(f"results.effects has more than one matched {window_months}-month reoffending row for "
                         f"programme(s) {sorted(rows.loc[duplicated, 'programme_id'].unique())}")
    gate_ok = (rows["gate_status"] == "ok").to_numpy()
    n = _as_float(rows["n_treated"])
    out = pd.DataFrame({
        "programme_id": rows["programme_id"].to_numpy(),
        "period": ALL_PERIODS,
        "estimate": np.where(gate_ok, _as_float(rows["difference"]), np.nan),
        "ci_lower": np.where(gate_ok, _as_float(rows["ci_lower"]), np.nan),
        "ci_upper": np.where(gate_ok, _as_float(rows["ci_upper"]), np.nan),
        "n": n,
        "n_smallest_group": n,
        "notes": np.where(gate_ok, None, "matched estimate withheld: " + rows["gate_status"].astype(str).to_numpy()),
    })
    return out[columns]


# ---------------------------------------------------------------------------------------
# The indicator table
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndicatorTable:
    """Every indicator row of every programme and period, with status and suppression applied."""

    table: pd.DataFrame
    min_count: int

    def to_frame(self) -> pd.DataFrame:
        """The rows of ``results.indicators`` (columns :data:`COLUMNS`)."""
        return self.table.copy()

    @property
    def criteria(self) -> pd.DataFrame:
        """The success-criterion rows (those with a target)."""
        return self.table[self.table["target"].notna()].reset_index(drop=True)

    @property
    def descriptive(self) -> pd.DataFrame:
        """The descriptive rows (engagement, durability, compatibility associations)."""
        return self.table[self.table["target"].isna()].reset_index(drop=True)

    def summary(self) -> pd.DataFrame:
        """Whole-period criterion rows per programme: estimate, interval, target and status."""
        columns = ["programme_id", "criterion_id", "estimate", "ci_lower", "ci_upper", "n", "target",
                   "direction", "status"]
        rows = self.criteria
        return rows.loc[rows["period"] == ALL_PERIODS, columns].reset_index(drop=True)


def _with_all_period(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame twice: rows under their own quarter and again under the whole period."""
    return pd.concat([frame, frame.assign(period=ALL_PERIODS)], ignore_index=True)


def _check_inputs(name: str, frame: pd.DataFrame | None) -> pd.DataFrame:
    required = INPUT_COLUMNS[name]
    if frame is None:
        return pd.DataFrame({column: pd.Series(dtype="object" if column in ("programme_id", "period",
                                                                              "respondent_type") else float)
                             for column in required})
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} input is missing column(s) {missing}")
    return frame


def _for_programmes(summary: pd.DataFrame, programmes: Sequence[str]) -> pd.DataFrame:
    """The rows of the listed programmes, each with a whole-period row (n = 0 where it has no data)."""
    summary = summary[summary["programme_id"].isin(programmes)]
    present = set(summary.loc[summary["period"] == ALL_PERIODS, "programme_id"])
    absent = [p for p in programmes if p not in present]
    if not absent:
        return summary
    filler = pd.DataFrame({"programme_id": absent, "period": ALL_PERIODS, "estimate": np.nan, "ci_lower": np.nan,
                           "ci_upper": np.nan, "n": 0.0, "n_smallest_group": 0.0})
    if "notes" in summary.columns:
        filler["notes"] = pd.Series(None, index=filler.index, dtype=object)
    if summary.empty:
        return filler
    return pd.concat([summary, filler], ignore_index=True)


def _check_criteria(criteria: Sequence[CriterionLike]) -> None:
    ids = [c.id for c in criteria]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"success criteria ids must be unique; repeated: {repeated}")
    for c in criteria:
        if c.indicator not in CRITERION_INDICATORS:
            raise ValueError(f"success criterion '{c.id}': unknown indicator '{c.indicator}'; "
                             f"expected one of {sorted(CRITERION_INDICATORS)}")
        if c.direction not in DIRECTIONS:
            raise ValueError(f"success criterion '{c.id}': unknown direction '{c.direction}'; "
                             f"expected one of {list(DIRECTIONS)}")
        low, high = CRITERION_INDICATORS[c.indicator].target_range
        if not low <= c.target <= high:
            raise ValueError(f"success criterion '{c.id}': target {c.target} is outside [{low}, {high}] "
                             f"for indicator '{c.indicator}'")


def compute_indicators(
    criteria: Sequence[CriterionLike],
    *,
    programmes: Sequence[str],
    assessments: pd.DataFrame | None = None,
    enrolments: pd.DataFrame | None = None,
    feedback: pd.DataFrame | None = None,
    effects: pd.DataFrame | None = None,
    min_count: int = 10,
    reoffending_window_months: int = 12,
    conf_level: float = 0.95,
) -> IndicatorTable:
    """Every success criterion and descriptive indicator, per programme and period.

    Inputs (columns in :data:`INPUT_COLUMNS`; boolean columns may hold missing values, which
    leave the row out of that indicator):

    * ``assessments``: one row per participant and programme, with the change
      ``exit - baseline`` in each score, ``employment_gain`` (for those not employed at
      baseline and assessed later: employed at exit or follow-up) and
      ``settled_accommodation_gain`` (for those unsettled at baseline and assessed at exit:
      settled at exit);
    * ``enrolments``: one row per enrolment, with ``completed`` (for finished enrolments),
      ``sessions_attended_share``, ``relationship_days`` (ended mentoring relationships),
      ``ended_within_4_weeks`` (mentoring relationships observed for four weeks), the three
      mentor-compatibility flags and ``reoffended`` (proven reoffending within
      ``reoffending_window_months``, where measurable);
    * ``feedback``: one row per survey response;
    * ``effects``: ``results.effects`` rows (``None`` when no effect estimates exist yet).

    ``programmes`` lists every programme: each gets a whole-period row for every indicator.
    Satisfaction criteria also get one row per respondent type, whose ``criterion_id`` is
    ``<id>.<respondent_type>``.
    """
    _check_criteria(criteria)
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    frames = {
        "assessments": _with_all_period(_check_inputs("assessments", assessments)),
        "enrolments": _with_all_period(_check_inputs("enrolments", enrolments)),
        "feedback": _with_all_period(_check_inputs("feedback", feedback)),
    }
    satisfaction = _as_float(frames["feedback"]["satisfaction"])
    frames["feedback"]["satisfied"] = np.where(np.isnan(satisfaction), np.nan, satisfaction >= SATISFIED_FROM)
    keys = ["programme_id", "period"]

    blocks = []
    for criterion in criteria:
        spec = CRITERION_INDICATORS[criterion.indicator]
        if spec.source == "effects":
            summary = _effect_summary(_check_inputs("effects", effects) if effects is not None else None,
                                      reoffending_window_months)
        else:
            summary = _summarise(spec, frames[spec.source], keys, conf_level)
        summary = _for_programmes(summary, programmes).assign(
            criterion_id=criterion.id, label=criterion.label)
        if spec.source == "effects":
            missing = summary["estimate"].isna() & summary["notes"].isna()
            summary["notes"] = summary["notes"].where(
                ~missing, f"no matched {reoffending_window_months}-month reoffending estimate")
        parts = [summary]
        if spec.source == "feedback":
            by_type = _summarise(spec, frames["feedback"], [*keys, "respondent_type"], conf_level)
            by_type = by_type[by_type["programme_id"].isin(programmes)]
            by_type = by_type.assign(
                criterion_id=criterion.id + "." + by_type["respondent_type"].astype(str),
                label=criterion.label + " (" + by_type["respondent_type"].astype(str) + " responses)",
            ).drop(columns="respondent_type")
            parts.append(by_type)
        blocks.extend(_block(part, spec, criterion.direction, criterion.target) for part in parts)

    for spec in DESCRIPTIVE_INDICATORS.values():
        summary = _for_programmes(_summarise(spec, frames[spec.source], keys, conf_level), programmes)
        label = spec.label.format(window=reoffending_window_months)
        blocks.append(_block(summary.assign(criterion_id=None, label=label), spec, None, np.nan))

    table = pd.concat([b for b in blocks if not b.empty], ignore_index=True)
    return IndicatorTable(_apply_status_and_disclosure(table, min_count), min_count)


def _block(summary: pd.DataFrame, spec: IndicatorSpec, direction: str | None, target: float) -> pd.DataFrame:
    """Summary rows of one indicator with the descriptive columns, typed alike in every block."""
    out = summary.assign(indicator=spec.name, target=float(target), direction=direction, unit=spec.unit)
    if "notes" not in out.columns:
        out["notes"] = None
    for column in ("criterion_id", "label", "indicator", "direction", "unit", "notes"):
        out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out


def _is_small(counts: np.ndarray, min_count: int) -> np.ndarray:
    """True where a count describes from 1 to ``min_count - 1`` people (a zero describes no one)."""
    with np.errstate(invalid="ignore"):
        return (counts > 0) & (counts < min_count)


def _apply_status_and_disclosure(table: pd.DataFrame, min_count: int) -> pd.DataFrame:
    if "smallest_part" not in table.columns:
        table["smallest_part"] = np.nan
    n = table["n"].to_numpy(dtype=float)
    smallest_group = table["n_smallest_group"].to_numpy(dtype=float)
    estimates = table[["estimate", "ci_lower", "ci_upper"]].to_numpy(dtype=float)
    is_criterion = table["target"].notna().to_numpy()
    too_few = ~(smallest_group >= min_count)
    no_estimate = too_few | ~np.isfinite(estimates).all(axis=1)
    small_part = _is_small(table["smallest_part"].to_numpy(dtype=float), min_count) & ~no_estimate

    status = np.full(len(table), None, dtype=object)
    status[is_criterion] = criterion_status(
        *(estimates[is_criterion, i] for i in range(3)), smallest_group[is_criterion],
        table["target"].to_numpy(dtype=float)[is_criterion], table["direction"].to_numpy(dtype=object)[is_criterion],
        min_count,
    )
    status[no_estimate] = "not_enough_data"
    table["status"] = status

    reason = np.select(
        [~(n > 0), _is_small(n, min_count), too_few, no_estimate, small_part],
        ["no data",
         f"suppressed: fewer than {min_count} people or responses",
         f"suppressed: a group compared has fewer than {min_count}",
         "no estimate: interval undefined",
         f"estimate suppressed: fewer than {min_count} with, or without, the outcome"],
        default=None,
    )
    notes = table["notes"].to_numpy(dtype=object)
    table["notes"] = np.where(pd.isna(notes), reason, notes)
    table.loc[no_estimate | small_part, ["estimate", "ci_lower", "ci_upper"]] = np.nan
    table["n"] = pd.array(np.where(_is_small(n, min_count), np.nan, n), dtype="Float64").astype("Int64")

    order = table["period"].ne(ALL_PERIODS)
    table = (table.assign(_quarter=order, _row=np.arange(len(table)))
             .sort_values(["programme_id", "_quarter", "period", "_row"], kind="stable"))
    return table[list(COLUMNS)].reset_index(drop=True)
