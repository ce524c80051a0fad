"""Disclosure control for the published reports.

No count from 1 to ``min_count - 1`` and no rate or average computed from such a count
reaches a report: the cell holds the word ``"suppressed"`` instead. A zero is shown, because
it describes no one. Every frame a report renders or draws goes through :func:`disclose`
first, so tables, chart data, hover text and alt text are all built from the same
suppressed values.

Suppressing small counts is not enough when a reader can subtract: 482 people analysed and
479 matched tell that 3 were not. So, after the small counts, all the counts of people a
programme's page shows (PAGE_COUNTS) pass :func:`hide_differences` together: no two of them
differ by 1 to ``min_count - 1`` (the less important of two such counts is hidden). Counts that
are differences of others (people lost at a funnel step) are shown only beside both of their
parts. The research file's aggregates follow the same rules table by table
(:func:`disclose_research_tables`).

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

import bisect
import math

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

# The counts of people in each table a programme's page shows.
# In order of importance: where two counts differ by a small number, the later one is hidden.
PAGE_COUNTS = {
    "effects": ["n_treated", "n_comparison"],
    "sample_sizes": ["n_all", "n_matched", "n_unmatched", "n_discarded"],
    "indicators": ["n"],
    "programmes_analysed": ["n_enrolled", "n_treated_analysed", "n_comparison_pool"],
    "km_horizons": ["n_at_risk"],
    "attrition": ["people", "lost"],
    "propensity_overlap": ["n"],
    "unmatched_reasons": ["n"],
    "subgroup_effects": ["n_treated", "n_comparison"],
}

# The counts of people the risk model's card shows.
MODEL_CARD_COUNTS = {
    "risk_performance": ["n_train", "n_test"],
    "risk_calibration": ["n", "n_reoffended"],
    "risk_fairness": ["n", "n_reoffended", "n_negative"],
}

# Tables with no counts of people in what a report shows.
COUNT_FREE = ("programmes", "balance", "logrank", "cox", "ph_tests", "rmst", "run_info", "subgroup_heterogeneity",
              "risk_model_card")


def numeric(values: pd.Series) -> pd.Series:
    """A column as floats, with suppressed and missing cells as NaN (what charts draw)."""
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "biuf":  # no text, so nothing suppressed
        return values.astype(float)
    if values.dtype == object:  # the same as below, without Series.where's overhead (most columns here are short)
        cells = values.to_numpy(dtype=object, copy=True)
        cells[values.eq(SUPPRESSED).to_numpy(dtype=bool)] = None
        return pd.Series(pd.to_numeric(cells, errors="coerce"), index=values.index, name=values.name).astype(float)
    return pd.to_numeric(values.where(values.ne(SUPPRESSED)), errors="coerce").astype(float)


def numeric_cell(value: object) -> float:
    """One cell as :func:`numeric` reads a column: a float, NaN when suppressed or missing."""
    cell = None if isinstance(value, str) and value == SUPPRESSED else value
    return float(pd.to_numeric(np.array([cell], dtype=object), errors="coerce")[0])


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
    if not mask.index.equals(frame.index):  # aligned on the index; a row the mask lacks is suppressed
        mask = mask.reindex(frame.index, fill_value=True)
    hide = mask.to_numpy()
    for column in columns:
        if column in out.columns:
            cells = out[column].to_numpy(dtype=object, copy=True)
            cells[hide] = SUPPRESSED
            out[column] = cells
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


def hide_differences(values: pd.Series, groups: pd.Series, min_count: int,
                     priority: pd.Series | None = None) -> pd.Series:
    """True for the counts to hide so that no two shown counts of a group differ by 1 to min_count - 1.

    Counts already suppressed (the text "suppressed") or missing are left as they are. Within a
    group the counts are taken by `priority` (smallest first; all equal by default), then from
    largest to smallest, and one is kept when it differs from every kept count by 0 or by at
    least `min_count`. The sum of two kept counts is then 0 or at least `min_count` too,
    because no kept count is from 1 to min_count - 1. A loop over aggregate cells, never over
    people.

    >>> hide_differences(pd.Series([482, 479, 3, 490]), pd.Series(["P03"] * 4), 10).tolist()
    [True, False, True, False]
    """
    number = numeric(values).round(6).to_numpy()
    rank = np.zeros(len(number)) if priority is None else np.asarray(priority, dtype=float)
    keys = groups.astype(str).to_numpy()
    order = np.lexsort((-np.nan_to_num(number, nan=-1.0), rank, keys))
    hidden = np.zeros(len(number), dtype=bool)
    kept: dict[str, list[float]] = {}  # each group's kept counts, sorted
    numbers, names = number.tolist(), keys.tolist()
    for position in order.tolist():
        value = numbers[position]
        if math.isnan(value):
            continue
        shown = kept.setdefault(names[position], [])
        # Only the nearest kept counts below and above can be closer than min_count (and not equal).
        below, above = bisect.bisect_left(shown, value), bisect.bisect_right(shown, value)
        if (0 < value < min_count or (below > 0 and value - shown[below - 1] < min_count)
                or (above < len(shown) and shown[above] - value < min_count)):
            hidden[position] = True
        else:
            shown.insert(above, value)
    return pd.Series(hidden, index=values.index)


def protect_counts(frame: pd.DataFrame, columns: list[str] | tuple[str, ...], min_count: int,
                   by: str | None = "programme_id") -> pd.DataFrame:
    """`columns` (counts of people) suppressed where small or where subtracting two would give a small count.

    The counts of all `columns` in the rows of one `by` value (the whole table when `by` is
    None) are one group for :func:`hide_differences`.
    """
    columns = [c for c in columns if c in frame.columns]
    if frame.empty or not columns:
        return frame
    cells = frame[columns].reset_index(drop=True).melt(var_name="column", value_name="value", ignore_index=False)
    keys = (frame[by].astype(str).reset_index(drop=True).reindex(cells.index) if by in frame.columns
            else pd.Series("", index=cells.index))
    cells["hidden"] = hide_differences(cells["value"].reset_index(drop=True),
                                       keys.reset_index(drop=True), min_count).to_numpy()
    out = frame.copy()
    for column in columns:
        mask = cells.loc[cells["column"] == column, "hidden"].sort_index().to_numpy()
        out = suppress(out, pd.Series(mask, index=frame.index), [column])
    return out


def protect_together(frames: dict[str, pd.DataFrame], columns: dict[str, list[str]],
                     min_count: int, by: str | None = "programme_id",
                     row_rank: dict[str, pd.Series] | None = None) -> dict[str, pd.DataFrame]:
    """:func:`protect_counts` over several tables at once: their counts in the rows of one `by`
    value (all rows when `by` is None) are one group.

    For tables a reader sees side by side (one programme's page, one view joining them), so that
    no count of one differs from a count of another by 1 to min_count - 1 either. Counts of
    tables earlier in `columns` are kept first, and within a table those of rows with a lower
    `row_rank` (a Series on the table's index).
    """
    row_rank = row_rank or {}
    frames = {name: frame for name, frame in frames.items()
              if not frame.empty and any(c in frame.columns for c in columns.get(name, ()))}
    if not frames:
        return {}
    # One cell per count: each table's columns one after the other, tables in the order of `columns`.
    cells = [(name, column, frame) for name, frame in frames.items() for column in columns[name]
             if column in frame.columns]
    groups = {name: frame[by].astype(str).to_numpy() if by in frame.columns else np.full(len(frame), "")
              for name, frame in frames.items()}
    # Tables earlier in `columns` keep their counts first (the page's headline numbers before the rest).
    table_rank = {name: rank for rank, name in enumerate(columns)}
    ranks = {name: table_rank[name] * 1000 + (row_rank[name].reindex(frame.index).fillna(0).to_numpy()
                                              if name in row_rank else np.zeros(len(frame)))
             for name, frame in frames.items()}
    hidden = hide_differences(
        pd.Series(np.concatenate([frame[column].to_numpy(dtype=object) for _, column, frame in cells])),
        pd.Series(np.concatenate([groups[name] for name, _, _ in cells])), min_count,
        pd.Series(np.concatenate([ranks[name] for name, _, _ in cells]))).to_numpy()
    out = {name: frame.reset_index(drop=True) for name, frame in frames.items()}
    start = 0
    for name, column, frame in cells:
        mask = hidden[start:start + len(frame)]
        start += len(frame)
        out[name] = suppress(out[name], pd.Series(mask, index=out[name].index), [column])
    return out


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
    """Indicator rows: the estimate, its interval and its status follow n, and for shares also the
    numerator and complement."""
    is_share = indicators["unit"].fillna("").str.strip().str.lower() == PROPORTION
    disclosive = is_small(indicators["n"], min_count) | (
        is_share & rate_is_disclosive(indicators["estimate"], indicators["n"], min_count)
    )
    out = suppress(indicators, disclosive, ["estimate", "ci_lower", "ci_upper"])
    # A status beside a suppressed estimate would tell on which side of the target it lies;
    # "not enough data" tells only what the suppressed count already does.
    if "status" in indicators:
        out = suppress(out, disclosive & indicators["status"].ne("not_enough_data"), ["status"])
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
        events_so_far = curve["n_events"].cumsum().tolist()  # non-decreasing: searched with bisect
        rows = []
        position = bisect.bisect_left(events_so_far, min_count)
        while position < len(curve):
            rows.append(position)
            position = bisect.bisect_left(events_so_far, events_so_far[position] + min_count)
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


def disclose_attrition(steps: pd.DataFrame, min_count: int, by: str | None = "programme_id") -> pd.DataFrame:
    """The attrition funnel: `people` remaining after each step and `lost` at it.

    Both funnels of a programme (participants and comparison) and both columns are one group
    for :func:`protect_counts` (with `by=None`, the whole table is), so no two shown numbers
    differ by 1 to min_count - 1. `lost` is the difference of its step's `people` and the
    previous step's, so it is shown only beside both of them: otherwise the hidden one could be
    worked back from it. Steps are taken in `step_number` order within each
    (programme_id, cohort_group).
    """
    steps = steps.sort_values(["programme_id", "cohort_group", "step_number"])
    return hide_lost_beside_hidden(protect_counts(steps, ["people", "lost"], min_count, by=by))


def hide_lost_beside_hidden(steps: pd.DataFrame) -> pd.DataFrame:
    """A funnel step's `lost` suppressed unless its step's and the previous step's `people` are both shown."""
    steps = steps.sort_values(["programme_id", "cohort_group", "step_number"])
    people_hidden = steps["people"].eq(SUPPRESSED)
    funnel = [steps["programme_id"], steps["cohort_group"]]
    previous_hidden = people_hidden.groupby(funnel).shift(1, fill_value=False).astype(bool)
    first_step = steps.groupby(funnel).cumcount().eq(0)
    return suppress(steps, people_hidden | (previous_hidden & ~first_step), ["lost"])


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


def counts_together(frame: pd.DataFrame, keys: list[str], counts: list[str], min_count: int) -> pd.Series:
    """True for every row of a set of groups that add up to a shown whole (levels of a subgroup,
    groups of an attribute) when any count of any of them is small: all their counts are then
    suppressed, so the small one cannot be worked out by subtraction."""
    small = pd.concat([is_small(frame[c], min_count) for c in counts], axis=1).any(axis=1)
    return small.groupby([frame[k] for k in keys]).transform("any")


def disclose_subgroup_effects(effects: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """Subgroup rows follow the headline's rules, and their counts are suppressed together per variable."""
    counts = ["n_treated", "n_comparison"]
    out = disclose_effects(effects.assign(measure="reoffended"), min_count).drop(columns="measure")
    out = suppress(out, out["difference"].eq(SUPPRESSED), ["se", "p_holm"])
    return suppress(out, counts_together(effects, ["programme_id", "variable"], counts, min_count), counts)


def disclose_risk_fairness(fairness: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """Fairness rows: a group's calibration and AUC need enough people with and without a reoffence;
    its false-positive rate enough flagged and unflagged people without one, its false-negative rate
    enough of each among those with one; the counts of an attribute's groups are suppressed together."""
    negatives = numeric(fairness["n_negative"])
    observed = rate_is_disclosive(fairness["observed"], fairness["n"], min_count)
    out = suppress(fairness, observed, ["observed", "mean_predicted", "calibration_in_the_large", "citl_lower",
                                        "citl_upper", "auc", "auc_lower", "auc_upper"])
    out = suppress(out, observed | rate_is_disclosive(fairness["fpr"], negatives, min_count),
                   ["fpr", "fpr_lower", "fpr_upper"])
    out = suppress(out, observed | rate_is_disclosive(fairness["fnr"], fairness["n_reoffended"], min_count),
                   ["fnr", "fnr_lower", "fnr_upper"])
    counts = ["n", "n_reoffended", "n_negative"]
    return suppress(out, counts_together(fairness, ["attribute"], counts, min_count), counts)


def disclose_risk_performance(performance: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """The risk model's training and test samples: reoffending shares need enough people with and without."""
    small = (rate_is_disclosive(performance["reoffended_train"], performance["n_train"], min_count)
             | rate_is_disclosive(performance["reoffended_test"], performance["n_test"], min_count))
    return suppress_counts(suppress(performance, small, ["reoffended_train", "reoffended_test"]),
                           ["n_train", "n_test"], min_count)


def disclose_risk_calibration(calibration: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """Calibration by decile: an observed share needs enough people with and without a reoffence."""
    small = rate_is_disclosive(calibration["observed"], calibration["n"], min_count)
    return suppress_counts(suppress(calibration, small, ["n_reoffended", "observed", "observed_lower",
                                                         "observed_upper"]), ["n", "n_reoffended"], min_count)


def disclose_diagnostics(diagnostics: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """Study diagnostics: the minimum-sample row counts participants, so a small count reads
    "suppressed" and its explanation says only that it is below `min_count`."""
    small = (diagnostics["diagnostic"] == "minimum_sample") & is_small(diagnostics["value"], min_count)
    out = suppress(diagnostics, small, ["value"])
    out.loc[small, "explanation"] = [f"too few participants: fewer than {min_count} of the {threshold:.0f} needed"
                                     for threshold in out.loc[small, "threshold"]]
    return out


def disclose(tables: dict[str, pd.DataFrame], min_count: int,
             headline_months: int | None = None) -> dict[str, pd.DataFrame]:
    """Every table a report shows, with disclosure control applied. Person-level tables do not pass.

    `tables` holds the display tables by name (see reports.build.display_tables); a table not
    known here raises, so nothing reaches a report without a rule. Where two counts of a page
    differ by a small number, the headline's counts (matched reoffending over `headline_months`)
    and whole-period indicators are kept before the others.
    """
    rules = {
        # Small counts here; counts that differ by a small number after the loop, page by page.
        "programmes_analysed": lambda f: suppress_counts(
            f, ["n_enrolled", "n_treated_analysed", "n_comparison_pool"], min_count),
        "sample_sizes": lambda f: suppress_counts(
            f, ["n_all", "n_matched", "n_unmatched", "n_discarded"], min_count),
        "effects": lambda f: disclose_effects(f, min_count),
        "indicators": lambda f: disclose_indicators(f, min_count),
        "km_horizons": lambda f: disclose_km_horizons(f, tables.get("km_curves"), min_count),
        "km_curves": lambda f: coarsen_km_curves(f, min_count),
        "attrition": lambda f: suppress_counts(f, ["people", "lost"], min_count),
        "diagnostics": lambda f: disclose_diagnostics(f, min_count),
        "propensity_overlap": lambda f: suppress(f, is_small(f["n"], min_count), ["n", *PERCENTILE_COLUMNS]),
        "subgroup_effects": lambda f: disclose_subgroup_effects(f, min_count),
        "risk_performance": lambda f: disclose_risk_performance(f, min_count),
        "risk_calibration": lambda f: disclose_risk_calibration(f, min_count),
        "risk_fairness": lambda f: disclose_risk_fairness(f, min_count),
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
    # One programme's page shows all these tables together: no two of its counts may differ by a small number.
    ranks = {}
    if "effects" in out and headline_months is not None:
        effects = out["effects"]
        in_window = effects["window_months"].eq(headline_months)
        headline = in_window & effects["measure"].eq("reoffended") & effects["estimator"].eq("matched")
        ranks["effects"] = pd.Series(np.where(headline, 0, np.where(in_window, 1, 2)), index=effects.index)
    if "indicators" in out:
        ranks["indicators"] = out["indicators"]["period"].ne("all").astype(int)
    out.update(protect_together({name: out[name] for name in PAGE_COUNTS if name in out}, PAGE_COUNTS, min_count,
                                row_rank=ranks))
    if "attrition" in out:
        out["attrition"] = hide_lost_beside_hidden(out["attrition"])
    return protect_model_card(out, min_count)


def protect_model_card(tables: dict[str, pd.DataFrame], min_count: int) -> dict[str, pd.DataFrame]:
    """The model card shows its tables together: no two of their counts may differ by a small number."""
    card = {name: tables[name] for name in MODEL_CARD_COUNTS if name in tables}
    return {**tables, **protect_together(card, MODEL_CARD_COUNTS, min_count, by=None)} if card else tables


# Counts in the tables of a research file published with `publish: {person_level: false}`.
# effects, sample_sizes and programmes_analysed are joined in the headline_effects view, so
# their counts are one group.
RESEARCH_JOINED_COUNTS = {
    "effects": ["n_treated", "n_comparison"],
    "sample_sizes": ["n_all", "n_matched", "n_unmatched", "n_discarded", "ess"],
    "programmes_analysed": ["n_treated_analysed", "n_comparison_pool"],
}
RESEARCH_COUNTS = {
    "indicators": ["n"],
    "km_horizons": ["n_at_risk"],
    "ingest_summary": ["rows_read", "rows_loaded", "rows_quarantined", "rows_rejected"],
    "quarantine_summary": ["rows"],
    "data_quality": ["element_count", "unexpected_count"],
}



def disclose_research_tables(tables: dict[str, pd.DataFrame], min_count: int) -> dict[str, pd.DataFrame]:
    """The aggregate tables of an aggregates-only research file, under the rules of the reports.

    Each table's counts are protected as a whole (across programmes), so no two counts of one
    table, nor of the tables joined in one view, differ by 1 to min_count - 1. Estimates built on
    small counts are suppressed as on the pages; Kaplan–Meier curves keep only the steps a page
    draws, without their counts; means of binary covariates (shares of people) follow their
    group's size. Tables not named here carry no counts of people and pass unchanged.
    """
    out = dict(tables)
    if "effects" in out:
        out["effects"] = disclose_effects(out["effects"], min_count)
    if "indicators" in out:
        out["indicators"] = disclose_indicators(out["indicators"], min_count)
    if "km_horizons" in out:
        out["km_horizons"] = disclose_km_horizons(out["km_horizons"], tables.get("km_curves"), min_count)
    if "km_curves" in out:
        curves = out["km_curves"]
        steps = coarsen_km_curves(curves, min_count)[["programme_id", "grp", "time_days"]]
        kept = curves.merge(steps.astype({"time_days": curves["time_days"].dtype}), how="inner")
        out["km_curves"] = suppress(kept, pd.Series(True, index=kept.index), ["n_at_risk", "n_events"])
    if "balance" in out and "sample_sizes" in out:
        out["balance"] = disclose_binary_means(out["balance"], tables["sample_sizes"], min_count)
    out.update(protect_together({n: out[n] for n in RESEARCH_JOINED_COUNTS if n in out},
                                RESEARCH_JOINED_COUNTS, min_count, by=None))
    for name, columns in RESEARCH_COUNTS.items():
        if name in out:
            out[name] = protect_counts(out[name], columns, min_count, by=None)
    if "subgroup_effects" in out:
        out["subgroup_effects"] = protect_counts(disclose_subgroup_effects(out["subgroup_effects"], min_count),
                                                 PAGE_COUNTS["subgroup_effects"], min_count, by=None)
    for name, rule in (("risk_performance", disclose_risk_performance),
                       ("risk_calibration", disclose_risk_calibration), ("risk_fairness", disclose_risk_fairness)):
        if name in out:
            out[name] = rule(out[name], min_count)
    out = protect_model_card(out, min_count)
    if "attrition" in out:
        out["attrition"] = disclose_attrition(out["attrition"], min_count, by=None)
    return out


def disclose_binary_means(balance: pd.DataFrame, sizes: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """Balance rows: a binary covariate's mean is a share of the group, suppressed like any rate,
    with the differences computed from it.

    The group sizes are sample_sizes' n_all before matching and n_matched after.
    """
    people = sizes.melt(id_vars=["programme_id", "grp"], value_vars=["n_all", "n_matched"],
                        var_name="stage", value_name="n")
    people["stage"] = people["stage"].map({"n_all": "before", "n_matched": "after"})
    wide = people.pivot_table(index=["programme_id", "stage"], columns="grp", values="n", aggfunc="first")
    n = balance[["programme_id", "stage"]].merge(wide.reset_index(), how="left")
    binary = balance["is_binary"].fillna(False).astype(bool).to_numpy()
    disclosive = np.zeros(len(balance), dtype=bool)
    for column, grp in (("mean_treated", "treated"), ("mean_comparison", "comparison")):
        size = n[grp] if grp in n else pd.Series(np.nan, index=n.index)
        disclosive |= binary & rate_is_disclosive(balance[column].reset_index(drop=True),
                                                  size.reset_index(drop=True), min_count).to_numpy()
    # From one share and the standardised difference the other share could be solved for.
    return suppress(balance, pd.Series(disclosive, index=balance.index),
                    ["mean_treated", "mean_comparison", "smd", "variance_ratio", "ecdf_mean", "ecdf_max"])
