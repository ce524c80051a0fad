"""Success-criteria indicators.

Intervals are checked against published values (Newcombe 1998, Stat Med 17: 857-872 and
873-890, for the Wilson and hybrid-score intervals; the binomial table of order-statistic
ranks for the median) and against textbook formulas worked out here with t quantiles from a
printed t table. The status rule is checked for every direction and status, including the
boundaries; disclosure for every rule; and the SQL preparation on a small hand-built extract.
"""
from __future__ import annotations

import datetime as dt
import math

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from conftest import create_staging_tables
from desist import analysis, warehouse
from desist.config import DEFAULT_SUCCESS_CRITERIA, SettingsError, load_settings
from desist.contract import TABLES
from models.indicators import (
    COLUMNS,
    Criterion,
    compute_indicators,
    criterion_status,
    median_ranks,
    newcombe_interval,
    t_interval,
    wilson_interval,
)
from pipelines import indicators as indicator_assets
from pipelines.resources import Warehouse

Z = 1.959963984540054  # standard normal 0.975 quantile
T975 = {9: 2.262157, 11: 2.200985, 15: 2.131450, 39: 2.022691, 54: 2.004879, 59: 2.000995}  # t table, 0.975
D = dt.date.fromisoformat


def wilson_by_hand(x: int, n: int) -> tuple[float, float]:
    p = x / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    return centre - half, centre + half


def t_by_hand(values: list[float]) -> tuple[float, float, float]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T975[n - 1] * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def row(table: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        mask &= (table[column] == value).to_numpy() if value is not None else table[column].isna().to_numpy()
    found = table[mask]
    assert len(found) == 1, f"expected one row for {where}, found {len(found)}"
    return found.iloc[0]


# ---------------------------------------------------------------------------------------
# Intervals
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("x", "n", "lower", "upper"), [
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0000, 0.1611), (1, 29, 0.0061, 0.1718),
])
def test_wilson_interval_reproduces_newcombe_single_proportion_table(x, n, lower, upper):
    got = wilson_interval(x, n)
    assert float(got[0]) == pytest.approx(lower, abs=5e-5)
    assert float(got[1]) == pytest.approx(upper, abs=5e-5)


def test_wilson_interval_for_7_of_20_by_formula():
    lower, upper = wilson_interval([7], [20])
    assert (lower[0], upper[0]) == pytest.approx(wilson_by_hand(7, 20), abs=1e-12)
    assert (lower[0], upper[0]) == pytest.approx((0.1812, 0.5671), abs=5e-5)


def test_wilson_interval_refuses_more_successes_than_trials():
    with pytest.raises(ValueError, match="successes must lie between 0 and n"):
        wilson_interval(11, 10)


@pytest.mark.parametrize(("x1", "n1", "x2", "n2", "lower", "upper"), [
    (56, 70, 48, 80, 0.0524, 0.3339), (9, 10, 3, 10, 0.1705, 0.8090), (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926), (0, 10, 0, 20, -0.1611, 0.2775), (0, 10, 0, 10, -0.2775, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0000), (10, 10, 0, 10, 0.6075, 1.0000),
])
def test_newcombe_interval_reproduces_method_10_of_newcombe_1998(x1, n1, x2, n2, lower, upper):
    got = newcombe_interval(x1, n1, x2, n2)
    assert float(got[0]) == pytest.approx(lower, abs=5e-5)
    assert float(got[1]) == pytest.approx(upper, abs=5e-5)


def test_t_interval_by_hand():
    values = [3, -1, 2, 4, 0, 1, 2, 5, 1, 3]  # mean 2, sum of squared deviations 30
    sd = math.sqrt(30 / 9)
    lower, upper = t_interval(2.0, sd, 10)
    assert (float(lower), float(upper)) == pytest.approx((2 - 2.262157 * sd / math.sqrt(10),
                                                          2 + 2.262157 * sd / math.sqrt(10)), abs=1e-6)
    assert (float(lower), float(upper)) == pytest.approx(t_by_hand(values)[1:], abs=1e-6)
    assert np.isnan(t_interval(2.0, 0.0, 1)[0])


@pytest.mark.parametrize(("n", "lower", "upper"), [(5, 0, 0), (6, 1, 6), (10, 2, 9), (20, 6, 15), (100, 40, 61)])
def test_median_ranks_match_binomial_table(n, lower, upper):
    got = median_ranks([n])
    assert (int(got[0][0]), int(got[1][0])) == (lower, upper)


