"""Disclosure control for the published reports.

No count from 1 to ``min_count - 1`` and no rate or average computed from such a count
reaches a report: the cell holds the word ``"suppressed"`` instead. A zero is shown, because
it describes no one. Every frame a report renders or draws goes through :func:`disclose`
first, so tables, chart data, hover text and alt text are all built from the same
suppressed values.

Rates are suppressed when any of the counts they are made of is small: the people in the
group (denominator), the people with the outcome (numerator) or the people without it
(complement). Counts the rate is made of are not stored, so they are recovered as
``rate * n``.

>>> frame = pd.DataFrame({"n": [7, 120, 200], "rate": [3 / 7, 0.25, 0.04]})
>>> disclosive = rate_is_disclosive(frame["rate"], frame["n"], min_count=10)
>>> suppress(frame, disclosive, ["rate"])["rate"].tolist()   # 3 of 7; 30 of 120; 8 of 200
['suppressed', 0.25, 'suppressed']
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SUPPRESSED = "suppressed"

RATE_MEASURES = ("reoffended", "custodial_reoffence")   # proportions of people
COUNT_MEASURES = ("frequency",)                          # reoffences per person
PROPORTION = "proportion"                                # results.indicators unit of a share of people (0..1)

# Everything in an effects row that is computed from both groups' outcomes.
EFFECT_ESTIMATES = (
    "difference", "ci_lower", "ci_upper", "p_value", "risk_ratio", "rr_lower", "rr_upper",
    "e_value", "e_value_ci", "sentence",
)

# Percentiles of the propensity score drawn for each group (reports.build.propensity_percentiles).
PERCENTILE_COLUMNS = ("p05", "p25", "p50", "p75", "p95")

# Tables with no counts of people in what a report shows.
COUNT_FREE = ("programmes", "balance", "logrank", "cox", "ph_tests", "rmst", "run_info")


def numeric(values: pd.Series) -> pd.Series:
    """A column as floats, with suppressed and missing cells as NaN (what charts draw)."""
    return pd.to_numeric(values.where(values.ne(SUPPRESSED)), errors="coerce").astype(float)


def is_small(counts: pd.Series, min_count: int) -> pd.Series:
    """True where a count is from 1 to min_count - 1.

    Counts recovered from rates carry floating-point noise (10/30 * 30 = 9.999...), so they
    are rounded to six decimals before the comparison.
    """
    values = numeric(counts).round(6)
    return (values > 0) & (values < min_count)


def suppress(frame: pd.DataFrame, mask: pd.Series, columns: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """A copy of `frame` with `columns` reading "suppressed" in the rows where `mask` is true."""
    out = frame.copy()
    mask = mask.fillna(False).astype(bool)
    for column in columns:
        if column in out.columns:
            out[column] = out[column].astype(object).where(~mask, SUPPRESSED)
    return out


def rate_is_disclosive(rate: pd.Series, n: pd.Series, min_count: int) -> pd.Series:
    """True where a proportion `rate` of `n` people rests on a small denominator, numerator or complement."""
    people = numeric(n)
    with_outcome = numeric(rate) * people
    return (
        is_small(people, min_count)
        | is_small(with_outcome, min_count)
        | is_small(people - with_outcome, min_count)
    )


def suppress_counts(frame: pd.DataFrame, columns: list[str] | tuple[str, ...], min_count: int) -> pd.DataFrame:
    """Each count column suppressed where it is small."""
    out = frame.copy()
    for column in columns:
        if column in out.columns:
            out = suppress(out, is_small(frame[column], min_count), [column])
    return out


def disclose_effects(effects: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """Effects rows: each group's value follows its own counts; the comparison of the two follows both."""
    rate_measure = effects["measure"].isin(RATE_MEASURES)
    count_measure = effects["measure"].isin(COUNT_MEASURES)

    def group_disclosive(value: str, n: str) -> pd.Series:
        people = numeric(effects[n])
        events = numeric(effects[value]) * people
        return (
            is_small(people, min_count)
            | (rate_measure & rate_is_disclosive(effects[value], effects[n], min_count))
            | (count_measure & is_small(events, min_count))
        )

    treated = group_disclosive("treated_value", "n_treated")
    comparison = group_disclosive("comparison_value", "n_comparison")
    out = suppress(effects, treated, ["treated_value"])
    out = suppress(out, comparison, ["comparison_value"])
    out = suppress(out, treated | comparison, EFFECT_ESTIMATES)
    return suppress_counts(out, ["n_treated", "n_comparison"], min_count)


