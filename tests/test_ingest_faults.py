"""Ingest under real file defects: every physical line is accounted for, and a refusal names the real cause."""
from __future__ import annotations

import pytest
from test_ingest import GOOD, HEADERS, assert_nothing_lost, quarantined, rows, run, summary, write

from desist import ingest, lines
from desist.generate import write_extract


def lines_balance(s: dict) -> bool:
    return s["lines"] == s["header_lines"] + s["blank_lines"] + s["continued_lines"] + s["rows_read"]


def test_a_stray_quote_quarantines_its_line_and_the_records_after_it_load(make_settings):
    settings = make_settings()
    write(settings.paths.landing, "people.csv", HEADERS["people"], "A1,male,1980,white,london",
          'A2,"male,1980,white,london', "A3,female,1981,white,wales", "A4,female,1982,white,wales",
          "A5,male,1983,white,london")
    run(settings)
    assert quarantined(settings) == [("people", "people.csv", 2, "malformed_row", None, None)]
    assert rows(settings, "SELECT person_id FROM staging.people ORDER BY 1") == [("A1",), ("A3",), ("A4",), ("A5",)]
    assert rows(settings, "SELECT detail, raw_record::JSON->>'sex' FROM quarantine.rows") == [(
        "malformed_row (line 3 opens a quoted value that it does not close; read alone as one malformed row)",
        '"male')]
    s = summary(settings)["people.csv"]
    assert (s["lines"], s["header_lines"], s["blank_lines"], s["continued_lines"]) == (6, 1, 0, 0)
    assert (s["rows_read"], s["rows_loaded"], s["rows_quarantined"], s["rows_rejected"]) == (5, 4, 1, 0)
    assert s["reason"] == ("1 line(s) read alone as malformed rows: line 3 opens a quoted value that it does not "
                           "close; quarantined: malformed_row 1")
    assert lines_balance(s)
    assert_nothing_lost(settings)


def test_a_quoted_value_over_two_lines_is_one_record_beside_a_stray_quote(make_settings):
    settings = make_settings()
    (settings.paths.landing / "programmes.csv").write_bytes(
        b'programme_id,name,programme_type,provider\r\n'
        b'PG1,"Bridges,\r\nphase two",peer_mentoring,Acme\r\n'
        b'\r\n'
        b'PG2,"Lift,community_support,Acme\r\n'
        b'PG3,Lift,community_support,"Acme ""North"""\r\n'
        b'PG4,Step,peer_mentoring,Acme')
    run(settings)
    assert rows(settings, "SELECT programme_id, name, provider, source_row FROM staging.programmes ORDER BY 1") == [
        ("PG1", "Bridges,\r\nphase two", "Acme", 1), ("PG3", "Lift", 'Acme "North"', 3),
        ("PG4", "Step", "Acme", 4)]
    assert quarantined(settings) == [("programmes", "programmes.csv", 2, "malformed_row", None, None)]
    s = summary(settings)["programmes.csv"]
    assert (s["lines"], s["header_lines"], s["blank_lines"], s["continued_lines"], s["rows_read"]) == (7, 1, 1, 1, 4)
    assert lines_balance(s)


def test_a_stray_quote_deep_in_a_generated_offences_file_loses_no_offence(make_settings):
    settings = make_settings()
    write_extract(settings.paths.landing, people=2_000, seed=3)
    path = settings.paths.landing / "offences.csv"
    text = path.read_text().splitlines(keepends=True)
    count = len(text) - 1
    bad = text[1_000].split(",")
    text[1_000] = ",".join([bad[0], '"' + bad[1], *bad[2:]])  # record 1,000 on line 1,001
    path.write_text("".join(text))
    run(settings)
    offences = [q for q in quarantined(settings) if q[0] == "offences"]
    assert offences == [("offences", "offences.csv", 1_000, "malformed_row", None, None)]
    assert rows(settings, "SELECT count(*) FROM staging.offences")[0][0] == count - 1
    s = summary(settings)["offences.csv"]
    assert (s["lines"], s["rows_read"], s["rows_loaded"], s["rows_quarantined"]) == (count + 1, count, count - 1, 1)
    assert_nothing_lost(settings)


def test_an_over_long_line_is_one_malformed_row_naming_its_line_and_length(make_settings):
    settings = make_settings()
    long_value = "x" * (lines.MAX_LINE_BYTES + 10)
    write(settings.paths.landing, "people.csv", HEADERS["people"], GOOD["people"], f"P2,{long_value}",
          "P3,male,1990,white,wales")
    run(settings)
    assert quarantined(settings) == [("people", "people.csv", 2, "malformed_row", None, None)]
    assert rows(settings, "SELECT person_id FROM staging.people ORDER BY 1") == [("P1",), ("P3",)]
    detail = rows(settings, "SELECT detail FROM quarantine.rows")[0][0]
    assert detail == ("malformed_row (line 3 is 2,097,165 bytes long, more than the 2,097,152 bytes a record "
                      "may have; read alone as one malformed row)")
    assert lines_balance(summary(settings)["people.csv"])


def test_a_utf16_file_is_refused_as_utf16(make_settings):
    settings = make_settings()
    (settings.paths.landing / "people.csv").write_text(
        f"{HEADERS['people']}\n{GOOD['people']}\nP2,male,1990,white,wales\n", encoding="utf-16")
    run(settings)
    s = summary(settings)["people.csv"]
    assert (s["status"], s["rows_read"], s["rows_rejected"]) == ("rejected", 2, 2)
    assert s["reason"] == "people.csv: the file is UTF-16 encoded, not UTF-8; save it as UTF-8 and send it again"
    assert lines_balance(s)


