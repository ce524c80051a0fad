"""Validation: suites in sync with the contract, each rule family caught on the right rows,
quarantine moves, blocking thresholds, the data-quality record and the offline Data Docs."""
from __future__ import annotations

import gc
import json
import re

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from desist import validation
from desist.contract import TABLES

# ---------------------------------------------------------------------------------------------
# A small extract that meets every expectation: 40 people with one index event and one offence
# each, 10 of them enrolled (baseline and exit assessments), 2 programmes, 2 mentors.

N_PEOPLE = 40
N_ENROLLED = 10


def clean_tables() -> dict[str, pd.DataFrame]:
    people = [f"S{i:03d}" for i in range(1, N_PEOPLE + 1)]
    enrolled = people[:N_ENROLLED]
    programme_of = ["PR1" if i % 2 == 0 else "PR2" for i in range(N_ENROLLED)]
    return {
        "people": pd.DataFrame({
            "person_id": people,
            "sex": ["female", "male"] * (N_PEOPLE // 2),
            "birth_year": [1970 + i % 30 for i in range(N_PEOPLE)],
            "ethnic_group": ["white"] * N_PEOPLE,
            "region": ["london"] * N_PEOPLE,
        }),
        "programmes": pd.DataFrame({
            "programme_id": ["PR1", "PR2"], "name": ["Steady Steps", "Side by Side"],
            "programme_type": ["structured_mentoring", "peer_mentoring"],
            "provider": ["Northern Trust", "Second Chance"],
        }),
        "mentors": pd.DataFrame({
            "mentor_id": ["M1", "M2"], "programme_id": ["PR1", "PR2"], "age_band": ["35-44", "25-34"],
            "sex": ["female", "male"], "lived_experience": [True, False],
            "trained_date": pd.to_datetime(["2018-01-01", "2018-06-01"]),
        }),
        "index_events": pd.DataFrame({
            "person_id": people,
            "index_date": pd.Timestamp("2020-01-01") + pd.to_timedelta(range(N_PEOPLE), unit="D"),
            "index_type": ["custody_release", "community_sentence"] * (N_PEOPLE // 2),
            "index_offence_group": ["theft"] * N_PEOPLE,
            "sentence_months": [12.0] * N_PEOPLE,
            "prior_offences": [1] * N_PEOPLE, "prior_custody": [0] * N_PEOPLE,
            "age_first_offence": [18] * N_PEOPLE, "risk_score": [50.0] * N_PEOPLE,
            "employment_at_index": [True] * N_PEOPLE, "accommodation_at_index": [False] * N_PEOPLE,
        }),
        "offences": pd.DataFrame({
            "offence_id": [f"O{i:03d}" for i in range(1, N_PEOPLE + 1)],
            "person_id": people,
            "offence_date": pd.to_datetime(["2019-06-01"] * N_PEOPLE),
            "proven_date": pd.to_datetime(["2019-07-01"] * N_PEOPLE),
            "offence_group": ["theft"] * N_PEOPLE, "severity": [2] * N_PEOPLE,
            "disposal": ["fine"] * N_PEOPLE,
        }),
        "participation": pd.DataFrame({
            "person_id": enrolled, "programme_id": programme_of,
            "start_date": pd.to_datetime(["2020-02-01"] * N_ENROLLED),
            "end_date": pd.to_datetime(["2020-06-01"] * N_ENROLLED),
            "status": ["completed"] * N_ENROLLED,
            "sessions_offered": [10] * N_ENROLLED, "sessions_attended": [8] * N_ENROLLED,
            "mentor_id": ["M1" if p == "PR1" else "M2" for p in programme_of],
        }),
        "assessments": pd.DataFrame({
            "person_id": enrolled * 2, "programme_id": programme_of * 2,
            "assessment_date": pd.to_datetime(["2020-02-01"] * N_ENROLLED + ["2020-06-01"] * N_ENROLLED),
            "stage": ["baseline"] * N_ENROLLED + ["exit"] * N_ENROLLED,
            "employment_status": ["unemployed"] * N_ENROLLED + ["employed"] * N_ENROLLED,
            "accommodation_status": ["settled"] * (2 * N_ENROLLED),
            "life_skills_score": [4] * N_ENROLLED + [6] * N_ENROLLED,
            "community_integration_score": [5] * (2 * N_ENROLLED),
        }),
        "feedback": pd.DataFrame({
            "response_id": [f"R{i:02d}" for i in range(1, 11)],
            "programme_id": ["PR1", "PR2"] * 5,
            "respondent_type": ["participant", "mentor", "partner", "staff", "participant"] * 2,
            "response_date": pd.to_datetime(["2020-07-01"] * 10),
            "satisfaction": [4] * 10, "relationship_quality": [4] * 10,
        }),
    }


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture
def warehouse(settings):
    con = duckdb.connect(str(settings.paths.warehouse))
    yield con
    con.close()


def check_one(con, settings, table: str, tables: dict[str, pd.DataFrame]) -> validation.TableValidation:
    validation.stage_frames(con, tables)
    runner = validation.SuiteRunner(validation.suite_parameters(settings))
    checked, _ = validation.validate_table(con, runner, table, settings)
    return checked


def failing(checked: validation.TableValidation) -> dict[tuple[str, str], list[int]]:
    """(expectation, columns) -> source rows (1-based, as stage_frames numbers them) that failed."""
    return {(o.expectation, o.column_name): sorted(int(r) + 1 for r in o.rows)
            for o in checked.outcomes if o.unexpected_count}


# ---------------------------------------------------------------------------------------------
# The suites


def test_committed_suites_match_the_contract():
    built = validation.build_suites()
    assert sorted(p.stem for p in validation.EXPECTATIONS_DIR.glob("*.json")) == sorted(TABLES)
    for name, suite in built.items():
        committed = (validation.EXPECTATIONS_DIR / f"{name}.json").read_text()
        assert committed == validation.suite_text(suite), (
            f"expectations/{name}.json is out of date: run `python -m desist.validation`")


def test_great_expectations_accepts_every_suite_and_severities_agree():
    import great_expectations as gx

    for name in TABLES:
        suite = validation.load_suite(name)
        loaded = gx.ExpectationSuite(**json.loads(json.dumps(suite)))
        assert len(loaded.expectations) == len(suite["expectations"])
        for expectation, declared in zip(loaded.expectations, suite["expectations"], strict=True):
            assert expectation.severity.value == declared["meta"]["severity"]
            assert expectation.expectation_type == declared["type"]


def test_suites_cover_each_rule_family():
    suites = validation.build_suites()
    kinds = {name: {(e["type"], tuple(e["meta"]["columns"]), e["meta"]["severity"]) for e in s["expectations"]}
             for name, s in suites.items()}
    assert ("expect_compound_columns_to_be_unique", ("person_id", "index_date"), "critical") in kinds["index_events"]
    assert ("expect_column_values_to_be_unique", ("offence_id",), "critical") in kinds["offences"]
    assert ("expect_column_values_to_be_in_set", ("mentor_id",), "critical") in kinds["participation"]
    assert ("expect_column_pair_values_a_to_be_greater_than_b", ("sessions_attended", "sessions_offered"),
            "critical") in kinds["participation"]
    assert ("expect_column_values_to_not_be_null", ("relationship_quality",), "warning") in kinds["feedback"]
    assert ("expect_column_values_to_be_in_set", ("trained_date",), "warning") in kinds["mentors"]
    # Every reference in the contract is checked, with the reference-rate threshold.
    for name, table in TABLES.items():
        references = [e for e in suites[name]["expectations"] if e["meta"]["rule"] == "reference"]
        assert sorted(e["meta"]["columns"][0] for e in references) == sorted(table.references)
        assert all(e["kwargs"]["mostly"] == {"$PARAMETER": "min_reference_rate"} for e in references)


def test_a_suite_with_an_unknown_severity_is_refused(tmp_path):
    suite = validation.build_suite(TABLES["programmes"])
    suite["expectations"][0]["meta"]["severity"] = "fatal"
    (tmp_path / "programmes.json").write_text(json.dumps(suite))
    with pytest.raises(ValueError, match=r"programmes.json: expectation 0 \(expect_column_values_to_be_unique\) "
                                         r"has meta.severity 'fatal'"):
        validation.load_suite("programmes", tmp_path)


def test_parents_are_validated_before_the_tables_that_reference_them():
    order = validation.validation_order()
    assert sorted(order) == sorted(TABLES)
    for name, table in TABLES.items():
        for target, _ in table.references.values():
            assert order.index(target) < order.index(name), (name, target)


# ---------------------------------------------------------------------------------------------
# Each suite on a clean extract, and each rule family failing on the right rows


def test_clean_extract_meets_every_expectation(warehouse, settings):
    validation.stage_frames(warehouse, clean_tables())
    run = validation.validate_warehouse(warehouse, settings, run_id="clean")
    assert set(run.tables) == set(TABLES)
    for name, checked in run.tables.items():
        assert [o.label for o in checked.outcomes if not o.success or o.unexpected_count] == [], name
        assert checked.row_count == len(clean_tables()[name])
    assert not run.blocked
    assert run.quarantined == dict.fromkeys(TABLES, 0)
    statuses = warehouse.sql("SELECT status, count(*) FROM results.data_quality GROUP BY status").fetchall()
    expectations = sum(len(validation.load_suite(t)["expectations"]) for t in TABLES)
    assert statuses == [("passed", expectations + len(TABLES))]
    # Nothing keeps the validated frames once the validation is over (Great Expectations' global
    # project would otherwise hold the run's context, and every frame in it, until the process ends).
    from great_expectations.data_context import EphemeralDataContext

    gc.collect()
    assert [o for o in gc.get_objects() if isinstance(o, EphemeralDataContext)] == []


def mutate(table: str, row: int, **values) -> dict[str, pd.DataFrame]:
    tables = clean_tables()
    for column, value in values.items():
        tables[table][column] = tables[table][column].astype(object)
        tables[table].at[row, column] = value
    return tables


def duplicate_row(table: str, source: int, target: int) -> dict[str, pd.DataFrame]:
    tables = clean_tables()
    frame = tables[table]
    for column in TABLES[table].key:
        frame.at[target, column] = frame.at[source, column]
    return tables


FAILURES = [
    # key uniqueness (both rows of a repeated key fail)
    ("people", duplicate_row("people", 1, 4), {("expect_column_values_to_be_unique", "person_id"): [2, 5]}),
    ("programmes", duplicate_row("programmes", 0, 1),
     {("expect_column_values_to_be_unique", "programme_id"): [1, 2]}),
    ("index_events", duplicate_row("index_events", 2, 3),
     {("expect_compound_columns_to_be_unique", "person_id,index_date"): [3, 4]}),
    ("offences", duplicate_row("offences", 0, 9), {("expect_column_values_to_be_unique", "offence_id"): [1, 10]}),
    ("mentors", duplicate_row("mentors", 0, 1), {("expect_column_values_to_be_unique", "mentor_id"): [1, 2]}),
    ("participation", duplicate_row("participation", 0, 2),
     {("expect_compound_columns_to_be_unique", "person_id,programme_id,start_date"): [1, 3]}),
    ("assessments", duplicate_row("assessments", 0, 2),
     {("expect_compound_columns_to_be_unique", "person_id,programme_id,stage"): [1, 3]}),
    ("feedback", duplicate_row("feedback", 3, 4), {("expect_column_values_to_be_unique", "response_id"): [4, 5]}),
    # nulls
    ("people", mutate("people", 6, sex=None), {("expect_column_values_to_not_be_null", "sex"): [7]}),
    ("programmes", mutate("programmes", 1, provider=None), {("expect_column_values_to_not_be_null", "provider"): [2]}),
    ("offences", mutate("offences", 3, proven_date=None), {("expect_column_values_to_not_be_null", "proven_date"): [4]}),
    ("mentors", mutate("mentors", 1, lived_experience=None),
     {("expect_column_values_to_not_be_null", "lived_experience"): [2]}),
    # references
    ("index_events", mutate("index_events", 5, person_id="S999"),
     {("expect_column_values_to_be_in_set", "person_id"): [6]}),
    ("offences", mutate("offences", 7, person_id="S999"), {("expect_column_values_to_be_in_set", "person_id"): [8]}),
    ("participation", mutate("participation", 4, mentor_id="M9"),
     {("expect_column_values_to_be_in_set", "mentor_id"): [5]}),
    ("mentors", mutate("mentors", 0, programme_id="PR9"), {("expect_column_values_to_be_in_set", "programme_id"): [1]}),
    ("assessments", mutate("assessments", 11, person_id="S999"),
     {("expect_column_values_to_be_in_set", "person_id"): [12]}),
    ("feedback", mutate("feedback", 2, programme_id="PR9"), {("expect_column_values_to_be_in_set", "programme_id"): [3]}),
    # dates: after the cut-off (2025-06-30), before 1900, before the person's birth year
    ("offences", mutate("offences", 2, proven_date=pd.Timestamp("2025-07-01")),
     {("expect_column_values_to_be_between", "proven_date"): [3]}),
    ("feedback", mutate("feedback", 8, response_date=pd.Timestamp("1899-12-31")),
     {("expect_column_values_to_be_between", "response_date"): [9]}),
    ("participation", mutate("participation", 6, end_date=pd.Timestamp("2030-01-01")),
     {("expect_column_values_to_be_between", "end_date"): [7]}),
    ("offences", mutate("offences", 0, offence_date=pd.Timestamp("1960-05-01"), proven_date=pd.Timestamp("1960-06-01")),
     {("expect_column_values_to_be_in_set", "offence_date"): [1]}),
    # logical order
    ("offences", mutate("offences", 5, proven_date=pd.Timestamp("2019-05-31")),
     {("expect_column_pair_values_a_to_be_greater_than_b", "proven_date,offence_date"): [6]}),
    ("participation", mutate("participation", 1, end_date=pd.Timestamp("2020-01-31")),
     {("expect_column_pair_values_a_to_be_greater_than_b", "end_date,start_date"): [2]}),
    # exit (row 13) dated before baseline (row 3) of the same person and programme: both rows fail
    ("assessments", mutate("assessments", 12, assessment_date=pd.Timestamp("2020-01-15")),
     {("expect_column_values_to_be_in_set", "assessment_date,stage"): [3, 13]}),
    # domains
    ("people", mutate("people", 9, region="atlantis"), {("expect_column_values_to_be_in_set", "region"): [10]}),
    ("offences", mutate("offences", 4, disposal="prison"), {("expect_column_values_to_be_in_set", "disposal"): [5]}),
    ("programmes", mutate("programmes", 0, programme_type="boot_camp"),
     {("expect_column_values_to_be_in_set", "programme_type"): [1]}),
    ("assessments", mutate("assessments", 0, employment_status="astronaut"),
     {("expect_column_values_to_be_in_set", "employment_status"): [1]}),
    ("feedback", mutate("feedback", 0, respondent_type="funder"),
     {("expect_column_values_to_be_in_set", "respondent_type"): [1]}),
    ("mentors", mutate("mentors", 1, age_band="12-17"), {("expect_column_values_to_be_in_set", "age_band"): [2]}),
    ("index_events", mutate("index_events", 0, index_type="parole"),
     {("expect_column_values_to_be_in_set", "index_type"): [1]}),
    ("participation", mutate("participation", 3, status="paused"), {("expect_column_values_to_be_in_set", "status"): [4]}),
    # ranges
    ("people", mutate("people", 3, birth_year=2016), {("expect_column_values_to_be_between", "birth_year"): [4]}),
    ("assessments", mutate("assessments", 4, life_skills_score=11),
     {("expect_column_values_to_be_between", "life_skills_score"): [5]}),
    ("feedback", mutate("feedback", 5, satisfaction=0), {("expect_column_values_to_be_between", "satisfaction"): [6]}),
    ("index_events", mutate("index_events", 8, risk_score=100.5),
     {("expect_column_values_to_be_between", "risk_score"): [9]}),
    ("offences", mutate("offences", 8, severity=6), {("expect_column_values_to_be_between", "severity"): [9]}),
    # sessions attended <= offered
    ("participation", mutate("participation", 9, sessions_attended=11),
     {("expect_column_pair_values_a_to_be_greater_than_b", "sessions_attended,sessions_offered"): [10]}),
]


@pytest.mark.parametrize(("table", "tables", "expected"), FAILURES,
                         ids=[f"{t}-{next(iter(e))[0].removeprefix('expect_')}-{next(iter(e))[1]}"
                              for t, _, e in FAILURES])
def test_each_rule_family_fails_on_exactly_the_offending_rows(warehouse, settings, table, tables, expected):
    checked = check_one(warehouse, settings, table, tables)
    assert failing(checked) == expected
    assert sorted(int(r) + 1 for r in checked.failing_rows) == sorted({r for rows in expected.values() for r in rows})


def test_warnings_are_reported_and_never_block(warehouse, settings):
    tables = clean_tables()
    tables["feedback"]["relationship_quality"] = [4, None, None, 4, 4, 4, 4, 4, 4, 4]  # 80% filled: met
    tables["index_events"].loc[0, "index_date"] = pd.Timestamp("1975-03-01")  # born 1970: aged 5
    tables["mentors"].loc[1, "trained_date"] = pd.Timestamp("2020-03-01")  # first enrolment 2020-02-01
    validation.stage_frames(warehouse, tables)
    run = validation.validate_warehouse(warehouse, settings, run_id="warnings")
    assert not run.blocked
    assert run.tables["index_events"].warnings == [
        "index_events.index_date expect_column_values_to_be_between: age at the index date outside 10 to 100 "
        "years (1 of 40 rows)"]
    assert run.tables["mentors"].warnings == [
        "mentors.trained_date expect_column_values_to_be_in_set: the mentor was trained after their first "
        "enrolment started (1 of 2 rows)"]
    assert run.tables["feedback"].warnings == []
    assert run.quarantined == dict.fromkeys(TABLES, 0)
    rows = warehouse.sql("""
        SELECT table_name, column_name, severity, status, unexpected_count, unexpected_sample
        FROM results.data_quality WHERE severity = 'warning' AND unexpected_count > 0
        ORDER BY table_name, column_name""").fetchall()
    assert rows == [
        ("feedback", "relationship_quality", "warning", "passed", 2, "NULL (feedback.csv:2), NULL (feedback.csv:3)"),
        ("index_events", "index_date", "warning", "failed", 1, "5 (index_events.csv:1)"),
        ("mentors", "trained_date", "warning", "failed", 1, "False (mentors.csv:2)"),
    ]


def test_warning_on_a_mostly_empty_column(warehouse, settings):
    tables = clean_tables()
    tables["feedback"]["relationship_quality"] = [4, None, None, None, 4, 4, 4, 4, 4, 4]  # 70% < 80%
    checked = check_one(warehouse, settings, "feedback", tables)
    assert checked.warnings == ["feedback.relationship_quality expect_column_values_to_not_be_null: fewer than "
                                "80% of rows have a value (3 of 10 rows)"]
    assert not checked.blocked


# ---------------------------------------------------------------------------------------------
# Quarantine and blocking in the warehouse


def with_extra_people(tables: dict[str, pd.DataFrame], regions: list[str]) -> dict[str, pd.DataFrame]:
    """Append people with no other records (so quarantining them touches no other table)."""
    extra = pd.DataFrame({
        "person_id": [f"X{i}" for i in range(len(regions))], "sex": "female", "birth_year": 1980,
        "ethnic_group": "white", "region": regions,
    })
    tables["people"] = pd.concat([tables["people"], extra], ignore_index=True)
    return tables


def quarantine_rows(con) -> list[tuple]:
    return con.sql("""
        SELECT table_name, source_file, source_row, column_name, raw_value, reason, detail, stage
        FROM quarantine.rows ORDER BY table_name, source_row""").fetchall()


def test_failing_rows_move_to_quarantine_and_the_run_goes_on(warehouse, make_settings):
    settings = make_settings(validation={"min_reference_rate": 0.9, "max_failing_row_share": 0.1})
    tables = clean_tables()
    tables["offences"].loc[4, "proven_date"] = pd.Timestamp("2019-05-01")  # before the offence
    tables["offences"].loc[4, "disposal"] = "prison"  # and out of domain: one quarantine row, both problems
    tables["participation"].loc[2, "sessions_attended"] = 12
    tables["people"].loc[[20, 21], "person_id"] = "S021"  # repeated key: both rows go ...
    validation.stage_frames(warehouse, tables)
    run = validation.validate_warehouse(warehouse, settings, run_id="q1")

    assert not run.blocked
    # ... and so do the index events and offences of S021 and S022, no longer known people.
    assert run.quarantined == {**dict.fromkeys(TABLES, 0), "people": 2, "index_events": 2, "offences": 3,
                               "participation": 1}
    assert quarantine_rows(warehouse) == [
        ("index_events", "index_events.csv", 21, "person_id", "S021", "expect_column_values_to_be_in_set",
         "person_id: expect_column_values_to_be_in_set 'S021' (not found in people.person_id)", "validation"),
        ("index_events", "index_events.csv", 22, "person_id", "S022", "expect_column_values_to_be_in_set",
         "person_id: expect_column_values_to_be_in_set 'S022' (not found in people.person_id)", "validation"),
        ("offences", "offences.csv", 5, "disposal", "prison", "expect_column_values_to_be_in_set",
         "disposal: expect_column_values_to_be_in_set 'prison' (expected one of custody, community, fine, "
         "caution, other); proven_date,offence_date: expect_column_pair_values_a_to_be_greater_than_b "
         "'2019-05-01, 2019-06-01' (the offence is proven before it was committed)", "validation"),
        ("offences", "offences.csv", 21, "person_id", "S021", "expect_column_values_to_be_in_set",
         "person_id: expect_column_values_to_be_in_set 'S021' (not found in people.person_id)", "validation"),
        ("offences", "offences.csv", 22, "person_id", "S022", "expect_column_values_to_be_in_set",
         "person_id: expect_column_values_to_be_in_set 'S022' (not found in people.person_id)", "validation"),
        ("participation", "participation.csv", 3, "sessions_attended,sessions_offered", "12, 10",
         "expect_column_pair_values_a_to_be_greater_than_b",
         "sessions_attended,sessions_offered: expect_column_pair_values_a_to_be_greater_than_b '12, 10' "
         "(more sessions attended than offered)", "validation"),
        ("people", "people.csv", 21, "person_id", "S021", "expect_column_values_to_be_unique",
         "person_id: expect_column_values_to_be_unique 'S021' (the key repeats in another row)", "validation"),
        ("people", "people.csv", 22, "person_id", "S021", "expect_column_values_to_be_unique",
         "person_id: expect_column_values_to_be_unique 'S021' (the key repeats in another row)", "validation"),
    ]
    record = json.loads(warehouse.execute(
        "SELECT raw_record FROM quarantine.rows WHERE table_name = 'participation'").fetchall()[0][0])
    assert record == {"person_id": "S003", "programme_id": "PR1", "start_date": "2020-02-01",
                      "end_date": "2020-06-01", "status": "completed", "sessions_offered": 10,
                      "sessions_attended": 12, "mentor_id": "M1", "source_file": "participation.csv",
                      "source_row": 3}
    # The rows left staging; everything else stayed.
    counts = {t: warehouse.execute(f"SELECT count(*) FROM staging.{t}").fetchall()[0][0] for t in TABLES}
    assert counts == {t: len(f) - run.quarantined[t] for t, f in clean_tables().items()}
    assert warehouse.execute("SELECT count(*) FROM staging.offences WHERE source_row IN (5, 21, 22)").fetchall() == [(0,)]
    statuses = dict(warehouse.sql("""SELECT expectation || ' ' || column_name, status FROM results.data_quality
                                     WHERE table_name = 'offences' AND column_name IS NOT NULL
                                       AND unexpected_count > 0""").fetchall())
    assert statuses == {"expect_column_values_to_be_in_set person_id": "quarantined",
                        "expect_column_values_to_be_in_set disposal": "quarantined",
                        "expect_column_pair_values_a_to_be_greater_than_b proven_date,offence_date": "quarantined"}

    # A second run finds nothing more and keeps the quarantine as it was; the record grows per run.
    second = validation.validate_warehouse(warehouse, settings, run_id="q2")
    assert second.quarantined == dict.fromkeys(TABLES, 0)
    assert len(quarantine_rows(warehouse)) == 8
    per_run = warehouse.sql("SELECT run_id, count(*) FROM results.data_quality GROUP BY run_id ORDER BY run_id")
    expectations = sum(len(validation.load_suite(t)["expectations"]) for t in TABLES) + len(TABLES)
    assert per_run.fetchall() == [("q1", expectations), ("q2", expectations)]


def test_duckdb_refusing_to_hand_back_memory_does_not_stop_the_run(warehouse, make_settings, monkeypatch):
    """Between tables, DuckDB is asked to give memory back by lowering its limit; it refuses a limit
    below what it must keep (at 1,000,000 people: the rows validation's transaction already moved to
    quarantine). The refusal must neither stop the run nor abort the transaction holding the quarantine."""
    monkeypatch.setattr(validation, "HAND_BACK_LIMIT", "1KB")  # refused whenever DuckDB holds anything
    settings = make_settings(validation={"min_reference_rate": 0.9, "max_failing_row_share": 0.1})
    tables = clean_tables()
    tables["people"].loc[[20, 21], "person_id"] = "S021"
    validation.stage_frames(warehouse, tables)
    run = validation.validate_warehouse(warehouse, settings, run_id="refused")
    assert not run.blocked
    assert run.quarantined == {**dict.fromkeys(TABLES, 0), "people": 2, "index_events": 2, "offences": 2}
    assert warehouse.sql("SELECT table_name, source_row FROM quarantine.rows ORDER BY ALL").fetchall() == [
        ("index_events", 21), ("index_events", 22), ("offences", 21), ("offences", 22), ("people", 21), ("people", 22)]
    assert warehouse.sql("SELECT current_setting('memory_limit')").fetchall()[0][0] == "953.6 MiB"  # set again


def test_rows_back_in_staging_replace_their_old_quarantine_entry(warehouse, settings):
    tables = with_extra_people(clean_tables(), ["atlantis"])
    validation.stage_frames(warehouse, tables)
    validation.validate_warehouse(warehouse, settings, run_id="first")
    assert [r[:3] for r in quarantine_rows(warehouse)] == [("people", "people.csv", N_PEOPLE + 1)]
    # Ingest runs again on a corrected file: the row is back in staging and valid.
    validation.stage_frames(warehouse, with_extra_people(clean_tables(), ["wales"]))
    validation.validate_warehouse(warehouse, settings, run_id="second")
    assert quarantine_rows(warehouse) == []
    assert warehouse.execute("SELECT count(*) FROM staging.people").fetchall() == [(N_PEOPLE + 1,)]


def test_failing_share_at_the_threshold_does_not_block(warehouse, settings):
    tables = clean_tables()
    tables["people"].loc[[0, 1], "region"] = "atlantis"  # 2 of 40 = 5%: not more than max_failing_row_share
    checked = check_one(warehouse, settings, "people", tables)
    assert checked.failing_row_share == 0.05
    assert not checked.blocked


def test_too_many_failing_rows_block_and_leave_staging_untouched(warehouse, settings):
    tables = with_extra_people(clean_tables(), ["atlantis"] * 3)  # 3 of 43 = 6.98%
    tables["offences"].loc[0, "severity"] = 9  # a fixable row elsewhere is not moved either
    validation.stage_frames(warehouse, tables)
    run = validation.validate_warehouse(warehouse, settings, run_id="blocked")
    assert run.blocked
    assert run.blocking_reasons == [
        "people.region expect_column_values_to_be_in_set: 3 of 43 rows fail (6.98%, more than "
        "max_failing_row_share 5.00%)"]
    assert run.quarantined == dict.fromkeys(TABLES, 0)
    assert quarantine_rows(warehouse) == []
    assert warehouse.execute("SELECT count(*) FROM staging.people").fetchall() == [(N_PEOPLE + 3,)]
    assert warehouse.execute("SELECT count(*) FROM staging.offences").fetchall() == [(N_PEOPLE,)]
    recorded = warehouse.sql("""SELECT table_name, column_name, expectation, status, unexpected_count
                                FROM results.data_quality WHERE status <> 'passed' ORDER BY ALL""").fetchall()
    assert recorded == [
        ("offences", "severity", "expect_column_values_to_be_between", "failed", 1),
        ("people", "region", "expect_column_values_to_be_in_set", "failed", 3),
        ("people", None, "max_failing_row_share", "failed", 3),
    ]


def test_failing_rows_add_up_across_expectations(warehouse, settings):
    tables = clean_tables()
    tables["people"].loc[[0, 1], "region"] = "atlantis"  # 5% each, 10% together
    tables["people"].loc[[2, 3], "sex"] = "unknown"
    checked = check_one(warehouse, settings, "people", tables)
    assert [o.success for o in checked.outcomes if o.unexpected_count] == [True, True]
    assert checked.blocking_reasons == [
        "people: 4 of 40 rows (10.00%) fail critical expectations, more than max_failing_row_share 5.00%: "
        "people.sex expect_column_values_to_be_in_set (2 rows); "
        "people.region expect_column_values_to_be_in_set (2 rows)"]


def test_a_reference_rate_below_the_minimum_blocks(warehouse, settings):
    tables = clean_tables()
    tables["offences"].loc[0, "person_id"] = "S999"  # 39 of 40 = 97.5% resolve, below 99%
    checked = check_one(warehouse, settings, "offences", tables)
    assert checked.blocking_reasons == [
        "offences.person_id expect_column_values_to_be_in_set: not found in people.person_id for 1 of 40 rows; "
        "97.50% resolve, below min_reference_rate"]


def test_dates_beyond_the_pandas_range_fail_and_keep_their_true_value(warehouse, make_settings):
    settings = make_settings(validation={"max_failing_row_share": 0.5})
    tables = clean_tables()
    validation.stage_frames(warehouse, tables)
    warehouse.execute("UPDATE staging.feedback SET response_date = DATE '0099-01-01' WHERE source_row = 2")
    warehouse.execute("UPDATE staging.feedback SET response_date = DATE '9999-12-31' WHERE source_row = 3")
    run = validation.validate_warehouse(warehouse, settings, run_id="far dates")
    assert run.quarantined["feedback"] == 2
    assert warehouse.sql("""SELECT source_row, raw_value FROM quarantine.rows
                            WHERE table_name = 'feedback' ORDER BY source_row""").fetchall() == [
        (2, "0099-01-01"), (3, "9999-12-31")]


def test_data_docs_are_an_offline_site(warehouse, settings):
    tables = with_extra_people(clean_tables(), ["atlantis"])
    validation.stage_frames(warehouse, tables)
    folder = settings.paths.reports / "data-quality"
    run = validation.validate_warehouse(warehouse, settings, run_id="docs-run", data_docs=folder)
    assert run.data_docs == folder / "index.html"
    index = run.data_docs.read_text()
    assert "docs-run" in index
    assert re.findall(r"<tr><td>(\w+)</td><td class='(\w+)'>", index) == [
        (name, "passed") for name in validation.validation_order()]
    assert "<td>1</td>" in index  # people: one row quarantined
    pages = list(folder.rglob("*.html"))
    assert len(list((folder / "expectations").glob("*.html"))) == len(TABLES)
    assert len(list((folder / "validations").rglob("*.html"))) == len(TABLES)
    loads = re.compile(r"<(script|link|img)[^>]*(src|href)=\"https?://|url\(['\"]?https?://", re.IGNORECASE)
    assert [p.name for p in pages if loads.search(p.read_text())] == []
    people_page = next((folder / "validations" / "people").rglob("*.html")).read_text()
    # people is person-level: the failing value is not shown, its count is
    assert "atlantis" not in people_page
    assert "≈2.439% unexpected" in people_page
    assert [p.name for p in pages if re.search(r"href=\"(https?:)?//", p.read_text())] == []  # no outside links
    assert (folder / "static" / "bootstrap.min.css").stat().st_size > 100_000


def test_rows_are_validated_in_file_and_row_order_however_staging_stores_them(warehouse, settings, monkeypatch):
    # Staging stored backwards, two files, read in batches of 7 rows whose dictionaries differ.
    monkeypatch.setattr(validation, "READ_BATCH_ROWS", 7)
    tables = clean_tables()
    offences = tables["offences"]
    offences["source_file"] = ["offences_b.csv" if i % 3 == 0 else "offences_a.csv" for i in range(len(offences))]
    offences["source_row"] = offences.groupby("source_file").cumcount() + 1
    offences["disposal"] = offences["disposal"].astype(object)
    offences.loc[9, "disposal"] = "prison"  # offences_b.csv row 4
    offences.loc[13, "disposal"] = "jail"  # offences_a.csv row 9
    tables["offences"] = offences.iloc[::-1].reset_index(drop=True)
    validation.stage_frames(warehouse, tables)
    runner = validation.SuiteRunner(validation.suite_parameters(settings))
    checked, sources = validation.validate_table(warehouse, runner, "offences", settings)

    assert list(zip(sources["source_file"], sources["source_row"])) == sorted(
        zip(offences["source_file"], offences["source_row"]))
    domain = next(o for o in checked.outcomes if o.column_name == "disposal" and o.rule == "domain")
    assert domain.unexpected_count == 2
    assert domain.sample == ["jail (offences_a.csv:9)", "prison (offences_b.csv:4)"]
    assert [(sources["source_file"].iat[p], int(sources["source_row"].iat[p])) for p in domain.rows] == [
        ("offences_a.csv", 9), ("offences_b.csv", 4)]
    assert [o.label for o in checked.outcomes if o.unexpected_count] == [
        "offences.disposal expect_column_values_to_be_in_set"]


def test_expectations_split_over_many_frames_find_what_one_frame_finds(tmp_path, make_settings, monkeypatch):
    """A large table reaches Great Expectations a few columns at a time; the outcomes must not change."""
    settings = make_settings(validation={"min_reference_rate": 0.9, "max_failing_row_share": 0.1})
    tables = clean_tables()
    tables["offences"].loc[4, "proven_date"] = pd.Timestamp("2019-05-01")
    tables["offences"].loc[4, "disposal"] = "prison"
    tables["participation"].loc[2, "sessions_attended"] = 12
    tables["people"].loc[[20, 21], "person_id"] = "S021"
    frames_used = []
    grouped = validation._frame_groups
    monkeypatch.setattr(validation, "_frame_groups",
                        lambda *args: frames_used.append(len(grouped(*args))) or grouped(*args))
    found = {}
    for frame_bytes in (validation.FRAME_BYTES, 1):  # one frame per table; one per group of expectations
        monkeypatch.setattr(validation, "FRAME_BYTES", frame_bytes)
        with duckdb.connect(str(tmp_path / f"warehouse-{frame_bytes}.duckdb")) as con:
            validation.stage_frames(con, tables)
            run = validation.validate_warehouse(con, settings, run_id="split")
            found[frame_bytes] = (run.quarantined, run.data_quality().drop(columns="checked_at"),
                                  quarantine_rows(con))
    (one_frame, one_quality, one_rows), (split, split_quality, split_rows) = found.values()
    assert split == one_frame == {**dict.fromkeys(TABLES, 0), "people": 2, "index_events": 2, "offences": 3,
                                  "participation": 1}
    pd.testing.assert_frame_equal(split_quality, one_quality)
    assert split_rows == one_rows and len(split_rows) == 8
    assert frames_used[:len(TABLES)] == [1] * len(TABLES)
    assert all(n > 2 for n in frames_used[len(TABLES):])


def test_keys_counted_distinct_give_great_expectations_the_same_results(tmp_path, make_settings, monkeypatch):
    """A key DuckDB counted free of repeats is checked on row numbers; every result must be what
    Great Expectations finds on the key's own values, with nulls, and keys that do repeat fall back."""
    settings = make_settings(validation={"min_reference_rate": 0.5, "max_failing_row_share": 0.5})
    tables = clean_tables()
    tables["people"].loc[[20, 21], "person_id"] = "S021"  # repeats: checked on the values
    tables["offences"].loc[[3], "offence_id"] = None  # one missing key, no repeat
    tables["index_events"].loc[[5], "index_date"] = pd.NaT  # compound key with a missing part
    tables["participation"].loc[[1, 3], "person_id"] = None  # two keys missing the same part: a repeat
    row_numbers = []
    frame = validation._distinct_frame
    monkeypatch.setattr(validation, "_distinct_frame",
                        lambda data, columns: row_numbers.append(columns) or frame(data, columns))
    found = {}
    for threshold in (10**9, 0):
        monkeypatch.setattr(validation, "DISTINCT_KEY_ROWS", threshold)
        with duckdb.connect(str(tmp_path / f"warehouse-{threshold}.duckdb")) as con:
            validation.stage_frames(con, tables)
            runner = validation.SuiteRunner(validation.suite_parameters(settings))
            results = {}
            for name in validation.validation_order():
                checked, _ = validation.validate_table(con, runner, name, settings)
                results[name] = ([(o.expectation, o.column_name, o.success, o.element_count, o.unexpected_count,
                                   o.sample, o.rows.tolist()) for o in checked.outcomes],
                                 [(r.success, r.result) for r in runner._results[name].results])
            found[threshold] = results
    assert found[0] == found[10**9]
    assert sorted(row_numbers) == sorted([
        ("offence_id",), ("mentor_id",), ("response_id",), ("programme_id",), ("person_id", "index_date"),
        ("person_id", "programme_id", "stage")])  # people and participation repeat: on their values
    participation = dict(((e, c), u) for e, c, _, _, u, _, _ in found[0]["participation"][0])
    assert participation[("expect_compound_columns_to_be_unique", "person_id,programme_id,start_date")] == 2
    outcomes = dict(((e, c), (n, u)) for e, c, _, n, u, _, _ in found[0]["offences"][0])
    assert outcomes[("expect_column_values_to_be_unique", "offence_id")] == (40, 0)
    people = dict(((e, c), u) for e, c, _, _, u, _, _ in found[0]["people"][0])
    assert people[("expect_column_values_to_be_unique", "person_id")] == 2


@pytest.mark.parametrize("coded_values", [validation.CODED_VALUES, 0])  # coded by DuckDB; encoded per batch
def test_coded_and_true_false_helper_columns_keep_every_value(warehouse, settings, monkeypatch, coded_values):
    """Coded columns come from DuckDB as ENUMs of the values they hold (any text, quotes too) and
    true/false helper columns as the rows where they are not true: missing stays missing, false
    stays false, on its own row."""
    monkeypatch.setattr(validation, "CODED_VALUES", coded_values)
    tables = clean_tables()
    offences = tables["offences"]
    offences["disposal"] = offences["disposal"].astype(object)
    offences.loc[3, "disposal"] = "o'clock"  # outside the allowed values, with a quote
    offences.loc[5, "disposal"] = None
    offences.loc[7, "person_id"] = None  # reference unknown: missing, not failing
    offences.loc[9, "person_id"] = "S999"  # not a person: fails the reference; no birth year: missing
    offences.loc[10, "offence_date"] = pd.Timestamp("1979-06-01")  # S011 was born in 1980
    checked = check_one(warehouse, settings, "offences", tables)
    assert failing(checked) == {
        ("expect_column_values_to_not_be_null", "person_id"): [8],
        ("expect_column_values_to_not_be_null", "disposal"): [6],
        ("expect_column_values_to_be_in_set", "person_id"): [10],
        ("expect_column_values_to_be_in_set", "disposal"): [4],
        ("expect_column_values_to_be_in_set", "offence_date"): [11],
    }
    domain = next(o for o in checked.outcomes if o.rule == "domain" and o.column_name == "disposal")
    assert domain.sample == ["o'clock (offences.csv:4)"]
    helpers = {o.column_name: (o.element_count, o.unexpected_count) for o in checked.outcomes if o.rule in ("reference", "order")}
    assert helpers == {"person_id": (40, 1), "offence_date": (40, 1), "proven_date,offence_date": (40, 0)}
    results = {r.expectation_config.kwargs.get("column"): r.result
               for r in gx_results(warehouse, settings, tables, "offences")}
    assert (results["person_id_is_known"]["missing_count"], results["person_id_is_known"]["unexpected_count"]) == (1, 1)
    # The birth year is missing for the unknown person and the person with no id.
    assert (results["offence_not_before_birth_year"]["missing_count"],
            results["offence_not_before_birth_year"]["unexpected_count"]) == (2, 1)


def gx_results(con, settings, tables, table: str) -> list:
    runner = validation.SuiteRunner(validation.suite_parameters(settings))
    validation.validate_table(con, runner, table, settings)
    return runner._results[table].results


def test_derived_columns_stay_with_their_rows_however_staging_stores_them(warehouse, settings):
    """Derived columns are read apart from the rows and matched to them by row id: an offence
    dated before its person's birth year must fail on its own row, with staging stored backwards."""
    tables = clean_tables()
    people, offences = tables["people"], tables["offences"]
    for frame, name in ((people, "people.csv"), (offences, "offences.csv")):
        frame["source_file"] = name
        frame["source_row"] = range(1, len(frame) + 1)
    birth_year = int(people.loc[people["person_id"] == offences.at[7, "person_id"], "birth_year"].iloc[0])
    offences.at[7, "offence_date"] = pd.Timestamp(f"{birth_year - 1}-06-01")  # offences.csv row 8
    tables["people"] = people.iloc[::-1].reset_index(drop=True)
    tables["offences"] = offences.iloc[::-1].reset_index(drop=True)
    validation.stage_frames(warehouse, tables)
    runner = validation.SuiteRunner(validation.suite_parameters(settings))
    checked, sources = validation.validate_table(warehouse, runner, "offences", settings)

    before_birth = next(o for o in checked.outcomes if o.description == "the offence is dated before the person's birth year")
    assert before_birth.unexpected_count == 1
    assert [(sources["source_file"].iat[p], int(sources["source_row"].iat[p])) for p in before_birth.rows] == [
        ("offences.csv", 8)]
    assert [o.label for o in checked.outcomes if o.unexpected_count] == [
        "offences.offence_date expect_column_values_to_be_in_set"]


@pytest.mark.parametrize("layout", ["blocks", "interleaved", "gaps", "repeats", "two_files"])
def test_rows_put_in_file_order_as_a_stable_sort_puts_them(layout, monkeypatch):
    """Staging holds rows in blocks out of order; moving whole blocks (or, when there are too many
    or a row repeats, sorting) must give exactly the order Arrow's stable sort by file, then row, gives."""
    monkeypatch.setattr(validation, "MOVED_BLOCKS", 1_000)  # interleaved: 5,000 blocks of one row
    rng = np.random.default_rng(7)
    files = np.zeros(5_000, dtype=np.int32)
    rows = np.arange(1, 5_001)
    if layout == "gaps":
        rows = rows + np.cumsum(rng.random(len(rows)) < 0.02)  # rows quarantined at ingest leave gaps
    if layout == "repeats":
        rows[2_000] = rows[1_999]
    if layout == "two_files":
        files[2_500:], rows[2_500:] = 1, rows[:2_500]
    blocks = np.split(np.arange(len(rows)), [700, 1_900, 2_500, 3_100, 4_400])
    stored = np.concatenate([blocks[i] for i in (3, 0, 5, 2, 4, 1)])
    if layout == "interleaved":  # two runs in order, their rows alternating
        stored = np.concatenate([np.arange(0, len(rows), 2), np.arange(1, len(rows), 2)])
    file_rank = pa.chunked_array([files[stored][:1_000], files[stored][1_000:]])
    source_row = pa.chunked_array([rows[stored][:1_000], rows[stored][1_000:]])
    values = pa.chunked_array([pa.array(stored.astype(str)).dictionary_encode()])

    order = validation._file_order(file_rank, source_row)
    assert (order.blocks is not None) == (layout in ("blocks", "gaps", "two_files"))
    expected = pc.sort_indices(pa.table({"file": file_rank, "row": source_row}),
                               sort_keys=[("file", "ascending"), ("row", "ascending")])
    assert order.column(values).equals(values.combine_chunks().take(expected))
    assert order.values(stored).tolist() == stored[expected.to_numpy()].tolist()
    assert validation._file_order(pa.chunked_array([files]), pa.chunked_array([rows])) is None


def test_tables_read_ahead_see_the_quarantine_of_the_tables_checked_before(warehouse, make_settings, monkeypatch):
    """Small tables are read (derived columns too) while a larger one is checked, before the
    tables they reference have moved their failing rows: a participation row naming a mentor
    quarantined meanwhile must still fail its reference, as it would when read afterwards."""
    read = []
    read_rows = validation.read_rows
    monkeypatch.setattr(validation, "read_rows", lambda con, name, *args, **kwargs: read.append(name)
                        or read_rows(con, name, *args, **kwargs))
    settings = make_settings(validation={"min_reference_rate": 0.4, "max_failing_row_share": 0.6})
    tables = clean_tables()
    tables["mentors"].loc[1, "age_band"] = "ageless"  # M2 fails its allowed values
    validation.stage_frames(warehouse, tables)
    run = validation.validate_warehouse(warehouse, settings, run_id="ahead")

    assert read == validation.validation_order()
    assert not run.blocked
    assert run.quarantined == {**dict.fromkeys(TABLES, 0), "mentors": 1, "participation": N_ENROLLED // 2}
    reasons = warehouse.sql("""SELECT table_name, column_name, reason, count(*) FROM quarantine.rows
                               GROUP BY ALL ORDER BY ALL""").fetchall()
    assert reasons == [("mentors", "age_band", "expect_column_values_to_be_in_set", 1),
                       ("participation", "mentor_id", "expect_column_values_to_be_in_set", N_ENROLLED // 2)]