# ---------------------------------------------------------------------------------------
# Status rule
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("direction", "estimate", "lower", "upper", "expected"), [
    # increase over 0: met needs lower > 0; not met when upper <= 0
    ("increase", 0.5, 0.1, 0.9, "met"),
    ("increase", 0.5, 0.0, 1.0, "inconclusive"),
    ("increase", 0.2, -0.1, 0.5, "inconclusive"),
    ("increase", -0.5, -0.9, -0.1, "not_met"),
    ("increase", -0.5, -1.0, 0.0, "not_met"),
    # at least 0: the target itself is on the right side
    ("at_least", 0.5, 0.0, 1.0, "met"),
    ("at_least", 0.1, -0.2, 0.4, "inconclusive"),
    ("at_least", -0.5, -1.0, 0.0, "inconclusive"),
    ("at_least", -0.5, -1.0, -0.1, "not_met"),
    # decrease below 0: met needs upper < 0; not met when lower >= 0
    ("decrease", -0.5, -0.9, -0.1, "met"),
    ("decrease", -0.5, -1.0, 0.0, "inconclusive"),
    ("decrease", 0.5, 0.0, 1.0, "not_met"),
    ("decrease", 0.5, 0.1, 0.9, "not_met"),
    # at most 0
    ("at_most", -0.5, -1.0, 0.0, "met"),
    ("at_most", 0.5, 0.0, 1.0, "inconclusive"),
    ("at_most", 0.5, 0.1, 0.9, "not_met"),
])
def test_criterion_status_for_every_direction(direction, estimate, lower, upper, expected):
    assert criterion_status([estimate], [lower], [upper], [50], 0.0, direction, 10).tolist() == [expected]


def test_criterion_status_not_enough_data_below_threshold_or_without_an_interval():
    got = criterion_status([0.5, 0.5, 0.5, np.nan], [0.1, 0.1, np.nan, np.nan], [0.9, 0.9, 0.9, np.nan],
                           [9, 10, 50, 50], 0.0, "increase", 10)
    assert got.tolist() == ["not_enough_data", "met", "not_enough_data", "not_enough_data"]


def test_criterion_status_refuses_an_unknown_direction():
    with pytest.raises(ValueError, match=r"unknown direction\(s\) \['upwards'\]"):
        criterion_status([0.5], [0.1], [0.9], [50], 0.0, "upwards", 10)


# ---------------------------------------------------------------------------------------
# compute_indicators on hand-built frames
# ---------------------------------------------------------------------------------------

LIFE_SKILLS = Criterion("life_skills", "Life skills improve", "life_skills_change", 0, "increase")
INTEGRATION = Criterion("integration", "Integration improves", "community_integration_change", 0, "increase")
EMPLOYMENT = Criterion("employment", "A quarter find work", "employment_gain", 0.25, "at_least")
HOUSING = Criterion("housing", "A quarter find settled housing", "settled_accommodation_gain", 0.25, "at_least")
SATISFACTION = Criterion("satisfaction", "Satisfied on average", "satisfaction_mean", 4.0, "at_least")
SATISFIED = Criterion("satisfied", "Three in four satisfied", "share_satisfied", 0.75, "at_least")
REOFFENDING = Criterion("reoffending", "Fewer reoffend", "reoffending_rate_difference", 0, "decrease")

Q1_SKILLS = [3, -1, 2, 4, 0, 1, 2, 5, 1, 3, 2, 2]  # 12 people enrolled in 2022Q1
Q2_SKILLS = [1, 1, 2, 0]                           # 4 people enrolled in 2022Q2
Q1_INTEGRATION = [-1, -2, 0, -1, -3, -1, -2, -1, 0, -2, -1, -1]


def assessment_frame() -> pd.DataFrame:
    """P1: 16 people with exit assessments (12 in 2022Q1, 4 in 2022Q2); P2: 100 people, 40 with employment data."""
    n1, n2 = len(Q1_SKILLS), len(Q2_SKILLS)
    p1 = pd.DataFrame({
        "programme_id": "P1",
        "person_id": [f"a{i}" for i in range(n1 + n2)],
        "period": ["2022Q1"] * n1 + ["2022Q2"] * n2,
        "life_skills_change": Q1_SKILLS + Q2_SKILLS,
        "community_integration_change": Q1_INTEGRATION + [np.nan] * n2,
        # 5 of 12 found work in 2022Q1 (those of 2022Q2 were employed at baseline: not counted)
        "employment_gain": pd.array([True] * 5 + [False] * 7 + [None] * n2, dtype="boolean"),
        "settled_accommodation_gain": pd.array([None] * (n1 + n2), dtype="boolean"),
    })
    p2 = pd.DataFrame({
        "programme_id": "P2",
        "person_id": [f"b{i}" for i in range(100)],
        "period": "2023Q4",
        "life_skills_change": np.nan,
        "community_integration_change": np.nan,
        "employment_gain": pd.array([True] * 30 + [False] * 10 + [None] * 60, dtype="boolean"),
        "settled_accommodation_gain": pd.array([True] * 12 + [False] * 88, dtype="boolean"),
    })
    return pd.concat([p1, p2], ignore_index=True)


