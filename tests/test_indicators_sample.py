"""Indicators on the committed sample extract agree with what the generator planted.

The CSV files in data/sample/ go straight into staging tables (typed as the contract says,
without the ingest code); the analysis SQL builds the cohort and reoffending measures, and the
indicator SQL and models/indicators.py the rest. data/sample/ground_truth.json records the
planted model: score changes of gain x (1.6 x attended share + 0.7 x completed) - 0.3 with a
programme-specific gain plus normal noise, recorded rounded on a 1-10 scale; moves into work and settled accommodation that rise with completion,
a mean participant satisfaction per programme, and each programme's 12-month reoffending.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import SAMPLE_DIR, read_sample, stage_sample
from desist import analysis, warehouse
from desist.config import load_settings, write_settings
from models.indicators import newcombe_interval
from pipelines import indicators as indicator_assets

PROGRAMMES = ["P01", "P02", "P03", "P04"]
TRUTH = json.loads((SAMPLE_DIR / "ground_truth.json").read_text())


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """(settings, connection, results.indicators as a frame) for the sample extract."""
    folder = tmp_path_factory.mktemp("indicators_sample")
    settings = load_settings(write_settings(folder, SAMPLE_DIR))
    con = warehouse.connect(settings)
    stage_sample(con)
    for name in ("enrolment_links", "cohort", "measures"):
        analysis.build_table(con, name)
    indicator_assets.prepare(con)
    indicator_assets.write_indicators(con, settings)
    yield settings, con, con.sql("SELECT * FROM results.indicators").df()
    con.close()


def whole_period(table: pd.DataFrame, criterion_id: str) -> pd.Series:
    rows = table[(table["period"] == "all") & (table["criterion_id"] == criterion_id)]
    return rows.set_index("programme_id").reindex(PROGRAMMES)


def planted_score_changes() -> pd.DataFrame:
    """Expected recorded exit - baseline change per programme under the planted model.

    Over the participants assessed at baseline and exit, the latent exit score is the latent
    baseline + gain x (attended-share coefficient x attended share + completed coefficient x
    completed) + drift + normal noise; recorded scores are rounded and held to 1-10, so the
    expected recorded exit score is 1 + sum over k = 1..9 of P(latent exit >= k + 0.5). The
    latent baseline is the recorded one plus its rounding error, uniform on +-0.5.
    """
    model = TRUTH["intermediate_outcomes"]["score_change_model"]
    assessments = read_sample("assessments")
    scores = {"life_skills": "life_skills_score", "community_integration": "community_integration_score"}
    baseline = assessments[assessments["stage"] == "baseline"].set_index(["programme_id", "person_id"])
    exited = assessments[assessments["stage"] == "exit"].set_index(["programme_id", "person_id"])
    assessed = baseline.index.intersection(exited.index)
    enrolled = read_sample("participation").astype({"sessions_offered": int, "sessions_attended": int})
    enrolled = enrolled.set_index(["programme_id", "person_id"]).loc[assessed]
    share = np.where(enrolled["sessions_offered"] > 0,
                     enrolled["sessions_attended"] / enrolled["sessions_offered"].clip(lower=1), 0.0)
    drive = model["attended_share"] * share + model["completed"] * (enrolled["status"] == "completed")
    gains = pd.DataFrame({p: TRUTH["programmes"][p]["intermediate_outcomes"] for p in PROGRAMMES}).T
    spread = np.sqrt(model["noise_sd"] ** 2 + 1 / 12)
    thresholds = np.arange(1, 10) + 0.5
    programme = assessed.get_level_values("programme_id")
    expected = {}
    for criterion, column in scores.items():
        start = baseline.loc[assessed, column].astype(float).to_numpy()
        gain = gains[f"{criterion}_gain"].reindex(programme).to_numpy()
        latent_exit = start + gain * drive.to_numpy() + model["drift"]
        recorded_exit = 1 + stats.norm.sf((thresholds[None, :] - latent_exit[:, None]) / spread).sum(axis=1)
        expected[criterion] = pd.Series(recorded_exit - start).groupby(programme).mean()
    return pd.DataFrame(expected).reindex(PROGRAMMES)


@pytest.mark.parametrize("criterion_id", ["life_skills", "community_integration"])
def test_score_changes_are_positive_and_near_the_planted_expectation(sample, criterion_id):
    _, _, table = sample
    rows = whole_period(table, criterion_id)
    expected = planted_score_changes()[criterion_id]
    assert (expected > 0).all()
    assert (rows["estimate"] > 0).all() and (rows["ci_lower"] > 0).all()
    assert rows["status"].tolist() == ["met"] * 4
    standard_error = (rows["ci_upper"] - rows["ci_lower"]) / (2 * 1.959964)
    comparison = pd.DataFrame({"estimate": rows["estimate"], "planted": expected, "standard_error": standard_error})
    assert (np.abs(rows["estimate"] - expected) < 3 * standard_error).all(), comparison


@pytest.mark.parametrize(("criterion_id", "planted"), [
    ("life_skills", "life_skills_gain"),
    ("community_integration", "community_integration_gain"),
    ("satisfaction.participant", "mean_participant_satisfaction"),
])
def test_programmes_rank_as_planted(sample, criterion_id, planted):
    _, _, table = sample
    estimates = whole_period(table, criterion_id)["estimate"]
    planted_values = pd.Series({p: TRUTH["programmes"][p]["intermediate_outcomes"][planted] for p in PROGRAMMES})
    assert list(estimates.sort_values().index) == list(planted_values.sort_values().index)


def by_completion(con) -> pd.DataFrame:
    return con.sql("""
        SELECT enrolment.completed, assessment.*
        FROM results.indicator_assessments AS assessment
        JOIN results.indicator_enrolments AS enrolment USING (programme_id, person_id)
        WHERE enrolment.completed IS NOT NULL
    """).df()


@pytest.mark.parametrize("outcome", ["employment_gain", "settled_accommodation_gain"])
def test_moves_into_work_and_settled_housing_rise_with_completion(sample, outcome):
    _, con, _ = sample
    frame = by_completion(con).dropna(subset=[outcome])
    counts = frame.groupby("completed")[outcome].agg(["sum", "size"]).astype(int)
    completed, withdrew = counts.loc[True], counts.loc[False]
    lower, _ = newcombe_interval(completed["sum"], completed["size"], withdrew["sum"], withdrew["size"])
    assert completed["sum"] / completed["size"] > withdrew["sum"] / withdrew["size"]
    assert float(lower) > 0


@pytest.mark.parametrize("outcome", ["life_skills_change", "community_integration_change"])
def test_score_changes_rise_with_completion(sample, outcome):
    _, con, _ = sample
    means = by_completion(con).groupby("completed")[outcome].mean()
    # planted: completion adds 0.7 x the programme's gain (0.6 to 1.3) to the expected change
    assert means[True] - means[False] > 0.5


def test_reoffending_inputs_match_the_ground_truth(sample):
    _, con, _ = sample
    got = con.sql("SELECT programme_id, count(reoffended), avg(reoffended::INTEGER) FROM results.indicator_enrolments "
                  "GROUP BY programme_id ORDER BY programme_id").fetchall()
    expected = [(p, TRUTH["programmes"][p]["participants_with_complete_follow_up"],
                 TRUTH["programmes"][p]["reoffending_rate_12m"]["with_programme"]) for p in PROGRAMMES]
    assert [(p, n) for p, n, _ in got] == [(p, n) for p, n, _ in expected]
    assert [rate for _, _, rate in got] == pytest.approx([rate for _, _, rate in expected], abs=1e-12)


def test_reoffending_criterion_waits_for_the_effect_estimates(sample):
    _, _, table = sample
    rows = whole_period(table, "reoffending")
    assert rows["status"].tolist() == ["not_enough_data"] * 4
    assert set(rows["notes"]) == {"no matched 12-month reoffending estimate"}
    assert (table["criterion_id"] == "reoffending").sum() == 4


def test_every_quarter_is_reported_and_small_cells_are_suppressed(sample):
    _, _, table = sample
    enrolled = read_sample("participation").astype({"sessions_offered": int})
    start = pd.to_datetime(enrolled["start_date"])
    enrolled["quarter"] = start.dt.year.astype(str) + "Q" + start.dt.quarter.astype(str)
    for indicator, counted in [("sessions_attended_share", enrolled["sessions_offered"] > 0),
                               ("completion_rate", enrolled["status"] != "ongoing")]:
        rows = table[(table["indicator"] == indicator) & (table["period"] != "all")]
        for programme in PROGRAMMES:
            expected = enrolled.loc[counted & (enrolled["programme_id"] == programme), "quarter"]
            assert sorted(rows.loc[rows["programme_id"] == programme, "period"]) == sorted(set(expected))

    n = table["n"].astype("Float64")
    assert not ((n > 0) & (n < 10)).any()
    assert table.loc[table["estimate"].notna(), "n"].min() >= 10
    small = table[table["status"] == "not_enough_data"]
    assert small["estimate"].isna().all() and small["ci_lower"].isna().all() and small["ci_upper"].isna().all()
    quarters = table[(table["period"] != "all") & table["target"].notna()]
    assert set(quarters["status"]) == {"met", "not_met", "inconclusive", "not_enough_data"}
