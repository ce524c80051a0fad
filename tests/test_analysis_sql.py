"""The analysis SQL on a small hand-built extract where every expected number is worked out here.

Settings are the defaults of evaluation.yaml: cohort period 2019-01-01 to 2024-12-31,
enrolment window 90 days before to 180 days after the index date, windows of 6, 12 and 24
months, a 6-month waiting period and data cut-off 2025-06-30.

The people (P1 and P2 are programmes):
  A  index 2020-03-01; offence the day before (proven before index, custody) and one ON the
     index date; enrolled in P1 14 days after index.
  B  index 2020-01-15; an offence committed before index but proven after it; offences
     proven exactly at the 12-month proof deadline, one day after it, and one committed on
     the 12-month window end. Never enrolled.
  C  index events 2018-06-01 (before the cohort period), 2020-02-01 and 2021-05-01; never
     enrolled, so the first eligible one (2020-02-01) is used.
  D  index events 2020-01-10 and 2020-06-01, one P1 enrolment within the window of both:
     the earlier event is used. No sessions offered.
  E  P1 enrolment 181 days after index: not linked.       F  180 days after: linked.
  G  P1 enrolment 90 days before index: linked.            G2 91 days before: not linked.
  H  P1 enrolment linked only to an index event before the cohort period; has another
     eligible index event, so is in the P2 pool but in neither P1 group.
  I  index 2024-03-01: 6-month window complete, 12 and 24 incomplete despite a known
     custodial reoffence.
  J  index 2023-12-31: 12-month proof deadline is exactly the cut-off (complete).
  K  index 2021-06-01, no offences and no row in people (covariates missing).
  L  index 2020-01-01, four reoffences (one custodial in 12 months); enrolled in P2.
  M  index 2024-06-01, offence proven after the cut-off: censored in survival.
  N  P1 participant with no risk score.
"""
from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from conftest import create_staging_tables
from desist import analysis, warehouse
from desist.contract import TABLES
from pipelines.analysis import analysis_assets
from pipelines.resources import Warehouse

D = dt.date.fromisoformat
CUTOFF = D("2025-06-30")


def insert(con, table: str, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows, columns=TABLES[table].column_names)
    frame["source_file"] = "fixture.csv"
    frame["source_row"] = range(1, len(frame) + 1)
    con.register("fixture_rows", frame)
    con.execute(f"INSERT INTO staging.{table} BY NAME SELECT * FROM fixture_rows")
    con.unregister("fixture_rows")


def person(person_id, sex="male", birth_year=1990, region="london"):
    return {"person_id": person_id, "sex": sex, "birth_year": birth_year, "region": region}


def index_event(person_id, index_date, index_type="custody_release", risk_score=50.0):
    return {
        "person_id": person_id, "index_date": D(index_date), "index_type": index_type,
        "index_offence_group": "theft", "sentence_months": 6.0, "risk_score": risk_score,
        "employment_at_index": False, "accommodation_at_index": True,
    }


def offence(offence_id, person_id, offence_date, proven_date, severity=2, disposal="community"):
    return {
        "offence_id": offence_id, "person_id": person_id, "offence_date": D(offence_date),
        "proven_date": D(proven_date), "offence_group": "theft", "severity": severity,
        "disposal": disposal,
    }


def enrolment(person_id, programme_id, start_date, status="completed", offered=10, attended=7):
    return {
        "person_id": person_id, "programme_id": programme_id, "start_date": D(start_date),
        "status": status, "sessions_offered": offered, "sessions_attended": attended,
    }