def test_mean_change_criterion_whole_period_and_quarters():
    table = compute_indicators([LIFE_SKILLS, INTEGRATION], programmes=["P1", "P2"],
                               assessments=assessment_frame()).to_frame()
    all_p1 = row(table, programme_id="P1", period="all", criterion_id="life_skills")
    mean, lower, upper = t_by_hand(Q1_SKILLS + Q2_SKILLS)
    assert (all_p1.estimate, all_p1.ci_lower, all_p1.ci_upper) == pytest.approx((mean, lower, upper), abs=1e-5)
    assert (all_p1.n, all_p1.target, all_p1.direction, all_p1.status) == (16, 0.0, "increase", "met")
    assert all_p1.unit == "mean change in score (1-10 scale)"

    q1 = row(table, programme_id="P1", period="2022Q1", criterion_id="life_skills")
    assert (q1.estimate, q1.ci_lower, q1.ci_upper) == pytest.approx(t_by_hand(Q1_SKILLS), abs=1e-5)
    assert (q1.n, q1.status) == (12, "met")

    q2 = row(table, programme_id="P1", period="2022Q2", criterion_id="life_skills")
    assert q2.status == "not_enough_data"
    assert pd.isna(q2.estimate) and pd.isna(q2.ci_lower) and pd.isna(q2.ci_upper) and pd.isna(q2.n)
    assert q2.notes == "suppressed: fewer than 10 people or responses"

    integration = row(table, programme_id="P1", period="all", criterion_id="integration")
    assert integration.ci_upper < 0
    assert (integration.estimate, integration.n, integration.status) == (
        pytest.approx(sum(Q1_INTEGRATION) / 12), 12, "not_met")

    no_data = row(table, programme_id="P2", period="all", criterion_id="life_skills")
    assert (no_data.n, no_data.status, no_data.notes) == (0, "not_enough_data", "no data")


def test_proportion_criteria_met_not_met_and_suppressed_numerator():
    table = compute_indicators([EMPLOYMENT, HOUSING], programmes=["P1", "P2"],
                               assessments=assessment_frame()).to_frame()
    met = row(table, programme_id="P2", period="all", criterion_id="employment")
    assert (met.estimate, met.ci_lower, met.ci_upper) == pytest.approx((0.75, *wilson_by_hand(30, 40)), abs=1e-12)
    assert (met.n, met.status, met.unit) == (40, "met", "proportion")

    not_met = row(table, programme_id="P2", period="all", criterion_id="housing")
    assert (not_met.estimate, not_met.ci_lower, not_met.ci_upper) == pytest.approx(
        (0.12, *wilson_by_hand(12, 100)), abs=1e-12)
    assert (not_met.n, not_met.status) == (100, "not_met")

    # 5 of 12: the interval spans the target, so inconclusive; 5 with and 7 without the
    # outcome are small counts, so the estimate and interval are withheld while the status stands.
    lower, upper = wilson_by_hand(5, 12)
    assert lower < 0.25 < upper
    small = row(table, programme_id="P1", period="2022Q1", criterion_id="employment")
    assert (small.n, small.status) == (12, "inconclusive")
    assert pd.isna(small.estimate) and pd.isna(small.ci_lower) and pd.isna(small.ci_upper)
    assert small.notes == "estimate suppressed: fewer than 10 with, or without, the outcome"


PARTICIPANT_SCORES = [5, 4, 4, 5, 3, 5, 4, 4, 5, 4, 2, 5, 4, 5, 4, 4, 5, 3, 4, 5] * 2  # 40: 34 satisfied
PARTNER_SCORES = [4, 3, 4, 5, 3, 4, 4, 2, 4, 4, 3, 4]                                # 12: 8 satisfied
STAFF_SCORES = [5, 5, 4]


def feedback_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "programme_id": "P1",
        "period": ["2021Q1"] * 40 + ["2021Q2"] * 15,
        "respondent_type": ["participant"] * 40 + ["partner"] * 12 + ["staff"] * 3,
        "satisfaction": PARTICIPANT_SCORES + PARTNER_SCORES + STAFF_SCORES,
    })


def test_satisfaction_overall_and_per_respondent_type():
    table = compute_indicators([SATISFACTION, SATISFIED], programmes=["P1"], feedback=feedback_frame()).to_frame()
    overall = row(table, period="all", criterion_id="satisfaction")
    assert (overall.estimate, overall.ci_lower, overall.ci_upper) == pytest.approx(
        t_by_hand(PARTICIPANT_SCORES + PARTNER_SCORES + STAFF_SCORES), abs=1e-5)
    assert (overall.n, overall.unit) == (55, "mean score (1-5 scale)")

    by_participants = row(table, period="all", criterion_id="satisfaction.participant")
    assert (by_participants.estimate, by_participants.ci_lower, by_participants.ci_upper) == pytest.approx(
        t_by_hand(PARTICIPANT_SCORES), abs=1e-5)
    assert by_participants.label == "Satisfied on average (participant responses)"
    assert (by_participants.n, by_participants.target) == (40, 4.0)

    share = row(table, period="all", criterion_id="satisfied")
    assert (share.estimate, share.ci_lower, share.ci_upper) == pytest.approx(
        (45 / 55, *wilson_by_hand(45, 55)), abs=1e-12)
    assert share.ci_lower < 0.75 and share.status == "inconclusive"
    partners = row(table, period="all", criterion_id="satisfied.partner")
    assert (partners.n, partners.status) == (12, "inconclusive")
    assert pd.isna(partners.estimate)  # 4 not satisfied: a small count
    staff = row(table, period="all", criterion_id="satisfied.staff")
    assert (staff.status, pd.isna(staff.n), pd.isna(staff.estimate)) == ("not_enough_data", True, True)
    assert set(table.loc[table["criterion_id"].fillna("").str.startswith("satisfaction."), "criterion_id"]) == {
        "satisfaction.participant", "satisfaction.partner", "satisfaction.staff"}


