"""The analysis SQL on the committed sample extract against an independent pandas computation.

The CSV files in data/sample/ go straight into staging tables (typed as the contract says,
without the ingest code). The pandas side rebuilds the cohort and the 12-month proven
reoffending measure from the raw files with its own logic, and the counts must agree exactly.
The generator's ground truth (data/sample/ground_truth.json) gives a third, separate count of
participants with complete follow-up and of their reoffending.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import SAMPLE_DIR, read_sample, stage_sample
from desist import analysis, warehouse
from desist.config import load_settings, write_settings

@pytest.fixture(scope="module")
def sample_warehouse(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample")
    settings = load_settings(write_settings(folder, SAMPLE_DIR))
    con = warehouse.connect(settings)
    stage_sample(con)
    analysis.build_analysis(con)
    yield settings, con
    con.close()


def pandas_cohort(settings) -> pd.DataFrame:
    """Participants and comparison pool per programme, written from the definition in pandas."""
    index_events = read_sample("index_events").assign(index_date=lambda f: pd.to_datetime(f["index_date"]))
    participation = read_sample("participation").assign(start_date=lambda f: pd.to_datetime(f["start_date"]))
    programmes = read_sample("programmes")["programme_id"]
    cohort = settings.cohort

    eligible = index_events[
        (index_events["index_date"] >= pd.Timestamp(cohort.index_from))
        & (index_events["index_date"] <= pd.Timestamp(cohort.index_to))
    ][["person_id", "index_date"]]

    pairs = participation.merge(eligible, on="person_id")
    offset = (pairs["start_date"] - pairs["index_date"]).dt.days
    linked = pairs[(offset >= -cohort.enrolment_days_before) & (offset <= cohort.enrolment_days_after)]
    participants = (
        linked.sort_values(["programme_id", "person_id", "start_date", "index_date"])
        .drop_duplicates(["programme_id", "person_id"])
        [["programme_id", "person_id", "index_date"]]
        .assign(treated=True)
    )

    first_eligible = eligible.sort_values("index_date").drop_duplicates("person_id")
    pools = []
    for programme_id in programmes:
        ever_enrolled = participation.loc[participation["programme_id"] == programme_id, "person_id"]
        pool = first_eligible[~first_eligible["person_id"].isin(ever_enrolled)]
        pools.append(pool.assign(programme_id=programme_id, treated=False))
    return pd.concat([participants, *pools], ignore_index=True)


def pandas_twelve_month_counts(settings, cohort: pd.DataFrame) -> pd.DataFrame:
    """Per programme and group: people, complete follow-up, reoffenders and reoffences at 12 months."""
    offences = read_sample("offences").assign(
        offence_date=lambda f: pd.to_datetime(f["offence_date"]),
        proven_date=lambda f: pd.to_datetime(f["proven_date"]),
    )
    months, waiting = 12, settings.follow_up.waiting_period_months
    people = cohort[["person_id", "index_date"]].drop_duplicates()
    people["window_end"] = people["index_date"] + pd.DateOffset(months=months)
    people["proof_deadline"] = people["index_date"] + pd.DateOffset(months=months + waiting)
    people["complete"] = people["proof_deadline"] <= pd.Timestamp(settings.data_cutoff)

    joined = people.merge(offences, on="person_id")
    counted = joined[
        (joined["offence_date"] >= joined["index_date"])
        & (joined["offence_date"] < joined["window_end"])
        & (joined["proven_date"] <= joined["proof_deadline"])
    ]
    people = people.merge(
        counted.groupby(["person_id", "index_date"]).size().rename("reoffences").reset_index(),
        on=["person_id", "index_date"], how="left",
    ).fillna({"reoffences": 0})

    measured = cohort.merge(people, on=["person_id", "index_date"])
    complete = measured[measured["complete"]]
    return pd.DataFrame({
        "people": measured.groupby(["programme_id", "treated"]).size(),
        "complete": complete.groupby(["programme_id", "treated"]).size(),
        "reoffenders": (complete["reoffences"] > 0).groupby([complete["programme_id"], complete["treated"]]).sum(),
        "reoffences": complete.groupby(["programme_id", "treated"])["reoffences"].sum(),
    }).astype("int64")


def test_cohort_matches_pandas(sample_warehouse):
    settings, con = sample_warehouse
    expected = pandas_cohort(settings).sort_values(["programme_id", "person_id"]).reset_index(drop=True)
    actual = con.execute(
        "SELECT programme_id, person_id, index_date, treated FROM analysis.cohort ORDER BY programme_id, person_id"
    ).df()
    assert len(actual) == len(expected)
    pd.testing.assert_frame_equal(
        actual[["programme_id", "person_id", "treated"]],
        expected[["programme_id", "person_id", "treated"]],
    )
    assert (actual["index_date"].values == expected["index_date"].values).all()


def test_twelve_month_proven_reoffending_matches_pandas(sample_warehouse):
    settings, con = sample_warehouse
    expected = pandas_twelve_month_counts(settings, pandas_cohort(settings))
    actual = con.execute("""
        SELECT programme_id, treated,
               count(*) AS people,
               count(*) FILTER (WHERE complete) AS complete,
               sum(reoffended) AS reoffenders,
               sum(frequency) AS reoffences
        FROM analysis.measures
        WHERE window_months = 12
        GROUP BY programme_id, treated
        ORDER BY programme_id, treated
    """).df().set_index(["programme_id", "treated"]).astype("int64")
    expected = expected.sort_index()
    # Four programmes, each with participants and a comparison pool, and something to compare.
    assert len(actual) == 8 and (expected["reoffenders"] > 0).all()
    pd.testing.assert_frame_equal(actual, expected)
    rates = actual["reoffenders"] / actual["complete"]
    assert rates.equals(expected["reoffenders"] / expected["complete"])


def test_participants_match_the_generator_ground_truth(sample_warehouse):
    _, con = sample_warehouse
    truth = json.loads((SAMPLE_DIR / "ground_truth.json").read_text())["programmes"]
    actual = {
        programme_id: (people, complete, reoffenders, reoffences)
        for programme_id, people, complete, reoffenders, reoffences in con.execute("""
            SELECT programme_id, count(*), count(*) FILTER (WHERE complete),
                   sum(reoffended), sum(frequency)
            FROM analysis.measures
            WHERE treated AND window_months = 12
            GROUP BY programme_id
        """).fetchall()
    }
    # The truth holds rates over participants with complete follow-up; back to counts.
    expected = {
        programme_id: (
            programme["participants"],
            programme["participants_with_complete_follow_up"],
            round(programme["reoffending_rate_12m"]["with_programme"] * programme["participants_with_complete_follow_up"]),
            round(programme["reoffences_per_person_12m"]["with_programme"] * programme["participants_with_complete_follow_up"]),
        )
        for programme_id, programme in truth.items()
    }
    assert actual == expected


def test_prior_offences_match_the_supplied_counts(sample_warehouse):
    # The generator writes prior_offences / prior_custody as the counts of offences proven
    # before the index date; the SQL derives the same from the offence table.
    _, con = sample_warehouse
    supplied, agreeing = con.execute("""
        SELECT count(*) FILTER (WHERE prior_offences IS NOT NULL AND prior_custody IS NOT NULL),
               count(*) FILTER (WHERE prior_offences = prior_proven_offences
                                  AND prior_custody = prior_custodial_sentences)
        FROM analysis.covariates
    """).fetchall()[0]
    assert supplied > 0 and agreeing == supplied


def test_survival_pair_matches_pandas(sample_warehouse):
    settings, con = sample_warehouse
    cutoff = pd.Timestamp(settings.data_cutoff)
    cohort = pandas_cohort(settings)
    offences = read_sample("offences").assign(
        offence_date=lambda f: pd.to_datetime(f["offence_date"]),
        proven_date=lambda f: pd.to_datetime(f["proven_date"]),
    )
    points = cohort[["person_id", "index_date"]].drop_duplicates()
    joined = points.merge(offences[offences["proven_date"] <= cutoff], on="person_id")
    first = (
        joined[joined["offence_date"] >= joined["index_date"]]
        .groupby(["person_id", "index_date"])["offence_date"].min().rename("first_offence").reset_index()
    )
    survival = cohort.merge(first, on=["person_id", "index_date"], how="left")
    survival["event"] = survival["first_offence"].notna().astype("int64")
    survival["time_days"] = (survival["first_offence"].fillna(cutoff) - survival["index_date"]).dt.days
    expected = survival.groupby(["programme_id", "treated"]).agg(
        people=("event", "size"), events=("event", "sum"), total_days=("time_days", "sum"),
    ).astype("int64")
    actual = con.execute("""
        SELECT programme_id, treated, count(*) AS people, sum(event) AS events, sum(time_days) AS total_days
        FROM analysis.survival GROUP BY programme_id, treated ORDER BY programme_id, treated
    """).df().set_index(["programme_id", "treated"]).astype("int64")
    pd.testing.assert_frame_equal(actual, expected.sort_index())