def disclose_indicators(indicators: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """Indicator rows: the estimate and its interval follow n, and for shares also the numerator and complement."""
    is_share = indicators["unit"].fillna("").str.strip().str.lower() == PROPORTION
    disclosive = is_small(indicators["n"], min_count) | (
        is_share & rate_is_disclosive(indicators["estimate"], indicators["n"], min_count)
    )
    out = suppress(indicators, disclosive, ["estimate", "ci_lower", "ci_upper"])
    return suppress_counts(out, ["n"], min_count)


def disclose_km_horizons(horizons: pd.DataFrame, curves: pd.DataFrame | None, min_count: int) -> pd.DataFrame:
    """At-risk table: a cumulative share is suppressed with a small at-risk count or a small number of events so far."""
    disclosive = is_small(horizons["n_at_risk"], min_count)
    if curves is not None and len(curves):
        events = curves.sort_values("time_days").assign(
            events_so_far=lambda f: f.groupby(["programme_id", "grp"])["n_events"].cumsum(),
            time_days=lambda f: f["time_days"].astype(float),
        )[["programme_id", "grp", "time_days", "events_so_far"]]
        at_horizon = pd.merge_asof(
            horizons.reset_index().assign(horizon_days=lambda f: f["horizon_days"].astype(float))
            .sort_values("horizon_days"),
            events.rename(columns={"time_days": "horizon_days"}),
            on="horizon_days", by=["programme_id", "grp"], direction="backward",
        ).set_index("index").reindex(horizons.index)
        disclosive = disclosive | is_small(at_horizon["events_so_far"].fillna(0), min_count)
    out = suppress(horizons, disclosive, ["cumulative_reoffending", "lower", "upper"])
    return suppress_counts(out, ["n_at_risk"], min_count)


def coarsen_km_curves(curves: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """Cumulative reoffending curves drawn only at steps of at least `min_count` events.

    A Kaplan–Meier curve drawn at every event time shows each single reoffence. Keeping only
    the times where at least `min_count` events have happened since the last kept time, and
    stopping once fewer than `min_count` people remain at risk, leaves no step that stands for
    fewer than `min_count` people. Returns (programme_id, grp, time_days,
    cumulative_reoffending, lower, upper), starting at 0 on day 0; counts are not returned.
    """
    kept = []
    for (programme_id, grp), curve in curves.sort_values("time_days").groupby(["programme_id", "grp"], sort=True):
        curve = curve[curve["n_at_risk"] >= min_count]
        events_so_far = curve["n_events"].cumsum().to_numpy()
        rows = []
        position = np.searchsorted(events_so_far, min_count, side="left")
        while position < len(curve):
            rows.append(position)
            position = np.searchsorted(events_so_far, events_so_far[position] + min_count, side="left")
        steps = curve.iloc[rows]
        kept.append(pd.DataFrame({
            "programme_id": programme_id,
            "grp": grp,
            "time_days": np.r_[0.0, steps["time_days"].to_numpy(float)],
            "cumulative_reoffending": np.r_[0.0, 1 - steps["survival"].to_numpy(float)],
            "lower": np.r_[0.0, 1 - steps["upper"].to_numpy(float)],
            "upper": np.r_[0.0, 1 - steps["lower"].to_numpy(float)],
        }))
    columns = ["programme_id", "grp", "time_days", "cumulative_reoffending", "lower", "upper"]
    return pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=columns)


def disclose_attrition(steps: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """The attrition funnel: `people` remaining after each step and `lost` at it.

    Besides each small count, a step's `people` is suppressed when it differs from the last
    shown step of the same funnel by 1 to min_count - 1, because the difference would show
    how many left. `lost` is shown only beside two shown neighbours, so no suppressed count
    can be worked back from it. Steps are taken in `step_number` order within each
    (programme_id, cohort_group).
    """
    steps = steps.sort_values(["programme_id", "cohort_group", "step_number"])
    people = numeric(steps["people"]).to_numpy()
    hidden = np.zeros(len(steps), dtype=bool)
    previous_hidden = np.zeros(len(steps), dtype=bool)
    funnels = steps.reset_index(drop=True).groupby(["programme_id", "cohort_group"], sort=False).indices
    for positions in funnels.values():
        last_shown = None
        for order, position in enumerate(positions):  # a handful of steps per funnel
            value = people[position]
            small = 0 < value < min_count
            step_too_small = last_shown is not None and 0 < abs(last_shown - value) < min_count
            hidden[position] = small or step_too_small
            previous_hidden[position] = order > 0 and hidden[positions[order - 1]]
            if not hidden[position]:
                last_shown = value
    hidden_people = pd.Series(hidden, index=steps.index)
    lost_hidden = hidden_people | pd.Series(previous_hidden, index=steps.index) | is_small(steps["lost"], min_count)
    return suppress(suppress(steps, hidden_people, ["people"]), lost_hidden, ["lost"])


def disclose_unmatched(unmatched: pd.DataFrame, min_count: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ids, reasons) for the participants left unmatched.

    Ids are listed only where a programme has at least `min_count` unmatched people. Their
    number by reason has small counts suppressed; where one is, all of that programme's reason
    counts are, because the listed total minus the others would give it away.
    """
    total = unmatched.groupby("programme_id")["person_id"].transform("size")
    ids = unmatched.loc[total >= min_count, ["programme_id", "person_id"]].sort_values(["programme_id", "person_id"])
    reasons = unmatched.groupby(["programme_id", "reason"], dropna=False).size().rename("n").reset_index()
    any_small = is_small(reasons["n"], min_count).groupby(reasons["programme_id"]).transform("any")
    return ids.reset_index(drop=True), suppress(reasons, any_small, ["n"])


def disclose_diagnostics(diagnostics: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """Study diagnostics: the minimum-sample row counts participants, so a small count reads
    "suppressed" and its explanation says only that it is below `min_count`."""
    small = (diagnostics["diagnostic"] == "minimum_sample") & is_small(diagnostics["value"], min_count)
    out = suppress(diagnostics, small, ["value"])
    out.loc[small, "explanation"] = [f"too few participants: fewer than {min_count} of the {threshold:.0f} needed"
                                     for threshold in out.loc[small, "threshold"]]
    return out


def disclose(tables: dict[str, pd.DataFrame], min_count: int) -> dict[str, pd.DataFrame]:
    """Every table a report shows, with disclosure control applied. Person-level tables do not pass.

    `tables` holds the display tables by name (see reports.build.display_tables); a table not
    known here raises, so nothing reaches a report without a rule.
    """
    rules = {
        "programmes_analysed": lambda f: suppress_counts(
            f, ["n_enrolled", "n_treated_analysed", "n_comparison_pool"], min_count),
        "sample_sizes": lambda f: suppress_counts(
            f, ["n_all", "n_matched", "n_unmatched", "n_discarded"], min_count),
        "effects": lambda f: disclose_effects(f, min_count),
        "indicators": lambda f: disclose_indicators(f, min_count),
        "km_horizons": lambda f: disclose_km_horizons(f, tables.get("km_curves"), min_count),
        "km_curves": lambda f: coarsen_km_curves(f, min_count),
        "attrition": lambda f: disclose_attrition(f, min_count),
        "diagnostics": lambda f: disclose_diagnostics(f, min_count),
        "propensity_overlap": lambda f: suppress(f, is_small(f["n"], min_count), ["n", *PERCENTILE_COLUMNS]),
        **{name: (lambda f: f) for name in COUNT_FREE},
    }
    out: dict[str, pd.DataFrame] = {}
    for name, frame in tables.items():
        if name == "unmatched":
            out["unmatched"], out["unmatched_reasons"] = disclose_unmatched(frame, min_count)
        elif name in rules:
            out[name] = rules[name](frame)
        else:
            raise ValueError(f"no disclosure rule for table '{name}': add one to reports/disclosure.py")
    return out