def effects_frame(**changes) -> pd.DataFrame:
    base = {"programme_id": "P1", "measure": "reoffended", "window_months": 12, "estimator": "matched",
            "n_treated": 240, "n_comparison": 240, "treated_value": 0.30, "comparison_value": 0.38,
            "difference": -0.08, "ci_lower": -0.15, "ci_upper": -0.01, "gate_status": "ok"}
    rows = [
        base,
        {**base, "estimator": "naive", "difference": -0.20, "ci_lower": -0.25, "ci_upper": -0.15},
        {**base, "window_months": 24, "difference": 0.05, "ci_lower": 0.01, "ci_upper": 0.09},
        {**base, "measure": "frequency", "difference": -0.4, "ci_lower": -0.6, "ci_upper": -0.2},
        {**base, "programme_id": "P2", "n_treated": 45, "difference": -0.3, "ci_lower": -0.5, "ci_upper": -0.1,
         "gate_status": "too_few_treated"},
        {**base, "programme_id": "P3", "difference": -0.02, "ci_lower": -0.09, "ci_upper": 0.05},
    ]
    return pd.DataFrame([{**r, **changes} for r in rows])


def test_reoffending_criterion_reads_the_matched_headline_estimate():
    table = compute_indicators([REOFFENDING], programmes=["P1", "P2", "P3", "P4"], effects=effects_frame()).to_frame()
    p1 = row(table, programme_id="P1", criterion_id="reoffending")
    assert (p1.period, p1.estimate, p1.ci_lower, p1.ci_upper, p1.n, p1.status) == (
        "all", -0.08, -0.15, -0.01, 240, "met")
    assert p1.unit == "difference in proportions (participants minus matched comparison)"
    gated = row(table, programme_id="P2", criterion_id="reoffending")
    assert (gated.status, gated.notes) == ("not_enough_data", "matched estimate withheld: too_few_treated")
    assert pd.isna(gated.estimate) and gated.n == 45
    assert row(table, programme_id="P3", criterion_id="reoffending").status == "inconclusive"
    missing = row(table, programme_id="P4", criterion_id="reoffending")
    assert (missing.status, missing.notes) == (
        "not_enough_data", "no matched 12-month reoffending estimate")
    assert (table["criterion_id"] == "reoffending").sum() == 4  # whole period only: no quarters

    at_24 = compute_indicators([REOFFENDING], programmes=["P1"], effects=effects_frame(),
                               reoffending_window_months=24).to_frame()
    assert row(at_24, criterion_id="reoffending").status == "not_met"


def test_reoffending_criterion_without_effects_table():
    table = compute_indicators([REOFFENDING], programmes=["P1"]).to_frame()
    only = row(table, criterion_id="reoffending")
    assert (only.status, only.notes, only.n) == (
        "not_enough_data", "no matched 12-month reoffending estimate", 0)


def test_reoffending_criterion_refuses_two_matched_rows_for_a_programme():
    effects = effects_frame()
    with pytest.raises(ValueError, match=r"more than one matched 12-month reoffending row for programme\(s\) \['P1'\]"):
        compute_indicators([REOFFENDING], programmes=["P1"], effects=pd.concat([effects, effects.iloc[:1]]))


RELATIONSHIP_DAYS = [5, 12, 20, 28, 29, 40, 55, 60, 61, 70, 80, 90, 95, 100, 120, 130, 150, 160, 170, 180]
SESSION_SHARES = [0.4 + 0.01 * i for i in range(60)]


def enrolment_frame() -> pd.DataFrame:
    """60 P1 enrolments in 2022Q3 (every indicator) and 6 in 2022Q4 (too few for any)."""
    n = 60
    completed = ([True] * 20 + [False] * 10                    # lived-experience mentor: 20 of 30 completed
                 + [True] * 10 + [False] * 16 + [None] * 4)    # other mentors: 10 of 26 finished
    within = [d <= 28 for d in RELATIONSHIP_DAYS] + [False] * 15 + [None] * 25  # 4 of 35 observed
    p1 = pd.DataFrame({
        "programme_id": "P1", "person_id": [f"p{i}" for i in range(n)], "period": "2022Q3",
        "completed": pd.array(completed, dtype="boolean"),
        "sessions_attended_share": SESSION_SHARES,
        "relationship_days": pd.array(RELATIONSHIP_DAYS + [None] * 40, dtype="Int64"),
        "ended_within_4_weeks": pd.array(within, dtype="boolean"),
        "mentor_lived_experience": pd.array([True] * 30 + [False] * 30, dtype="boolean"),
        "mentor_close_in_age": pd.array([True] * 45 + [None] * 15, dtype="boolean"),  # nobody "without"
        "mentor_same_sex": pd.array([True, False] * 30, dtype="boolean"),
        "reoffended": pd.array([None] * n, dtype="boolean"),
    })
    q4 = pd.DataFrame({
        "programme_id": "P1", "person_id": [f"q{i}" for i in range(6)], "period": "2022Q4",
        "completed": pd.array([True] * 6, dtype="boolean"), "sessions_attended_share": 1.0,
        "relationship_days": pd.array([30] * 6, dtype="Int64"),
        "ended_within_4_weeks": pd.array([False] * 6, dtype="boolean"),
        "mentor_lived_experience": pd.array([True] * 6, dtype="boolean"),
        "mentor_close_in_age": pd.array([True] * 6, dtype="boolean"),
        "mentor_same_sex": pd.array([True] * 6, dtype="boolean"),
        "reoffended": pd.array([None] * 6, dtype="boolean"),
    })
    return pd.concat([p1, q4], ignore_index=True)