def load_scenario(con) -> None:
    create_staging_tables(con)
    insert(con, "programmes", [
        {"programme_id": "P1", "name": "One", "programme_type": "peer_mentoring", "provider": "X"},
        {"programme_id": "P2", "name": "Two", "programme_type": "community_support", "provider": "Y"},
    ])
    insert(con, "people", [
        person("A", sex="female", birth_year=1990, region="wales"),
        *(person(p) for p in ["B", "C", "D", "E", "F", "G", "G2", "H", "I", "J", "L", "M", "N"]),
    ])
    insert(con, "index_events", [
        index_event("A", "2020-03-01"),
        index_event("B", "2020-01-15", index_type="community_sentence"),
        index_event("C", "2018-06-01"), index_event("C", "2020-02-01"), index_event("C", "2021-05-01"),
        index_event("D", "2020-01-10"), index_event("D", "2020-06-01"),
        index_event("E", "2020-01-01"),
        index_event("F", "2020-01-01"),
        index_event("G", "2020-04-01"),
        index_event("G2", "2020-04-01"),
        index_event("H", "2018-11-01"), index_event("H", "2020-06-01"),
        index_event("I", "2024-03-01"),
        index_event("J", "2023-12-31"),
        index_event("K", "2021-06-01"),
        index_event("L", "2020-01-01"),
        index_event("M", "2024-06-01"),
        index_event("N", "2020-07-01", risk_score=None),
    ])
    insert(con, "offences", [
        offence("a1", "A", "2020-02-29", "2020-02-29", severity=3, disposal="custody"),
        offence("a2", "A", "2020-03-01", "2020-04-01"),
        offence("b0", "B", "2019-12-01", "2020-02-01"),
        offence("b1", "B", "2020-12-01", "2021-07-15"),
        offence("b2", "B", "2020-12-02", "2021-07-16"),
        offence("b3", "B", "2021-01-15", "2021-02-01"),
        offence("c0", "C", "2018-01-01", "2018-03-01", disposal="custody"),
        offence("c1", "C", "2021-06-01", "2021-07-01"),
        offence("i1", "I", "2024-05-01", "2024-06-01", severity=5, disposal="custody"),
        offence("l1", "L", "2020-02-01", "2020-03-01", severity=2, disposal="community"),
        offence("l2", "L", "2020-05-01", "2020-06-01", severity=4, disposal="fine"),
        offence("l3", "L", "2020-09-01", "2020-10-01", severity=3, disposal="custody"),
        offence("l4", "L", "2021-03-01", "2021-04-01", severity=5, disposal="custody"),
        offence("m1", "M", "2025-05-01", "2025-08-01"),
    ])
    insert(con, "participation", [
        enrolment("A", "P1", "2020-03-15", attended=7),
        enrolment("D", "P1", "2020-05-01", status="withdrawn", offered=0, attended=0),
        enrolment("E", "P1", "2020-06-30"),
        enrolment("F", "P1", "2020-06-29"),
        enrolment("G", "P1", "2020-01-02"),
        enrolment("G2", "P1", "2020-01-01"),
        enrolment("H", "P1", "2018-12-01"),
        enrolment("N", "P1", "2020-07-15", status="ongoing"),
        enrolment("L", "P2", "2020-02-01"),
    ])


@pytest.fixture
def con(make_settings):
    connection = warehouse.connect(make_settings())
    load_scenario(connection)
    analysis.build_analysis(connection)
    yield connection
    connection.close()