def test_a_latin1_byte_in_the_header_is_refused_as_an_encoding_problem(make_settings):
    settings = make_settings()
    (settings.paths.landing / "people.csv").write_bytes(
        f"person_id,sex,birth_year,ethnic_group,region,r\xe9gion d'origine\n{GOOD['people']},x\n".encode("latin-1"))
    run(settings)
    s = summary(settings)["people.csv"]
    assert (s["status"], s["rows_rejected"]) == ("rejected", 1)
    assert s["reason"] == ("people.csv: the file is not UTF-8: line 1 (the header) has byte 0xE9 ('é' in "
                           "Latin-1/Windows-1252), so it looks Latin-1 encoded; save it as UTF-8 and send it again")


def test_files_in_subfolders_are_listed_as_ignored(make_settings):
    settings = make_settings()
    write(settings.paths.landing, "people.csv", HEADERS["people"], GOOD["people"])
    (settings.paths.landing / "2023").mkdir()
    write(settings.paths.landing / "2023", "people.csv", HEADERS["people"], "P9,male,1990,white,wales")
    run(settings)
    s = summary(settings)
    assert sorted(s) == ["2023/people.csv", "people.csv"]
    assert (s["2023/people.csv"]["status"], s["2023/people.csv"]["rows_read"]) == ("ignored", 0)
    assert s["2023/people.csv"]["reason"] == ("2023/people.csv: in a subfolder of the landing folder, which is not "
                                              "read (move the file up into the landing folder to load it)")
    assert rows(settings, "SELECT person_id FROM staging.people") == [("P1",)]


@pytest.mark.parametrize("content, expected", [
    (None, "the landing folder holds no data file; expected files named <table>*.csv or <table>*.parquet"),
    ("notes.txt", "the landing folder holds no data file (only: notes.txt); expected"),
])
def test_a_landing_folder_without_data_files_is_refused_before_the_run(make_settings, content, expected):
    settings = make_settings()
    if content:
        write(settings.paths.landing, "people_notes.txt", "x")
        expected = expected.replace("notes.txt", "people_notes.txt")
    with pytest.raises(ValueError) as error:
        ingest.check_landing(settings.paths.landing)
    assert str(error.value).startswith(f"{settings.paths.landing}: {expected}")


def test_every_line_of_the_sample_is_accounted_for(make_settings):
    settings = make_settings()
    write_extract(settings.paths.landing, people=1_000, seed=4)
    run(settings)
    for name, s in summary(settings).items():
        physical = len((settings.paths.landing / name).read_bytes().splitlines())
        assert (s["lines"], s["header_lines"], s["blank_lines"], s["continued_lines"]) == (physical, 1, 0, 0), name
        assert lines_balance(s), name


def test_a_file_with_old_mac_line_endings_has_every_line_counted(make_settings):
    settings = make_settings()
    (settings.paths.landing / "people.csv").write_bytes(
        f"{HEADERS['people']}\r{GOOD['people']}\rP2,male,1990,white,wales\r".encode())
    run(settings)
    assert rows(settings, "SELECT person_id, region FROM staging.people ORDER BY 1") == [
        ("P1", "london"), ("P2", "wales")]
    s = summary(settings)["people.csv"]
    assert (s["status"], s["lines"], s["header_lines"], s["rows_read"]) == ("loaded", 3, 1, 2)


def _lines_one_by_one(data: bytes, newline: int, longest: int) -> tuple[int, list[int], list[int], dict[int, int]]:
    """(lines, blank, odd-quote and over-long lines) of a file's bytes, line by line in plain Python."""
    parts = data.split(bytes([newline]))
    if data.endswith(bytes([newline])) or not data:
        parts = parts[:-1]
    blank, odd, long = [], [], {}
    for number, part in enumerate(parts, start=1):
        content = part[:-1] if newline == lines.NEWLINE and part.endswith(b"\r") else part
        if not content:
            blank.append(number)
        if len(content) > longest:
            long[number] = len(content)
        if part.count(b'"') % 2:
            odd.append(number)
    return len(parts), blank, odd, long


@pytest.mark.parametrize("seed", range(6))
def test_line_scan_counts_every_line_as_a_line_by_line_reading_does(tmp_path, monkeypatch, seed):
    """Small blocks and a small line limit put blank (also CR-only), quoted and over-long lines on and across
    block boundaries; the scan looks closer only at lines of at most one byte or over the limit."""
    import random
    monkeypatch.setattr(lines, "BLOCK", 64)
    monkeypatch.setattr(lines, "MAX_LINE_BYTES", 16)
    rng = random.Random(seed)
    for case in range(150):
        newline = rng.choice([b"\n", b"\r\n", b"\r"])
        alphabet = rng.choice(["abc,", 'abc,"', "abc,\r"]) if newline == b"\n" else rng.choice(["abc,", 'abc,"'])
        lengths = [0, 1, 2, 5, 9, 15, 16, 17, 40]
        if case % 2:  # mostly plain lines, now and then a blank, quoted or over-long one
            alphabet, lengths = "abc,", [*range(1, 7)] * 30 + lengths
            alphabet += '"' * (rng.random() < 0.3)
        text = newline.join("".join(rng.choice(alphabet) for _ in range(rng.choice(lengths))).encode()
                            for _ in range(rng.randint(1, 60)))
        if rng.random() < 0.5:
            text += newline
        path = tmp_path / f"case{case}.csv"
        path.write_bytes(text)
        found = lines.scan(path)
        expected = _lines_one_by_one(text, found.newline, 16)
        assert (found.lines, found.blank, lines.merge_odd_quotes(found.odd_quotes), found.long) == expected, text