def test_descriptive_engagement_and_durability_indicators():
    table = compute_indicators([], programmes=["P1"], enrolments=enrolment_frame()).to_frame()
    q3 = table[table["period"] == "2022Q3"]

    completion = row(q3, indicator="completion_rate")
    assert (completion.estimate, completion.ci_lower, completion.ci_upper) == pytest.approx(
        (30 / 56, *wilson_by_hand(30, 56)), abs=1e-12)
    assert completion.n == 56 and pd.isna(completion.criterion_id) and completion.status is None
    assert pd.isna(completion.target) and completion.direction is None

    sessions = row(q3, indicator="sessions_attended_share")
    assert (sessions.estimate, sessions.ci_lower, sessions.ci_upper) == pytest.approx(
        t_by_hand(SESSION_SHARES), abs=1e-6)
    assert sessions.n == 60 and sessions.unit == "mean proportion per participant"

    median = row(q3, indicator="mentoring_median_days")
    # n = 20: median halfway between the 10th and 11th values; 95% interval from ranks 6 and 15
    assert (median.estimate, median.ci_lower, median.ci_upper, median.n) == (75.0, 40.0, 120.0, 20)
    assert median.unit == "days (median)"

    early = row(q3, indicator="mentoring_ended_within_4_weeks")
    assert early.n == 35 and pd.isna(early.estimate)  # 4 ended early: a small count
    whole = row(table, period="all", indicator="mentoring_ended_within_4_weeks")  # 2022Q4 adds 6
    assert whole.n == 41 and pd.isna(whole.estimate)

    assert set(table.loc[table["period"] == "2022Q4", "status"]) == {"not_enough_data"}
    assert table.loc[table["period"] == "2022Q4", ["estimate", "n"]].isna().all().all()


