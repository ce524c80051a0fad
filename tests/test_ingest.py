"""Ingest: every landing row ends in staging, in quarantine with a reason, or in a rejected file's count."""
from __future__ import annotations

import datetime as dt
import json
import time

import duckdb
import pandas as pd
import pytest

from desist import ingest, warehouse
from desist.contract import TABLES

HEADERS = {name: ",".join(table.column_names) for name, table in TABLES.items()}
GOOD = {
    "people": "P1,female,1980,white,london",
    "index_events": "P1,2020-03-01,custody_release,theft,6,3,1,17,42.5,yes,false",
    "offences": "O1,P1,2020-05-01,2020-07-01,theft,2,fine",
    "programmes": "PG1,Bridges,peer_mentoring,Acme Trust",
    "participation": "P1,PG1,2020-04-01,,ongoing,10,4,M1",
    "mentors": "M1,PG1,25-34,male,yes,2019-01-01",
    "assessments": "P1,PG1,2020-04-02,baseline,unemployed,settled,4,5",
    "feedback": "R1,PG1,participant,2020-06-01,4,",
}


def write(landing, name: str, *lines: str) -> None:
    (landing / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def run(settings) -> ingest.IngestReport:
    with warehouse.connect(settings) as con:
        return ingest.ingest(con, settings.paths.landing)


def rows(settings, sql: str, params=None) -> list[tuple]:
    with warehouse.connect(settings, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def quarantined(settings) -> list[tuple]:
    return rows(settings, "SELECT table_name, source_file, source_row, reason, column_name, raw_value "
                          "FROM quarantine.rows WHERE stage = 'ingest' ORDER BY source_file, source_row")


def summary(settings) -> dict[str, dict]:
    with warehouse.connect(settings, read_only=True) as con:
        frame = con.execute("SELECT * FROM raw.ingest_summary").df()
    return {record["file_name"]: record for record in frame.to_dict("records")}


def assert_nothing_lost(settings) -> None:
    """Per file, and per table, every row read is loaded, quarantined or rejected exactly once."""
    for file_name, s in summary(settings).items():
        assert s["rows_loaded"] + s["rows_quarantined"] + s["rows_rejected"] == s["rows_read"], file_name
    for table in TABLES:
        raw, staged, held = rows(settings, f"""
            SELECT (SELECT count(*) FROM raw.{table}), (SELECT count(*) FROM staging.{table}),
                   (SELECT count(*) FROM quarantine.rows WHERE stage = 'ingest' AND table_name = '{table}')""")[0]
        assert staged + held == raw, table
        read = rows(settings, "SELECT coalesce(sum(rows_read), 0) FROM raw.ingest_summary "
                              "WHERE table_name = ? AND status = 'loaded'", [table])[0][0]
        assert raw == read, table


def all_tables(settings) -> dict[str, list[tuple]]:
    """The full contents of every table desist keeps in raw, staging and quarantine, in a fixed order."""
    with warehouse.connect(settings, read_only=True) as con:
        names = con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema IN ('raw', 'staging', 'quarantine') ORDER BY 1"
        ).fetchall()
        return {name: sorted(con.execute(f"SELECT * FROM {name}").fetchall(), key=repr) for (name,) in names}


# ---------------------------------------------------------------- good data

def test_one_good_file_per_table_is_typed_by_the_contract(make_settings):
    settings = make_settings()
    for table in TABLES:
        write(settings.paths.landing, f"{table}.csv", HEADERS[table], GOOD[table])
    report = run(settings)
    assert {f.file_name: (f.status, f.rows_read) for f in report.raw.files} == {
        f"{table}.csv": ("loaded", 1) for table in TABLES}
    assert {table: (c.rows_loaded, c.rows_quarantined) for table, c in report.tables.items()} == {
        table: (1, 0) for table in TABLES}
    assert rows(settings, "SELECT * FROM staging.index_events") == [
        ("P1", dt.date(2020, 3, 1), "custody_release", "theft", 6.0, 3, 1, 17, 42.5, True, False,
         "index_events.csv", 1)]
    assert rows(settings, "SELECT end_date, mentor_id, sessions_attended FROM staging.participation") == [
        (None, "M1", 4)]
    assert rows(settings, "SELECT relationship_quality, satisfaction FROM staging.feedback") == [(None, 4)]
    with warehouse.connect(settings, read_only=True) as con:
        types = dict(con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'staging' AND table_name = 'index_events'").fetchall())
    assert types == {
        "person_id": "VARCHAR", "index_date": "DATE", "index_type": "VARCHAR", "index_offence_group": "VARCHAR",
        "sentence_months": "DOUBLE", "prior_offences": "BIGINT", "prior_custody": "BIGINT",
        "age_first_offence": "BIGINT", "risk_score": "DOUBLE", "employment_at_index": "BOOLEAN",
        "accommodation_at_index": "BOOLEAN", "source_file": "VARCHAR", "source_row": "BIGINT"}
    assert_nothing_lost(settings)


def test_values_are_trimmed_and_booleans_and_categories_read_leniently(make_settings):
    settings = make_settings()
    write(settings.paths.landing, "index_events.csv", HEADERS["index_events"],
          " P1 ,2020-03-01,Custody_Release,THEFT, 6.5 ,3.0,0,17,1e1,TRUE,No",
          "P2,2020-03-02,community_sentence,theft,0,,,,,1,0",
          "P3,2020-03-03,community_sentence,theft,0,,,,,Yes,FALSE")
    run(settings)
    assert rows(settings, "SELECT person_id, index_type, index_offence_group, sentence_months, prior_offences, "
                          "risk_score, employment_at_index, accommodation_at_index FROM staging.index_events ORDER BY source_row") == [
        ("P1", "custody_release", "theft", 6.5, 3, 10.0, True, False),
        ("P2", "community_sentence", "theft", 0.0, None, None, True, False),
        ("P3", "community_sentence", "theft", 0.0, None, None, True, False),
    ]
    assert rows(settings, "SELECT person_id, prior_offences FROM raw.index_events ORDER BY source_row") == [
        (" P1 ", "3.0"), ("P2", ""), ("P3", "")]


def test_only_values_needing_it_are_trimmed_and_they_come_out_as_trim_makes_them():
    """The staging SQL copies a value without trim() when it cannot change it; checked against trim() itself
    for every Unicode character alone, before, after and around a word (space separators, tabs, NBSP, ...)."""
    column = TABLES["people"].columns[0]
    con = duckdb.connect()
    con.execute(f"CREATE TABLE chars AS SELECT chr(i::INTEGER) AS c FROM range(1, {0x30000}) AS r(i) "
                f"WHERE i NOT BETWEEN {0xD800} AND {0xDFFF}")
    con.execute(f"CREATE TABLE values_ AS SELECT unnest([c, c || 'ab', 'ab' || c, c || 'a b' || c, "
                f"c || c, 'a' || c || 'b']) AS {column.name} FROM chars "
                f"UNION ALL SELECT unnest(['', ' ', 'ab', NULL, ' \u00a0 ', '\u3000x\u2007'])")
    differ = con.execute(f"SELECT {column.name} FROM values_ WHERE NULLIF(trim({column.name}), '') "
                         f"IS DISTINCT FROM {ingest._trimmed(column)}").fetchall()
    assert con.execute("SELECT count(*) FROM values_").fetchone()[0] == 6 * (0x30000 - 1 - 0x800) + 6
    assert differ == []


def test_a_table_s_own_key_is_stored_uncompressed_and_the_other_columns_compressed(make_settings):
    settings = make_settings()
    write(settings.paths.landing, "offences.csv", HEADERS["offences"],
          *(f"O{i},P{i % 7},2020-05-01,2020-07-01,theft,2,fine" for i in range(3000)))
    run(settings)
    storage = "SELECT DISTINCT column_name, compression FROM pragma_storage_info(?) " \
              "WHERE segment_type = 'VARCHAR' AND column_name IN ('offence_id', 'person_id') ORDER BY 1"
    for table in ("raw.offences", "staging.offences"):
        assert rows(settings, storage, [table]) == [("offence_id", "Uncompressed"), ("person_id", "DICT_FSST")]


def test_several_files_feed_one_table_and_names_match_the_longest_table_prefix(make_settings):
    settings = make_settings()
    write(settings.paths.landing, "people_2023.csv", HEADERS["people"], "P1,female,1980,white,london")
    write(settings.paths.landing, "people_2024.csv", HEADERS["people"], "P2,male,1990,black,wales",
          "P3,other,2001,,east")
    run(settings)
    assert rows(settings, "SELECT person_id, source_file, source_row FROM staging.people ORDER BY source_file, source_row") == [
        ("P1", "people_2023.csv", 1), ("P2", "people_2024.csv", 1), ("P3", "people_2024.csv", 2)]
    assert ingest.match_table("index_events_2024.parquet") == "index_events"
    assert ingest.match_table("People.CSV") == "people"
    assert ingest.match_table("person.csv") is None
    assert_nothing_lost(settings)


def test_source_row_counts_records_after_the_header(make_settings):
    settings = make_settings()
    (settings.paths.landing / "programmes.csv").write_text(
        'programme_id,name,programme_type,provider\n'
        'PG1,"Bridges,\nphase two",peer_mentoring,Acme\n'
        '\n'
        'PG2,Lift,community_support,Acme\n'
        'PG3,Lift,mentoring,Acme\n'
    )
    run(settings)
    assert rows(settings, "SELECT programme_id, name, source_row FROM staging.programmes ORDER BY source_row") == [
        ("PG1", "Bridges,\nphase two", 1), ("PG2", "Lift", 2)]
    assert quarantined(settings) == [("programmes", "programmes.csv", 3, "out_of_domain", "programme_type",
                                      "mentoring")]


def test_csv_and_parquet_give_the_same_staging_rows(make_settings, tmp_path):
    csv_settings = make_settings(landing=tmp_path / "csv")
    lines = [HEADERS["index_events"], "P1,2020-03-01,custody_release,theft,6,3,1,17,42.5,true,false",
             "P2,2021-11-30,community_sentence,drugs,0.5,,0,,,false,"]
    write(csv_settings.paths.landing, "index_events.csv", *lines)
    run(csv_settings)

    parquet_landing = tmp_path / "parquet"
    parquet_landing.mkdir()
    frame = pd.DataFrame({
        "person_id": ["P1", "P2"],
        "index_date": pd.to_datetime(["2020-03-01", "2021-11-30"]),  # pandas writes these as timestamps
        "index_type": ["custody_release", "community_sentence"],
        "index_offence_group": ["theft", "drugs"],
        "sentence_months": [6.0, 0.5],
        "prior_offences": [3.0, None],  # an integer column with a gap is float in pandas
        "prior_custody": pd.array([1, 0], dtype="Int64"),
        "age_first_offence": pd.array([17, None], dtype="Int64"),
        "risk_score": [42.5, None],
        "employment_at_index": [True, False],
        "accommodation_at_index": pd.array([False, None], dtype="boolean"),
    })
    frame.to_parquet(parquet_landing / "index_events.parquet")
    (tmp_path / "evaluation.yaml").unlink()
    (tmp_path / "warehouse.duckdb").rename(tmp_path / "csv.duckdb")
    parquet_settings = make_settings(landing=parquet_landing)
    run(parquet_settings)

    columns = ", ".join(TABLES["index_events"].column_names)
    from_parquet = rows(parquet_settings, f"SELECT {columns}, source_row FROM staging.index_events ORDER BY source_row")
    with duckdb.connect(str(tmp_path / "csv.duckdb"), read_only=True) as con:
        from_csv = con.execute(f"SELECT {columns}, source_row FROM staging.index_events ORDER BY source_row").fetchall()
    assert len(from_csv) == 2
    assert from_parquet == from_csv
    assert quarantined(parquet_settings) == []


# ---------------------------------------------------------------- bad rows: one quarantine row each

# (file, lines after the header, expected (source_row, reason, column_name, raw_value))
BAD_ROWS = {
    "bad_date_uk_format": ("offences.csv", [GOOD["offences"], "O2,P1,31/01/2020,2020-07-01,theft,2,fine"],
                           (2, "bad_date", "offence_date", "31/01/2020")),
    "bad_date_impossible": ("offences.csv", ["O2,P1,2020-02-30,2020-07-01,theft,2,fine"],
                            (1, "bad_date", "offence_date", "2020-02-30")),
    "bad_integer_fraction": ("people.csv", [GOOD["people"], "P2,male,1980.5,white,london"],
                             (2, "bad_integer", "birth_year", "1980.5")),
    "bad_number": ("index_events.csv", ["P1,2020-03-01,custody_release,theft,six,3,1,17,42.5,yes,false"],
                   (1, "bad_number", "sentence_months", "six")),
    "bad_number_nan": ("index_events.csv", ["P1,2020-03-01,custody_release,theft,6,3,1,17,nan,yes,false"],
                       (1, "bad_number", "risk_score", "nan")),
    "bad_boolean": ("mentors.csv", ["M1,PG1,25-34,male,maybe,2019-01-01"],
                    (1, "bad_boolean", "lived_experience", "maybe")),
    "out_of_domain": ("people.csv", ["P1,unknown,1980,white,london"], (1, "out_of_domain", "sex", "unknown")),
    "out_of_range": ("assessments.csv", ["P1,PG1,2020-04-02,baseline,unemployed,settled,11,5"],
                     (1, "out_of_range", "life_skills_score", "11")),
    "out_of_range_below": ("people.csv", ["P1,female,1850,white,london"], (1, "out_of_range", "birth_year", "1850")),
    "missing_value": ("people.csv", [GOOD["people"], "P2,male,1990,white,  "], (2, "missing_value", "region", "  ")),
    "missing_key": ("people.csv", [",female,1980,white,london"], (1, "missing_key", "person_id", "")),
    "duplicate_key_in_one_file": ("people.csv", [GOOD["people"], "P2,male,1990,white,wales", " P1,male,1970,,east"],
                                  (3, "duplicate_key", "person_id", " P1")),
    "duplicate_composite_key": ("assessments.csv", [GOOD["assessments"],
                                                    "P1,PG1,2021-01-01,Baseline,employed,settled,6,6"],
                                (2, "duplicate_key", "person_id,programme_id,stage", "P1,PG1,Baseline")),
    "too_few_fields": ("people.csv", [GOOD["people"], "P2,male,1990,white"], (2, "malformed_row", None, None)),
    "too_many_fields": ("people.csv", ["P2,male,1990,white,wales,surplus", GOOD["people"]],
                        (1, "malformed_row", None, None)),
    "unterminated_quote": ("people.csv", [GOOD["people"], 'P2,"male,1990,white,wales', "P3,male,1990,white,wales"],
                           (2, "malformed_row", None, None)),
}


@pytest.mark.parametrize("case", BAD_ROWS, ids=list(BAD_ROWS))
def test_a_row_that_cannot_be_typed_is_quarantined_with_its_reason(make_settings, case):
    file_name, lines, (source_row, reason, column, raw_value) = BAD_ROWS[case]
    settings = make_settings()
    table = ingest.match_table(file_name)
    write(settings.paths.landing, file_name, HEADERS[table], *lines)
    run(settings)
    assert quarantined(settings) == [(table, file_name, source_row, reason, column, raw_value)]
    s = summary(settings)[file_name]
    assert (s["status"], s["rows_read"], s["rows_quarantined"], s["rows_rejected"]) == (
        "loaded", len(lines), 1, 0)
    assert f"quarantined: {reason} 1" in s["reason"]
    assert_nothing_lost(settings)


def test_only_rows_repeating_a_whole_key_are_duplicates(make_settings):
    """Composite keys whose parts run together the same ('P1' 'PG12' / 'P1P' 'G12') are different keys;
    a key seen three times keeps its first row and quarantines the two later ones."""
    settings = make_settings()
    assessment = "{},2020-04-02,baseline,unemployed,settled,4,5"
    write(settings.paths.landing, "assessments.csv", HEADERS["assessments"],
          assessment.format("P1,PG12"), assessment.format("P1P,G12"), assessment.format("P1,PG1"),
          assessment.format("P1,PG12"), assessment.format("P1,PG12"))
    run(settings)
    assert rows(settings, "SELECT person_id, programme_id, source_row FROM staging.assessments ORDER BY source_row") == [
        ("P1", "PG12", 1), ("P1P", "G12", 2), ("P1", "PG1", 3)]
    assert quarantined(settings) == [("assessments", "assessments.csv", 4, "duplicate_key",
                                      "person_id,programme_id,stage", "P1,PG12,baseline"),
                                     ("assessments", "assessments.csv", 5, "duplicate_key",
                                      "person_id,programme_id,stage", "P1,PG12,baseline")]
    assert_nothing_lost(settings)


def test_whole_numbers_and_dates_are_read_as_the_contract_writes_them(make_settings):
    """A whole number is ASCII digits with an optional sign and '.0'; a date is yyyy-mm-dd in ASCII digits.
    Digits of other scripts, separators, hexadecimal and fractions are quarantined."""
    settings = make_settings()
    years = {"P1": "1980", "P2": "+1981", "P3": "1982.0", "P4": "1983.", "P5": " 1984 ", "P6": "1985.5",
             "P7": "1_986", "P8": "\u0661\u0669\u0668\u0667", "P9": "0x7C4", "P10": "1e3", "P11": "-"}
    write(settings.paths.landing, "people.csv", HEADERS["people"],
          *(f"{person},male,{year},white,wales" for person, year in years.items()))
    dates = {"O1": "2020-05-01", "O2": "2020-5-01", "O3": "2020/05/01", "O4": "\uff12020-05-01",
             "O5": "2020-05-01x", "O6": "2020-02-30", "O7": "12020-05-01"}
    write(settings.paths.landing, "offences.csv", HEADERS["offences"],
          *(f"{offence},P1,2020-01-01,{date},theft,2,fine" for offence, date in dates.items()))
    run(settings)
    assert rows(settings, "SELECT person_id, birth_year FROM staging.people ORDER BY source_row") == [
        ("P1", 1980), ("P2", 1981), ("P3", 1982), ("P4", 1983), ("P5", 1984)]
    assert rows(settings, "SELECT offence_id, proven_date FROM staging.offences") == [("O1", dt.date(2020, 5, 1))]
    assert [(row[2], row[3], row[5]) for row in quarantined(settings)] == [
        (2, "bad_date", "2020-5-01"), (3, "bad_date", "2020/05/01"), (4, "bad_date", "\uff12020-05-01"),
        (5, "bad_date", "2020-05-01x"), (6, "bad_date", "2020-02-30"), (7, "bad_date", "12020-05-01"),
        (6, "bad_integer", "1985.5"), (7, "bad_integer", "1_986"), (8, "bad_integer", "\u0661\u0669\u0668\u0667"),
        (9, "bad_integer", "0x7C4"), (10, "bad_integer", "1e3"), (11, "bad_integer", "-")]
    assert_nothing_lost(settings)


def test_detail_lists_every_problem_and_raw_record_keeps_the_whole_row(make_settings):
    settings = make_settings()
    write(settings.paths.landing, "people.csv", HEADERS["people"], "P1,alien,19x0,white,mars")
    run(settings)
    detail, record = rows(settings, "SELECT detail, raw_record FROM quarantine.rows")[0]
    assert detail == ("sex: out_of_domain 'alien' (expected one of female, male, other); "
                      "birth_year: bad_integer '19x0' (expected a whole number); "
                      "region: out_of_domain 'mars' (expected one of north_east, north_west, yorkshire, "
                      "east_midlands, west_midlands, east, london, south_east, south_west, wales)")
    assert json.loads(record) == {"person_id": "P1", "sex": "alien", "birth_year": "19x0",
                                        "ethnic_group": "white", "region": "mars",
                                        "source_file": "people.csv", "source_row": 1}


def test_a_key_repeated_in_a_later_file_is_quarantined_and_the_first_kept(make_settings):
    settings = make_settings()
    write(settings.paths.landing, "people_b.csv", HEADERS["people"], "P1,male,1970,white,east")
    write(settings.paths.landing, "people_a.csv", HEADERS["people"], "P9,male,1970,white,east", GOOD["people"])
    run(settings)
    assert rows(settings, "SELECT person_id, sex, source_file FROM staging.people ORDER BY person_id") == [
        ("P1", "female", "people_a.csv"), ("P9", "male", "people_a.csv")]
    assert quarantined(settings) == [("people", "people_b.csv", 1, "duplicate_key", "person_id", "P1")]
    assert rows(settings, "SELECT detail FROM quarantine.rows") == [
        ("person_id: duplicate_key 'P1' (key already loaded from people_a.csv row 2)",)]
    assert_nothing_lost(settings)


def test_a_row_with_a_problem_does_not_hide_a_later_good_row_with_its_key(make_settings):
    settings = make_settings()
    write(settings.paths.landing, "people.csv", HEADERS["people"], "P1,female,1980,white,atlantis", GOOD["people"])
    run(settings)
    assert rows(settings, "SELECT person_id, source_row FROM staging.people") == [("P1", 2)]
    assert quarantined(settings) == [("people", "people.csv", 1, "out_of_domain", "region", "atlantis")]


# ---------------------------------------------------------------- whole files rejected

def test_a_file_missing_a_required_column_is_rejected_whole(make_settings):
    settings = make_settings()
    write(settings.paths.landing, "people.csv", "person_id,sex,birth_year,ethnic_group",
          "P1,female,1980,white", "P2,male,1990,black")
    report = run(settings)
    s = summary(settings)["people.csv"]
    assert (s["status"], s["rows_read"], s["rows_loaded"], s["rows_quarantined"], s["rows_rejected"]) == (
        "rejected", 2, 0, 0, 2)
    assert s["reason"] == "people.csv: required column(s) missing: region"
    assert report.raw.files[0].reason == s["reason"]
    assert rows(settings, "SELECT count(*) FROM raw.people") == [(0,)]
    assert_nothing_lost(settings)


def test_an_optional_column_may_be_absent(make_settings):
    settings = make_settings()
    write(settings.paths.landing, "people.csv", "person_id,sex,birth_year,region", "P1,female,1980,london")
    run(settings)
    assert rows(settings, "SELECT person_id, ethnic_group FROM staging.people") == [("P1", None)]
    assert summary(settings)["people.csv"]["reason"] == (
        "optional column(s) absent, loaded as empty: ethnic_group")


@pytest.mark.parametrize("header, column", [("Surname", "Surname"), ("Date of Birth", "Date of Birth"),
                                            ("NAME", "NAME"), ("e-mail", None)])
def test_a_file_carrying_a_direct_identifier_is_rejected_whole(make_settings, header, column):
    settings = make_settings()
    write(settings.paths.landing, "people_2024.csv", f"{HEADERS['people']},{header}",
          f"{GOOD['people']},x", f"P2,male,1990,white,wales,y", "P3,male,1990,white,wales,z")
    run(settings)
    s = summary(settings)["people_2024.csv"]
    if column is None:  # "e-mail" normalises to "e_mail", which is not an identifier name: kept out, reported
        assert (s["status"], s["rows_loaded"]) == ("loaded", 3)
        assert s["reason"] == "extra column(s) ignored: 'e-mail'"
        return
    assert (s["status"], s["rows_read"], s["rows_loaded"], s["rows_rejected"]) == ("rejected", 3, 0, 3)
    assert s["reason"].startswith(f"people_2024.csv: column '{column}' is a direct identifier")
    assert rows(settings, "SELECT count(*) FROM raw.people") == [(0,)]
    assert_nothing_lost(settings)


def test_a_name_column_is_allowed_for_programmes_only(make_settings):
    settings = make_settings()
    write(settings.paths.landing, "programmes.csv", HEADERS["programmes"], GOOD["programmes"])
    write(settings.paths.landing, "mentors.csv", f"{HEADERS['mentors']},name", f"{GOOD['mentors']},Ann")
    run(settings)
    s = summary(settings)
    assert (s["programmes.csv"]["status"], s["programmes.csv"]["rows_loaded"]) == ("loaded", 1)
    assert (s["mentors.csv"]["status"], s["mentors.csv"]["rows_rejected"]) == ("rejected", 1)
    assert s["mentors.csv"]["reason"].startswith("mentors.csv: column 'name' is a direct identifier")


def test_extra_columns_are_ignored_and_reported(make_settings):
    settings = make_settings()
    write(settings.paths.landing, "people.csv", f"Person ID,sex,birth_year,ethnic_group,region,Cohort Flag",
          f"{GOOD['people']},1")
    run(settings)
    assert rows(settings, "SELECT person_id, region FROM staging.people") == [("P1", "london")]
    assert summary(settings)["people.csv"]["reason"] == "extra column(s) ignored: 'Cohort Flag'"


def test_a_file_not_in_utf8_is_rejected_whole(make_settings):
    settings = make_settings()
    (settings.paths.landing / "people.csv").write_bytes(
        f"{HEADERS['people']}\n{GOOD['people']}\nP2,male,1990,white,Y\xf4rk\n".encode("latin-1"))
    run(settings)
    s = summary(settings)["people.csv"]
    assert (s["status"], s["rows_read"], s["rows_rejected"]) == ("rejected", 2, 2)
    assert s["reason"] == ("people.csv: the file is not UTF-8: line 3 has byte 0xF4 ('ô' in Latin-1/Windows-1252), "
                           "so it looks Latin-1 encoded; save it as UTF-8 and send it again")
    assert_nothing_lost(settings)


def test_an_empty_file_is_rejected(make_settings):
    settings = make_settings()
    (settings.paths.landing / "feedback.csv").write_text("")
    run(settings)
    s = summary(settings)["feedback.csv"]
    assert (s["status"], s["rows_read"], s["reason"]) == ("rejected", 0, "feedback.csv: the file is empty (no header row)")


def test_files_for_no_table_are_reported_and_non_data_files_skipped(make_settings):
    settings = make_settings()
    write(settings.paths.landing, "people.csv", HEADERS["people"], GOOD["people"])
    write(settings.paths.landing, "persons.csv", HEADERS["people"], GOOD["people"])
    write(settings.paths.landing, "people_notes.txt", "not data")
    write(settings.paths.landing, "ground_truth.json", "{}")
    write(settings.paths.landing, ".people.csv.swp", "")
    run(settings)
    s = summary(settings)
    assert sorted(s) == ["people.csv", "people_notes.txt", "persons.csv"]
    assert (s["persons.csv"]["status"], s["persons.csv"]["table_name"]) == ("ignored", None)
    assert s["persons.csv"]["reason"].startswith("persons.csv: the name starts with no table name (people, ")
    assert (s["people_notes.txt"]["status"], s["people_notes.txt"]["reason"]) == (
        "ignored", "people_notes.txt: not a .csv or .parquet file")


# ---------------------------------------------------------------- repeated runs

def test_a_second_run_on_the_same_files_changes_no_row(make_settings):
    settings = make_settings()
    write(settings.paths.landing, "people.csv", HEADERS["people"], GOOD["people"], "P2,male,3.5,white,wales",
          "P1,male,1970,white,east", "P3,male")
    write(settings.paths.landing, "offences.csv", HEADERS["offences"], GOOD["offences"])
    write(settings.paths.landing, "mentors.csv", f"{HEADERS['mentors']},phone", f"{GOOD['mentors']},0")
    write(settings.paths.landing, "misc.csv", "a", "1")
    run(settings)
    with warehouse.connect(settings) as con:  # a later validation step's rows must survive re-ingest
        con.execute("INSERT INTO quarantine.rows VALUES ('people', 'people.csv', 1, 'sex', 'female', "
                    "'failed_expectation', 'x', '{}', 'validation', now())")
    before = all_tables(settings)
    time.sleep(0.01)
    report = run(settings)
    assert report.raw.count("action") == {"unchanged": 4}
    assert all_tables(settings) == before
    assert len(before["quarantine.rows"]) == 4
    assert {"raw.files", "raw.ingest_summary", "raw.people", "staging.people"} <= set(before)


def test_an_unchanged_file_whose_raw_rows_were_lost_is_read_again(make_settings):
    settings = make_settings()
    write(settings.paths.landing, "people.csv", HEADERS["people"], GOOD["people"], "P2,male,3.5,white,wales",
          "P3,male,1980,white,wales")
    write(settings.paths.landing, "offences.csv", HEADERS["offences"], GOOD["offences"])
    run(settings)
    before = all_tables(settings)
    with warehouse.connect(settings) as con:  # e.g. rows deleted by hand: the fingerprint alone would hide it
        con.execute("DELETE FROM raw.people WHERE source_row = 3")
    report = run(settings)
    assert {f.file_name: (f.action, f.rows_read) for f in report.raw.files} == {
        "people.csv": ("reloaded", 3), "offences.csv": ("unchanged", 1)}
    after = all_tables(settings)
    assert rows(settings, "SELECT count(*) FROM raw.people") == [(3,)]
    assert rows(settings, "SELECT person_id FROM staging.people ORDER BY person_id") == [("P1",), ("P3",)]
    for name in ("raw.offences", "staging.offences", "staging.people", "raw.ingest_summary"):
        assert after[name] == before[name], name
    assert_nothing_lost(settings)


def test_a_changed_file_replaces_the_rows_it_loaded(make_settings):
    settings = make_settings()
    write(settings.paths.landing, "people.csv", HEADERS["people"], GOOD["people"], "P2,male,3.5,white,wales")
    write(settings.paths.landing, "people_more.csv", HEADERS["people"], "P5,male,1990,white,wales")
    run(settings)
    loaded_at_other = rows(settings, "SELECT loaded_at FROM raw.people WHERE source_file = 'people_more.csv'")
    write(settings.paths.landing, "people.csv", HEADERS["people"], "P3,other,2000,,east", "P4,male,1995,,north_east")
    report = run(settings)
    assert {f.file_name: f.action for f in report.raw.files} == {"people.csv": "changed",
                                                                 "people_more.csv": "unchanged"}
    assert rows(settings, "SELECT person_id, source_file, source_row FROM staging.people ORDER BY person_id") == [
        ("P3", "people.csv", 1), ("P4", "people.csv", 2), ("P5", "people_more.csv", 1)]
    assert quarantined(settings) == []
    assert rows(settings, "SELECT loaded_at FROM raw.people WHERE source_file = 'people_more.csv'") == loaded_at_other
    s = summary(settings)["people.csv"]
    assert (s["rows_read"], s["rows_loaded"], s["rows_quarantined"]) == (2, 2, 0)
    assert_nothing_lost(settings)


def test_a_fixed_rejected_file_is_loaded_and_a_removed_file_loses_its_rows(make_settings):
    settings = make_settings()
    landing = settings.paths.landing
    write(landing, "people.csv", HEADERS["people"], GOOD["people"])
    write(landing, "people_extra.csv", HEADERS["people"], "P2,male,1990,white,wales", "P1,male,1990,white,wales")
    write(landing, "offences.csv", "offence_id,person_id", "O1,P1")
    run(settings)
    assert quarantined(settings) == [("people", "people_extra.csv", 2, "duplicate_key", "person_id", "P1")]

    (landing / "people.csv").unlink()
    write(landing, "offences.csv", HEADERS["offences"], GOOD["offences"])
    report = run(settings)
    assert {f.file_name: (f.action, f.status) for f in report.raw.files} == {
        "people_extra.csv": ("unchanged", "loaded"), "offences.csv": ("changed", "loaded"),
        "people.csv": ("removed", "removed")}
    # With people.csv gone, its key no longer blocks the later row.
    assert rows(settings, "SELECT person_id, source_row FROM staging.people ORDER BY person_id") == [
        ("P1", 2), ("P2", 1)]
    assert quarantined(settings) == []
    s = summary(settings)
    assert (s["people.csv"]["status"], s["people.csv"]["sha256"], s["people.csv"]["rows_read"]) == (
        "removed", None, 0)
    assert s["people.csv"]["reason"] == (
        "people.csv is no longer in the landing folder: its 1 rows were removed from raw.people, "
        "staging and quarantine")
    assert rows(settings, "SELECT count(*) FROM raw.people WHERE source_file = 'people.csv'") == [(0,)]
    assert_nothing_lost(settings)

    before = all_tables(settings)
    assert run(settings).raw.count("action") == {"unchanged": 2}
    assert all_tables(settings) == before

    write(landing, "people.csv", HEADERS["people"], GOOD["people"])
    report = run(settings)
    assert {f.file_name: f.action for f in report.raw.files}["people.csv"] == "new"
    assert summary(settings)["people.csv"]["status"] == "loaded"


def test_a_removed_or_changed_file_takes_its_validation_quarantine_with_it(make_settings):
    from desist import validation

    settings = make_settings(validation={"min_reference_rate": 0.0, "max_failing_row_share": 1.0})
    landing = settings.paths.landing
    write(landing, "people.csv", HEADERS["people"], GOOD["people"])
    write(landing, "offences.csv", HEADERS["offences"], GOOD["offences"])
    write(landing, "offences_late.csv", HEADERS["offences"], "O2,P9,2020-05-01,2020-07-01,theft,2,fine")
    write(landing, "offences_later.csv", HEADERS["offences"], "O3,P8,2020-05-01,2020-07-01,theft,2,fine")

    def validation_quarantine() -> list[tuple]:
        with warehouse.connect(settings) as con:
            validation.validate_warehouse(con, settings, run_id="check")
            return con.execute("SELECT source_file, source_row, raw_value FROM quarantine.rows "
                               "WHERE stage = 'validation' ORDER BY source_file").fetchall()

    run(settings)
    assert validation_quarantine() == [("offences_late.csv", 1, "P9"), ("offences_later.csv", 1, "P8")]
    (landing / "offences_late.csv").unlink()
    write(landing, "offences_later.csv", HEADERS["offences"], GOOD["offences"].replace("O1", "O3"))
    run(settings)
    assert rows(settings, "SELECT count(*) FROM quarantine.rows") == [(0,)]
    assert validation_quarantine() == []
    assert rows(settings, "SELECT offence_id, source_file FROM staging.offences ORDER BY offence_id") == [
        ("O1", "offences.csv"), ("O3", "offences_later.csv")]


def test_generated_sql_files_match_the_contract():
    stale = [path.name for path, text in ingest.generated_sql().items()
             if not path.exists() or path.read_text() != text]
    assert stale == [], "run `python -m desist.ingest` to regenerate the SQL from the contract"


def test_every_reason_code_is_documented_and_produced_by_the_sql():
    produced = set()
    for path in ingest.generated_sql():
        produced |= {reason for reason in ingest.REASONS if f"'{reason}'" in path.read_text()}
    assert produced == set(ingest.REASONS)
    assert len(ingest.REASONS) == 10


def test_an_unreadable_file_is_rejected_and_the_others_still_load(make_settings):
    settings = make_settings()
    (settings.paths.landing / "people.parquet").write_bytes(b"this is not parquet")
    write(settings.paths.landing, "programmes.csv", HEADERS["programmes"], GOOD["programmes"])
    run(settings)
    s = summary(settings)
    assert s["people.parquet"]["status"] == "rejected"
    assert s["people.parquet"]["reason"].startswith("people.parquet: the file could not be read (")
    assert (s["programmes.csv"]["status"], s["programmes.csv"]["rows_loaded"]) == ("loaded", 1)
    assert_nothing_lost(settings)


def test_staging_is_written_in_raw_order(make_settings):
    """Every staging statement is planned as an order-keeping insert with no join, so staging keeps
    raw's file and row order (an IN list of many allowed values was planned as a join, and a million
    rows landed in interleaved row groups that validation had to sort back)."""
    settings = make_settings()
    for name, line in GOOD.items():
        write(settings.paths.landing, f"{name}.csv", HEADERS[name], line)
    run(settings)
    plans = {}
    with warehouse.connect(settings) as con:
        for name, table in TABLES.items():
            create, insert = ingest.staging_sql(table).split(";\n")[:2]
            con.execute(create[create.index("CREATE OR REPLACE TABLE"):])
            plans[name] = con.execute("EXPLAIN " + insert[insert.index("INSERT INTO"):]).fetchall()[0][1]
    assert [name for name, plan in plans.items() if "Batch Insert" not in plan] == []
    assert [name for name, plan in plans.items() if "Join" in plan] == []