def rows(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def one_row(con, table: str, **where) -> dict:
    """The single row of analysis.<table> matching `where`, as plain Python values."""
    condition = " AND ".join(f"{column} = ?" for column in where)
    result = con.execute(f"SELECT * FROM analysis.{table} WHERE {condition}", list(where.values()))
    names = [column[0] for column in result.description]
    found = result.fetchall()
    assert len(found) == 1, found
    return dict(zip(names, found[0]))


def measure(con, programme_id, person_id, window_months) -> dict:
    return one_row(con, "measures", programme_id=programme_id, person_id=person_id, window_months=window_months)


# --- cohort -------------------------------------------------------------------------------

def test_participants_and_their_index_events(con):
    assert rows(con, """
        SELECT programme_id, person_id, index_date, enrolment_start_date, enrolment_days_from_index
        FROM analysis.cohort WHERE treated ORDER BY programme_id, person_id
    """) == [
        ("P1", "A", D("2020-03-01"), D("2020-03-15"), 14),
        # D's enrolment lies within the window of both index events: the earlier one is used.
        ("P1", "D", D("2020-01-10"), D("2020-05-01"), 112),
        # 2020-01-01 + 180 days = 2020-06-29 (2020 is a leap year): the window end is inclusive.
        ("P1", "F", D("2020-01-01"), D("2020-06-29"), 180),
        # 2020-04-01 - 90 days = 2020-01-02: the window start is inclusive.
        ("P1", "G", D("2020-04-01"), D("2020-01-02"), -90),
        ("P1", "N", D("2020-07-01"), D("2020-07-15"), 14),
        ("P2", "L", D("2020-01-01"), D("2020-02-01"), 31),
    ]


def test_comparison_pool_is_everyone_with_an_eligible_event_never_enrolled(con):
    pool = {
        programme: dict(rows(con, f"""
            SELECT person_id, index_date FROM analysis.cohort
            WHERE programme_id = '{programme}' AND NOT treated
        """))
        for programme in ("P1", "P2")
    }
    # P1: E, G2 and H enrolled in P1 (outside the window, or linked to an ineligible event),
    # so they are in neither P1 group; C's first eligible index event is 2020-02-01.
    assert pool["P1"] == {
        "B": D("2020-01-15"), "C": D("2020-02-01"), "I": D("2024-03-01"), "J": D("2023-12-31"),
        "K": D("2021-06-01"), "L": D("2020-01-01"), "M": D("2024-06-01"),
    }
    # P2: everyone with an eligible index event except its participant L; H's eligible event
    # is 2020-06-01, and P1 participants are in the P2 pool.
    assert sorted(pool["P2"]) == ["A", "B", "C", "D", "E", "F", "G", "G2", "H", "I", "J", "K", "M", "N"]
    assert pool["P2"]["H"] == D("2020-06-01")
    assert pool["P2"]["D"] == D("2020-01-10")


def test_one_index_event_per_person_per_programme(con):
    assert rows(con, """
        SELECT count(*), count(DISTINCT (programme_id, person_id)) FROM analysis.cohort
    """) == [(6 + 7 + 14, 6 + 7 + 14)]


def test_index_quarter_labels_the_cohort_period(con):
    assert rows(con, """
        SELECT person_id, index_type, index_quarter FROM analysis.cohort
        WHERE programme_id = 'P1' AND person_id IN ('A', 'B', 'J') ORDER BY person_id
    """) == [
        ("A", "custody_release", "2020Q1"),
        ("B", "community_sentence", "2020Q1"),
        ("J", "custody_release", "2023Q4"),
    ]


def test_comparison_index_event_keeps_the_type_and_quarter_of_the_earliest_eligible_event(make_settings):
    # Q's events, inserted latest first: 2018-12-31 (before the cohort period), 2019-02-01 with no
    # index type, 2020-05-01 (community_sentence). The pool row is the 2019-02-01 event with its
    # own (missing) type, not a later event's type.
    connection = warehouse.connect(make_settings())
    create_staging_tables(connection)
    insert(connection, "programmes", [
        {"programme_id": "P1", "name": "One", "programme_type": "peer_mentoring", "provider": "X"}])
    insert(connection, "people", [person("Q")])
    insert(connection, "index_events", [
        index_event("Q", "2020-05-01", index_type="community_sentence"),
        index_event("Q", "2019-02-01", index_type=None),
        index_event("Q", "2018-12-31", index_type="custody_release"),
    ])
    analysis.build_table(connection, "enrolment_links")
    analysis.build_table(connection, "cohort")
    assert rows(connection, "SELECT person_id, treated, index_date, index_type, index_quarter FROM analysis.cohort") \
        == [("Q", False, D("2019-02-01"), None, "2019Q1")]
    connection.close()


# --- fixed-window measures ----------------------------------------------------------------

def test_offence_on_index_date_counts_and_offence_before_does_not(con):
    # A: a1 committed the day before the index date, a2 on the index date itself.
    m = measure(con, "P1", "A", 12)
    assert (m["complete"], m["reoffended"], m["frequency"], m["days_to_first"]) == (True, 1, 1, 0)
    assert m["custodial_reoffence"] == 0  # a1 (custody) was before the index date
    assert m["most_serious_severity"] == 2  # a2's severity, not a1's 3


def test_offence_committed_before_index_but_proven_after_is_not_a_reoffence(con):
    # B's b0 was committed 2019-12-01, proven 2020-02-01 (after the index 2020-01-15):
    # nothing counts in the 6-month window ending 2020-07-15.
    m = measure(con, "P1", "B", 6)
    assert (m["window_end"], m["reoffended"], m["frequency"]) == (D("2020-07-15"), 0, 0)


def test_proof_inside_and_after_the_waiting_period(con):
    # B, index 2020-01-15. 12-month window: offences committed before 2021-01-15, proven on or
    # before 2020-01-15 + 18 months = 2021-07-15.
    #   b1 committed 2020-12-01, proven 2021-07-15 (the deadline itself): counts
    #   b2 committed 2020-12-02, proven 2021-07-16 (one day late): does not
    #   b3 committed 2021-01-15 (the window end, excluded), proven 2021-02-01: does not
    m = measure(con, "P1", "B", 12)
    assert m["proof_deadline"] == D("2021-07-15")
    assert (m["reoffended"], m["frequency"]) == (1, 1)
    # days from 2020-01-15 to 2020-12-01: 17 (rest of Jan) + 29 + 31 + 30 + 31 + 30 + 31 + 31
    # + 30 + 31 + 30 (Feb..Nov, leap year) + 0 = 321
    assert m["days_to_first"] == 321
    # 24-month window (ends 2022-01-15, proof by 2022-07-15): all three count.
    assert measure(con, "P1", "B", 24)["frequency"] == 3


def test_first_eligible_index_event_is_followed_up(con):
    # C is followed from 2020-02-01: c1 (2021-06-01) is outside the 12-month window
    # (ends 2021-02-01) and inside the 24-month one (ends 2022-02-01).
    assert measure(con, "P1", "C", 12)["frequency"] == 0
    assert measure(con, "P1", "C", 24)["frequency"] == 1


def test_frequency_custody_and_severity_over_several_reoffences(con):
    # L, index 2020-01-01: l1 (sev 2, community), l2 (sev 4, fine), l3 (sev 3, custody) in the
    # first 12 months; l4 (sev 5, custody) in the second year.
    six, twelve, twenty_four = (measure(con, "P2", "L", w) for w in (6, 12, 24))
    # 6 months end 2020-07-01: l1 and l2 only, neither custodial.
    assert (six["frequency"], six["custodial_reoffence"], six["most_serious_severity"]) == (2, 0, 4)
    assert (twelve["frequency"], twelve["custodial_reoffence"], twelve["most_serious_severity"]) == (3, 1, 4)
    assert twelve["days_to_first"] == 31  # 2020-01-01 to 2020-02-01
    assert (twenty_four["frequency"], twenty_four["most_serious_severity"]) == (4, 5)
    # The same person measured as comparison for P1 gets the same numbers.
    assert measure(con, "P1", "L", 12)["frequency"] == 3


def test_person_without_offences(con):
    m = measure(con, "P1", "K", 12)
    assert (m["complete"], m["reoffended"], m["frequency"], m["custodial_reoffence"]) == (True, 0, 0, 0)
    assert (m["days_to_first"], m["most_serious_severity"]) == (None, None)


def test_incomplete_windows_are_excluded_not_counted_as_non_reoffending(con):
    # I, index 2024-03-01, custodial reoffence 2024-05-01 proven 2024-06-01.
    # 6 months: proof deadline 2025-03-01 <= cut-off 2025-06-30, complete.
    six = measure(con, "P1", "I", 6)
    assert (six["complete"], six["reoffended"], six["custodial_reoffence"]) == (True, 1, 1)
    # 12 months: proof deadline 2025-09-01 > cut-off: excluded, every measure NULL, even
    # though a reoffence is already known.
    twelve = measure(con, "P1", "I", 12)
    assert twelve["complete"] is False
    for name in ("reoffended", "frequency", "days_to_first", "custodial_reoffence", "most_serious_severity"):
        assert twelve[name] is None, name
    # J, index 2023-12-31: 31 Dec + 18 months = 30 Jun 2025 (no 31 June) = the cut-off: complete.
    j = measure(con, "P1", "J", 12)
    assert (j["proof_deadline"], j["complete"], j["reoffended"]) == (D("2025-06-30"), True, 0)


def test_exclusions_are_counted(con):
    # P1 pool: B, C, I, J, K, L, M.
    #  6 months (proof by index + 12 months): all complete (M: 2025-06-01).
    # 12 months (proof by index + 18 months): I (2025-09-01) and M (2025-12-01) excluded.
    # 24 months (proof by index + 30 months): I, J and M excluded.
    assert rows(con, """
        SELECT window_months, people, complete_people, excluded_incomplete
        FROM analysis.follow_up_completeness
        WHERE programme_id = 'P1' AND NOT treated ORDER BY window_months
    """) == [(6, 7, 7, 0), (12, 7, 5, 2), (24, 7, 4, 3)]


# --- survival pair --------------------------------------------------------------------------

def test_survival_event_and_censoring(con):
    survival = dict(
        (person_id, (time_days, event)) for person_id, time_days, event in rows(
            con, "SELECT person_id, time_days, event FROM analysis.survival WHERE programme_id = 'P1'"
        )
    )
    assert survival["A"] == (0, 1)      # offence on the index date
    assert survival["B"] == (321, 1)    # b1 committed 2020-12-01, proven before the cut-off
    # C, from 2020-02-01 to c1 on 2021-06-01: 366 (to 2021-02-01, leap year) + 28 + 31 + 30 + 31
    assert survival["C"] == (486, 1)
    # K has no offences: censored at the cut-off, 2021-06-01 to 2025-06-30 = 4 * 365 + 1 + 29
    assert survival["K"] == (1490, 0)
    # M's offence was committed before the cut-off but proven after it: censored,
    # 2024-06-01 to 2025-06-30 = 365 + 29.
    assert survival["M"] == (394, 0)
    # I: i1 committed 2024-05-01 = 61 days after 2024-03-01.
    assert survival["I"] == (61, 1)


# --- covariates and engagement --------------------------------------------------------------

def test_negative_controls_count_offending_before_the_index_date(con):
    # A: offence the day before the index date, proven that day; the one on the index date is not before it.
    assert one_row(con, "negative_controls", programme_id="P1", person_id="A") | {"index_date": None} == {
        "programme_id": "P1", "person_id": "A", "treated": True, "index_date": None,
        "pre_offences_12": 1, "pre_offended_24_12": 0}
    # B: committed before the index date but proven after it: not known at the index date.
    assert one_row(con, "negative_controls", programme_id="P2", person_id="B")["pre_offences_12"] == 0
    # K (index 2021-06-01): offences 2019-05-31 (outside 24 months), 2020-01-01 (24 to 12 months before),
    # 2020-06-01 (exactly 12 months before: inside), 2020-07-01, 2021-05-31, and 2021-05-01 proven
    # after the index date.
    insert(con, "offences", [
        offence("k0", "K", "2019-05-31", "2019-07-01"), offence("k1", "K", "2020-01-01", "2020-03-01"),
        offence("k2", "K", "2020-06-01", "2020-07-01"), offence("k3", "K", "2020-07-01", "2020-08-01"),
        offence("k4", "K", "2021-05-31", "2021-05-31"), offence("k5", "K", "2021-05-01", "2021-06-10"),
    ])
    assert analysis.build_table(con, "negative_controls") == 15  # stored once per person and index date
    k = one_row(con, "negative_controls", programme_id="P1", person_id="K")
    assert (k["pre_offences_12"], k["pre_offended_24_12"]) == (3, 1)


def test_covariates_from_offence_history(con):
    a = one_row(con, "covariates", programme_id="P1", person_id="A")
    # a1 committed and proven 2020-02-29, the day before the index date, by custody.
    assert (a["prior_proven_offences"], a["prior_custodial_sentences"]) == (1, 1)
    assert a["years_since_first_offence"] == pytest.approx(1 / 365.25)
    assert (a["age_at_index"], a["female"], a["region"]) == (2020 - 1990, True, "wales")
    assert a["covariates_complete"] is True

    c = one_row(con, "covariates", programme_id="P1", person_id="C")
    # c0 committed 2018-01-01: 730 + 31 days before the index date 2020-02-01.
    assert (c["prior_proven_offences"], c["prior_custodial_sentences"]) == (1, 1)
    assert c["years_since_first_offence"] == pytest.approx(761 / 365.25)
    assert c["female"] is False

    # B's only earlier offence was proven after the index date: no prior history, 0 years.
    b = one_row(con, "covariates", programme_id="P1", person_id="B")
    assert (b["prior_proven_offences"], b["prior_custodial_sentences"], b["years_since_first_offence"]) == (0, 0, 0.0)
    assert b["index_type"] == "community_sentence"


def test_missing_covariates_are_left_null_and_flagged(con):
    incomplete = rows(con, """
        SELECT programme_id, person_id, age_at_index, region, female, risk_score
        FROM analysis.covariates WHERE NOT covariates_complete ORDER BY programme_id, person_id
    """)
    # K has no row in people; N has no risk score.
    assert incomplete == [
        ("P1", "K", None, None, None, 50.0),
        ("P1", "N", 30, "london", False, None),
        ("P2", "K", None, None, None, 50.0),
        ("P2", "N", 30, "london", False, None),
    ]


def test_unknown_configured_covariate_is_named(make_settings):
    settings = make_settings(covariates={"numeric": ["age_at_index", "previous_convictions"]})
    connection = warehouse.connect(settings)
    load_scenario(connection)
    with pytest.raises(ValueError, match=r"\['previous_convictions'\] are not columns of analysis.covariates"):
        analysis.build_analysis(connection)
    connection.close()


def test_no_configured_covariates_means_everyone_is_complete(make_settings):
    connection = warehouse.connect(make_settings(covariates={"numeric": [], "binary": [], "categorical": []}))
    load_scenario(connection)
    analysis.build_analysis(connection)
    assert rows(connection, "SELECT count(*), count(*) FILTER (WHERE covariates_complete) FROM analysis.covariates") \
        == [(27, 27)]
    connection.close()


def test_engagement(con):
    assert rows(con, """
        SELECT person_id, sessions_offered, sessions_attended, attendance_share, completed, status
        FROM analysis.engagement WHERE programme_id = 'P1' ORDER BY person_id
    """) == [
        ("A", 10, 7, 0.7, True, "completed"),
        ("D", 0, 0, None, False, "withdrawn"),  # no sessions offered: no share
        ("F", 10, 7, 0.7, True, "completed"),
        ("G", 10, 7, 0.7, True, "completed"),
        ("N", 10, 7, 0.7, False, "ongoing"),
    ]


# --- attrition ------------------------------------------------------------------------------

def test_attrition(con):
    table = rows(con, """
        SELECT programme_id, cohort_group, step, people, lost
        FROM analysis.attrition ORDER BY programme_id, cohort_group DESC, step_number
    """)
    assert table == [
        # Enrolled in P1: A, D, E, F, G, G2, H, N. E and G2 start outside every enrolment window;
        # H's only linked event is before the cohort period; N has no risk score.
        ("P1", "participants", "enrolled", 8, None),
        ("P1", "participants", "linked_to_index_event", 6, 2),
        ("P1", "participants", "eligible_index_event", 5, 1),
        ("P1", "participants", "complete_follow_up", 5, 0),
        ("P1", "participants", "covariate_risk_score", 4, 1),
        ("P1", "participants", "analysed", 4, 0),
        # All 15 people have an eligible index event; the 8 enrolled in P1 leave the pool;
        # I and M have incomplete 12-month follow-up; K has no people row, so age_at_index (the
        # first configured covariate) is missing.
        ("P1", "comparison", "eligible_index_event", 15, None),
        ("P1", "comparison", "never_enrolled", 7, 8),
        ("P1", "comparison", "complete_follow_up", 5, 2),
        ("P1", "comparison", "covariate_age_at_index", 4, 1),
        ("P1", "comparison", "analysed", 4, 0),
        ("P2", "participants", "enrolled", 1, None),
        ("P2", "participants", "linked_to_index_event", 1, 0),
        ("P2", "participants", "eligible_index_event", 1, 0),
        ("P2", "participants", "complete_follow_up", 1, 0),
        ("P2", "participants", "analysed", 1, 0),
        # P2 pool: everyone but L; I and M incomplete; K (age_at_index) and N (risk_score)
        # missing covariates, counted in the configured order.
        ("P2", "comparison", "eligible_index_event", 15, None),
        ("P2", "comparison", "never_enrolled", 14, 1),
        ("P2", "comparison", "complete_follow_up", 12, 2),
        ("P2", "comparison", "covariate_age_at_index", 11, 1),
        ("P2", "comparison", "covariate_risk_score", 10, 1),
        ("P2", "comparison", "analysed", 10, 0),
    ]
    reasons = dict(rows(con, """
        SELECT step, reason FROM analysis.attrition WHERE programme_id = 'P1' AND cohort_group = 'participants'
    """))
    assert reasons["enrolled"] is None
    assert reasons["linked_to_index_event"] == \
        "no enrolment starts between 90 days before and 180 days after an index event"
    assert reasons["eligible_index_event"] == \
        "every linked index event lies outside the cohort period 2019-01-01 to 2024-12-31"
    assert reasons["complete_follow_up"] == \
        "the 12-month window plus 6-month waiting period ends after the data cut-off 2025-06-30"
    assert reasons["covariate_risk_score"] == \
        "risk_score is missing (covariates are complete_case unless covariates.missing says otherwise)"
    assert reasons["analysed"] is None


def test_missing_indicator_covariate_removes_no_one(make_settings):
    settings = make_settings(covariates={"missing": {"risk_score": "missing_indicator"}})
    connection = warehouse.connect(settings)
    load_scenario(connection)
    analysis.build_analysis(connection)
    # N (no risk score) is kept: only K, without a people row, still misses covariates.
    assert rows(connection, """
        SELECT programme_id, person_id, missing_covariate FROM analysis.covariates
        WHERE NOT covariates_complete ORDER BY ALL""") == [("P1", "K", "age_at_index"), ("P2", "K", "age_at_index")]
    assert rows(connection, """
        SELECT step, people, lost FROM analysis.attrition
        WHERE programme_id = 'P1' AND cohort_group = 'participants' AND step_number >= 4 ORDER BY step_number
    """) == [("complete_follow_up", 5, 0), ("analysed", 5, 0)]
    connection.close()


# --- Dagster wiring -------------------------------------------------------------------------

def test_dagster_assets_build_the_analysis_tables(make_settings):
    settings = make_settings()
    connection = warehouse.connect(settings)
    load_scenario(connection)
    connection.close()

    result = dg.materialize(
        analysis_assets,
        resources={"warehouse": Warehouse(config_file=str(settings.source))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    rows_by_asset = {
        event.asset_key.path[1]: event.step_materialization_data.materialization.metadata["rows"].value
        for event in result.get_asset_materialization_events()
    }
    # 8 enrolment-event pairs (A, D twice, F, G, H, N, L); 27 programme x person rows
    # (P1: 5 + 7, P2: 1 + 14) at 15 people and index dates, which covariates, measures (three
    # windows each), negative_controls and survival store once; 2 programmes x 2 groups x 3 windows;
    # 9 attrition steps per programme and 4 covariate steps; 6 participants.
    assert rows_by_asset == {
        "enrolment_links": 8, "cohort": 27, "covariates": 15, "engagement": 6, "measures": 45,
        "follow_up_completeness": 12, "negative_controls": 15, "survival": 15, "attrition": 22,
    }
    tables = {event.asset_key.path[1]: event.step_materialization_data.materialization.metadata["table"].value
              for event in result.get_asset_materialization_events()}
    assert tables["measures"] == "analysis.measures_by_index" and tables["cohort"] == "analysis.cohort"
    with warehouse.connect(settings, read_only=True) as con:
        assert con.execute("SELECT count(DISTINCT (person_id, index_date)) FROM analysis.cohort").fetchall() == [(15,)]
        # The views give every programme its rows.
        assert [con.execute(f"SELECT count(*) FROM analysis.{name}").fetchall()[0][0]
                for name in ("covariates", "measures", "negative_controls", "survival")] == [27, 81, 27, 27]


def test_missing_staging_table_is_named(make_settings):
    connection = warehouse.connect(make_settings())
    load_scenario(connection)
    connection.execute("DROP TABLE staging.offences")
    analysis.build_table(connection, "enrolment_links")
    analysis.build_table(connection, "cohort")
    with pytest.raises(RuntimeError, match=r"analysis.measures reads staging.offences, which the warehouse does not hold yet"):
        analysis.build_table(connection, "measures")
    connection.close()