def _newcombe_by_hand(x1, n1, x2, n2):
    p1, p2 = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = wilson_by_hand(x1, n1), wilson_by_hand(x2, n2)
    return (p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def test_compatibility_differences_are_labelled_as_associations():
    table = compute_indicators([], programmes=["P1"], enrolments=enrolment_frame()).to_frame()
    q3 = table[table["period"] == "2022Q3"]
    lived = row(q3, indicator="completion_difference_lived_experience")
    # 20 of 30 with a lived-experience mentor completed, 10 of 26 without
    lower, upper = newcombe_interval(20, 30, 10, 26)
    assert (lived.estimate, lived.ci_lower, lived.ci_upper) == pytest.approx(
        (20 / 30 - 10 / 26, float(lower), float(upper)), abs=1e-12)
    assert (float(lower), float(upper)) == pytest.approx(_newcombe_by_hand(20, 30, 10, 26), abs=1e-12)
    assert lived.n == 56 and lived.status is None
    assert lived.label == ("Difference in the completion rate associated with having a mentor with lived "
                           "experience of the justice system (with minus without); an association, not an effect")
    assert lived.unit == "difference in proportions (with minus without)"

    # nobody without a mentor close in age: a group compared is empty
    age = row(q3, indicator="completion_difference_age_gap")
    assert (age.status, age.n, age.notes) == (
        "not_enough_data", 45, "suppressed: a group compared has fewer than 10")
    reoffending = row(table, period="all", indicator="reoffending_difference_same_sex")  # no quarter rows
    assert (reoffending.status, reoffending.n, reoffending.notes) == ("not_enough_data", 0, "no data")
    assert reoffending.label.startswith("Difference in the 12-month proven reoffending rate associated with")
    assert all("associated with" in label for label in table.loc[table["indicator"].str.contains("_difference_"),
                                                                  "label"])


def test_table_columns_order_and_whole_period_rows_for_every_programme():
    table = compute_indicators(DEFAULT_SUCCESS_CRITERIA, programmes=["P1", "P2", "P9"],
                               assessments=assessment_frame(), enrolments=enrolment_frame(),
                               feedback=feedback_frame(), effects=effects_frame()).to_frame()
    assert list(table.columns) == list(COLUMNS)
    whole = table[table["period"] == "all"]
    # 7 criteria + 10 descriptive indicators for each programme, plus satisfaction by respondent type for P1
    assert whole.groupby("programme_id").size().to_dict() == {"P1": 17 + 6, "P2": 17, "P9": 17}
    assert list(table["programme_id"].unique()) == ["P1", "P2", "P9"]
    p1_periods = list(dict.fromkeys(table.loc[table["programme_id"] == "P1", "period"]))
    assert p1_periods == ["all", "2021Q1", "2021Q2", "2022Q1", "2022Q2", "2022Q3", "2022Q4"]
    assert set(table["status"].dropna()) <= {"met", "not_met", "inconclusive", "not_enough_data"}
    assert table.loc[table["target"].notna(), "status"].notna().all()


@pytest.mark.parametrize(("criterion", "message"), [
    (Criterion("x", "X", "happiness", 0, "increase"), "unknown indicator 'happiness'"),
    (Criterion("x", "X", "employment_gain", 0.2, "up"), "unknown direction 'up'"),
    (Criterion("x", "X", "employment_gain", 25, "at_least"), r"target 25 is outside \[0, 1\]"),
])
def test_compute_indicators_refuses_bad_criteria(criterion, message):
    with pytest.raises(ValueError, match=message):
        compute_indicators([criterion], programmes=["P1"])


def test_compute_indicators_refuses_repeated_ids_and_missing_columns_and_non_binary_flags():
    with pytest.raises(ValueError, match=r"repeated: \['life_skills'\]"):
        compute_indicators([LIFE_SKILLS, LIFE_SKILLS], programmes=["P1"])
    with pytest.raises(ValueError, match=r"assessments input is missing column\(s\) \['employment_gain'\]"):
        compute_indicators([LIFE_SKILLS], programmes=["P1"],
                           assessments=assessment_frame().drop(columns="employment_gain"))
    bad = assessment_frame().astype({"employment_gain": float})
    bad.loc[0, "employment_gain"] = 2.0
    with pytest.raises(ValueError, match="employment_gain must be true/false"):
        compute_indicators([EMPLOYMENT], programmes=["P1"], assessments=bad)


# ---------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------


def test_default_settings_hold_the_seven_default_criteria():
    settings = load_settings()
    assert [(c.id, c.indicator, c.target, c.direction) for c in settings.success_criteria] == [
        ("reoffending", "reoffending_rate_difference", 0.0, "decrease"),
        ("life_skills", "life_skills_change", 0.0, "increase"),
        ("employment", "employment_gain", 0.25, "at_least"),
        ("settled_accommodation", "settled_accommodation_gain", 0.25, "at_least"),
        ("community_integration", "community_integration_change", 0.0, "increase"),
        ("satisfaction", "satisfaction_mean", 4.0, "at_least"),
        ("satisfied_share", "share_satisfied", 0.75, "at_least"),
    ]
    assert settings.success_criteria == DEFAULT_SUCCESS_CRITERIA


def criterion_entry(**changes) -> dict:
    return {"id": "employment", "label": "Work", "indicator": "employment_gain", "target": 0.25,
            "direction": "at_least", **changes}


@pytest.mark.parametrize(("entry", "message"), [
    (criterion_entry(indicator="wellbeing"), "unknown indicator 'wellbeing'"),
    (criterion_entry(direction="more"), "unknown direction 'more'"),
    (criterion_entry(target=1.5), r"target 1.5 is outside \[0, 1\]"),
    (criterion_entry(id="Employment!"), "String should match pattern"),
    (criterion_entry(label=""), "at least 1 character"),
])
def test_settings_refuse_a_bad_criterion(make_settings, entry, message):
    with pytest.raises(SettingsError, match=message):
        make_settings(success_criteria=[entry])


def test_settings_refuse_repeated_criterion_ids(make_settings):
    with pytest.raises(SettingsError, match=r"repeated: \['employment'\]"):
        make_settings(success_criteria=[criterion_entry(), criterion_entry(target=0.3)])


def test_settings_read_an_evaluators_criteria(make_settings):
    settings = make_settings(success_criteria=[criterion_entry(target=0.4)])
    assert [(c.id, c.target) for c in settings.success_criteria] == [("employment", 0.4)]


# ---------------------------------------------------------------------------------------
# SQL preparation on a hand-built extract (default settings: cut-off 2025-06-30, 12-month
# headline window with a 6-month waiting period, enrolment window -90..+180 days)
# ---------------------------------------------------------------------------------------



def create_staging(con, rows: dict[str, list[dict]]) -> None:
    create_staging_tables(con)
    for table in TABLES.values():
        if rows.get(table.name):
            frame = pd.DataFrame(rows[table.name], columns=table.column_names)
            frame["source_file"] = "fixture.csv"
            frame["source_row"] = range(1, len(frame) + 1)
            con.register("fixture_rows", frame)
            con.execute(f"INSERT INTO staging.{table.name} BY NAME SELECT * FROM fixture_rows")
            con.unregister("fixture_rows")


def assessment(person, stage, date, employment, accommodation, skills=5, integration=5, programme="P1"):
    return {"person_id": person, "programme_id": programme, "assessment_date": D(date), "stage": stage,
            "employment_status": employment, "accommodation_status": accommodation,
            "life_skills_score": skills, "community_integration_score": integration}


def enrolment(person, start, end, status, mentor=None, offered=10, attended=8, programme="P1"):
    return {"person_id": person, "programme_id": programme, "start_date": D(start),
            "end_date": D(end) if end else None, "status": status, "sessions_offered": offered,
            "sessions_attended": attended, "mentor_id": mentor}


EXTRACT = {
    "programmes": [
        {"programme_id": "P1", "name": "One", "programme_type": "structured_mentoring", "provider": "X"},
        {"programme_id": "P2", "name": "Two", "programme_type": "peer_mentoring", "provider": "Y"},
    ],
    "people": [
        {"person_id": p, "sex": sex, "birth_year": year, "region": "london"}
        for p, sex, year in [("A", "male", 1990), ("B", "female", 1990), ("C", "male", 1960), ("D", "male", 1980),
                             ("E", "male", 1980), ("F", "female", 1985), ("G", "male", 1985), ("H", "male", 1990),
                             ("K", "female", 2000)]
    ],
    "mentors": [
        {"mentor_id": "M1", "programme_id": "P1", "age_band": "25-34", "sex": "male", "lived_experience": True},
        {"mentor_id": "M2", "programme_id": "P1", "age_band": "55-64", "sex": "female", "lived_experience": False},
        {"mentor_id": "M3", "programme_id": "P2", "age_band": "65+", "sex": "male", "lived_experience": True},
    ],
    "participation": [
        enrolment("A", "2022-02-10", "2022-08-01", "completed", "M1"),        # cohort enrolment of A
        enrolment("A", "2023-05-01", "2023-05-20", "withdrawn", "M2"),        # 19 days
        enrolment("B", "2022-04-01", "2022-04-29", "withdrawn", "M2", 4, 1),  # exactly 28 days
        enrolment("C", "2022-07-01", "2022-07-30", "completed", "M2", 0, 0),  # 29 days, nothing offered
        enrolment("D", "2025-01-01", None, "ongoing", "M1"),                  # observed 4 weeks, still going
        enrolment("E", "2025-06-10", None, "ongoing", "M1"),                  # under 4 weeks before the cut-off
        enrolment("F", "2022-09-01", "2022-12-01", "completed"),              # no mentor
        enrolment("K", "2024-03-01", "2024-08-01", "completed", "M3", programme="P2"),
        enrolment("H", "2022-01-05", "2022-03-01", "completed", "M1", programme="P9"),  # unknown programme
    ],
    "index_events": [
        {"person_id": p, "index_date": D(d), "index_type": "community_sentence", "index_offence_group": "theft",
         "sentence_months": 6.0}
        for p, d in [("A", "2022-02-01"), ("B", "2022-03-01"), ("K", "2024-02-01")]
    ],
    "offences": [
        {"offence_id": "O1", "person_id": "A", "offence_date": D("2022-06-01"), "proven_date": D("2022-07-01"),
         "offence_group": "theft", "severity": 2, "disposal": "fine"},
    ],
    "assessments": [
        assessment("A", "baseline", "2022-02-10", "unemployed", "unsettled", 4, 6),
        assessment("A", "exit", "2022-08-01", "employed", "settled", 7, 5),
        assessment("B", "baseline", "2022-04-01", "training", "unsettled", 6, 3),
        assessment("B", "exit", "2022-04-29", "training", "unsettled", 6, 4),
        assessment("B", "follow_up", "2022-10-29", "employed", "settled", 8, 4),
        assessment("C", "baseline", "2022-07-01", "inactive", "settled", 3, 3),
        assessment("C", "exit", "2022-07-30", "unemployed", "settled", 2, 6),
        assessment("D", "baseline", "2025-01-01", "employed", "unsettled", 5, 5),
        assessment("F", "baseline", "2022-09-01", "unemployed", "unsettled", 5, 5),
        assessment("F", "follow_up", "2023-06-01", "employed", "unsettled", 6, 6),
        assessment("G", "baseline", "2021-11-15", "unemployed", "unsettled", 5, 5),  # no enrolment recorded
        assessment("H", "baseline", "2022-01-05", "unemployed", "unsettled", 5, 5, programme="P9"),
    ],
    "feedback": [
        {"response_id": "R1", "programme_id": "P1", "respondent_type": "participant",
         "response_date": D("2022-03-31"), "satisfaction": 4},
        {"response_id": "R2", "programme_id": "P1", "respondent_type": "staff",
         "response_date": D("2022-04-01"), "satisfaction": 2, "relationship_quality": 3},
        {"response_id": "R3", "programme_id": "P9", "respondent_type": "staff",
         "response_date": D("2022-04-01"), "satisfaction": 2},
    ],
}


@pytest.fixture
def extract_warehouse(make_settings):
    settings = make_settings()
    con = warehouse.connect(settings)
    create_staging(con, EXTRACT)
    for table in ("enrolment_links", "cohort", "measures"):
        analysis.build_table(con, table)
    yield settings, con
    con.close()


def test_assessment_preparation(extract_warehouse):
    _, con = extract_warehouse
    assert indicator_assets.prepare(con) == {"indicator_assessments": 6, "indicator_enrolments": 8,
                                             "indicator_feedback": 2}
    got = con.sql("""
        SELECT person_id, period, life_skills_change, community_integration_change, employment_gain,
               settled_accommodation_gain
        FROM results.indicator_assessments ORDER BY person_id
    """).fetchall()
    assert got == [
        ("A", "2022Q1", 3, -1, True, True),       # earliest enrolment 2022-02-10
        ("B", "2022Q2", 0, 1, True, False),       # training is not employment; employed at follow-up
        ("C", "2022Q3", -1, 3, False, None),      # settled at baseline: not in the accommodation measure
        ("D", "2025Q1", None, None, None, None),  # employed at baseline; no exit yet
        ("F", "2022Q3", None, None, True, None),  # no exit: employed at follow-up still counts
        ("G", "2021Q4", None, None, None, None),  # no enrolment: quarter of the baseline assessment
    ]


def test_enrolment_preparation(extract_warehouse):
    _, con = extract_warehouse
    indicator_assets.prepare(con)
    got = con.sql("""
        SELECT person_id, programme_id, period, completed, sessions_attended_share, relationship_days,
               ended_within_4_weeks, participant_age, mentor_age_midpoint, mentor_lived_experience,
               mentor_close_in_age, mentor_same_sex, reoffended
        FROM results.indicator_enrolments ORDER BY person_id, start_date
    """).fetchall()
    assert got == [
        ("A", "P1", "2022Q1", True, 0.8, 172, False, 32, 29.5, True, True, True, True),
        ("A", "P1", "2023Q2", False, 0.8, 19, True, 33, 59.5, False, False, False, None),
        ("B", "P1", "2022Q2", False, 0.25, 28, True, 32, 59.5, False, False, True, False),
        ("C", "P1", "2022Q3", True, None, 29, False, 62, 59.5, False, True, False, None),
        ("D", "P1", "2025Q1", None, 0.8, None, False, 45, 29.5, True, False, True, None),
        ("E", "P1", "2025Q2", None, 0.8, None, None, 45, 29.5, True, False, True, None),
        ("F", "P1", "2022Q3", True, 0.8, None, None, 37, None, None, None, None, None),
        ("K", "P2", "2024Q1", True, 0.8, 153, False, 24, 70.0, True, False, False, None),
    ]


def test_feedback_preparation(extract_warehouse):
    _, con = extract_warehouse
    indicator_assets.prepare(con)
    assert con.sql("SELECT response_id, period, respondent_type, satisfaction FROM results.indicator_feedback "
                   "ORDER BY response_id").fetchall() == [("R1", "2022Q1", "participant", 4),
                                                          ("R2", "2022Q2", "staff", 2)]


def test_write_indicators_creates_the_results_table(extract_warehouse):
    settings, con = extract_warehouse
    indicator_assets.prepare(con)
    con.register("effects_rows", effects_frame())
    con.execute("CREATE TABLE results.effects AS SELECT * FROM effects_rows")
    con.unregister("effects_rows")
    indicator_assets.write_indicators(con, settings)
    columns = con.sql("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'results' "
                      "AND table_name = 'indicators' ORDER BY ordinal_position").fetchall()
    assert columns == [
        ("programme_id", "VARCHAR"), ("period", "VARCHAR"), ("criterion_id", "VARCHAR"), ("label", "VARCHAR"),
        ("indicator", "VARCHAR"), ("estimate", "DOUBLE"), ("ci_lower", "DOUBLE"), ("ci_upper", "DOUBLE"),
        ("n", "BIGINT"), ("target", "DOUBLE"), ("direction", "VARCHAR"), ("status", "VARCHAR"),
        ("unit", "VARCHAR"), ("notes", "VARCHAR"),
    ]
    whole = con.sql("SELECT programme_id, count(*) FROM results.indicators WHERE period = 'all' "
                    "GROUP BY ALL ORDER BY ALL").fetchall()
    assert whole == [("P1", 17 + 4), ("P2", 17)]  # P1: two satisfaction criteria x participant and staff
    assert con.sql("SELECT status, estimate, n FROM results.indicators WHERE programme_id = 'P1' "
                   "AND criterion_id = 'reoffending'").fetchall() == [("met", -0.08, 240)]
    # every other P1 cell rests on fewer than 10 people or responses
    assert con.sql("SELECT count(*) FROM results.indicators WHERE criterion_id IS DISTINCT FROM 'reoffending' "
                   "AND (estimate IS NOT NULL OR n BETWEEN 1 AND 9)").fetchall() == [(0,)]


def test_indicator_assets_materialise_and_depend_on_the_effects(extract_warehouse):
    settings, con = extract_warehouse
    con.close()
    assets = dg.load_assets_from_modules([indicator_assets])
    result = dg.materialize(assets, resources={"warehouse": Warehouse(config_file=str(settings.source))})
    assert result.success
    materialised = {event.asset_key for event in result.get_asset_materialization_events()
                    if event.asset_key is not None}
    assert materialised == {indicator_assets.INDICATORS, indicator_assets.INDICATOR_ASSESSMENTS,
                            indicator_assets.INDICATOR_ENROLMENTS, indicator_assets.INDICATOR_FEEDBACK}
    graph = dg.Definitions(assets=assets, resources={"warehouse": Warehouse()}).resolve_asset_graph()
    assert indicator_assets.EFFECTS in graph.get(indicator_assets.INDICATORS).parent_keys
    with warehouse.connect(settings, read_only=True) as reader:
        assert reader.sql("SELECT status, notes FROM results.indicators WHERE programme_id = 'P1' "
                          "AND criterion_id = 'reoffending'").fetchall() == [
            ("not_enough_data", "no matched 12-month reoffending estimate")]
