"""Disclosure that survives subtraction, on small programmes run through the whole pipeline.

A generated extract of 2,500 people gives four programmes of 10 to 70 participants each. On
every page, and in every table of the research file published with
``publish: {person_level: false}``, no count from 1 to 9 is shown and none can be worked out
by adding or subtracting two shown counts.
"""
from __future__ import annotations

import itertools
import json
import re
from html.parser import HTMLParser

import duckdb
import pytest

from conftest import materialize_all
from desist.config import load_settings, write_settings
from desist.generate import write_extract
from test_reports import values as plotly_values

MIN_COUNT = 10
COUNT = re.compile(r"^\d{1,3}(,\d{3})*$")  # a whole number as the pages print counts
# Table columns that count people (other columns hold days, percentages or estimates).
COUNT_HEADER = re.compile(r"\(n\)$|^People|at risk$|^(Analysed|Matched|Unmatched|Discarded|Lost at this step)$")
# Whole-number columns of the research file that count no one: positions, windows, days, degrees of
# freedom, and the balance_summary view's numbers of covariates.
# Integers that count no people: positions, durations, and the lines of a landing file (its header and
# blank lines, and lines a quoted value continued onto).
NOT_COUNT_COLUMNS = {"step_number", "window_months", "time_days", "horizon_days", "df", "headline_months", "decile", "line",
                     "lines", "header_lines", "blank_lines", "continued_lines",
                     "terms", "terms_smd_over_threshold", "terms_vr_outside_bounds"}
PERSON_LEVEL = {"cohort", "covariates", "measures", "survival_times", "matched_sets", "unmatched",
                "matched_outcomes", "reoffending_by_group", "risk_scores"}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small_programmes")
    write_extract(folder / "landing", people=2_500, seed=5)
    config = write_settings(folder, folder / "landing", publish={"person_level": False})
    assert materialize_all(config).success
    return load_settings(config)


class Tables(HTMLParser):
    """Every <table> of a page as (column headers, rows of cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[list[str], list[list[str]]]] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_head = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append(([], []))
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            headers, rows = self.tables[-1]
            headers.extend(self._row) if self._in_head else rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def page_counts(page: str) -> dict[str, list[int]]:
    """The counts shown on a page: each table's whole-number cells (by its first header), and the
    people drawn in the attrition funnel."""
    parser = Tables()
    parser.feed(page)
    counts = {}
    for number, (headers, rows) in enumerate(parser.tables):
        counted = [bool(COUNT_HEADER.search(header)) or (header == "Participants" and headers[0] == "Reason")
                   for header in headers]
        values = [int(cell.replace(",", "")) for row in rows for is_count, cell in zip(counted, row)
                  if is_count and COUNT.match(cell)]
        counts[f"table {number + 1} ({headers[0] if headers else ''})"] = values
    funnel = re.search(r'data-chart="chart-attrition">(.*?)</script>', page, re.S)
    if funnel:
        counts["attrition funnel"] = [int(x) for trace in json.loads(funnel.group(1))["data"]
                                      for x in plotly_values(trace["x"]) if x == x and x is not None]
    return counts


def derivable_small_counts(values: list[int]) -> list[tuple]:
    """Counts from 1 to MIN_COUNT - 1 shown, or given by the sum or difference of two shown counts."""
    small = [(v,) for v in values if 0 < v < MIN_COUNT]
    pairs = [(a, b) for a, b in itertools.combinations(sorted(set(values)), 2)
             if 0 < abs(a - b) < MIN_COUNT or 0 < a + b < MIN_COUNT]
    return small + pairs


def test_the_programmes_are_small(small_run):
    with duckdb.connect(str(small_run.paths.warehouse), read_only=True) as con:
        sizes = con.execute("SELECT programme_id, n_treated_analysed FROM results.programmes_analysed "
                            "ORDER BY 1").fetchall()
    assert [p for p, _ in sizes] == ["P01", "P02", "P03", "P04"]
    assert all(10 <= n <= 70 for _, n in sizes), sizes


def test_the_unprotected_results_would_give_small_counts_away(small_run):
    """Without secondary suppression the pages would be open to subtraction: the check below is not idle."""
    with duckdb.connect(str(small_run.paths.warehouse), read_only=True) as con:
        attrition = con.execute("SELECT people FROM analysis.attrition WHERE programme_id = 'P04'").fetchall()
        horizons = con.execute("SELECT n_at_risk FROM results.km_horizons WHERE programme_id = 'P04'").fetchall()
    assert derivable_small_counts([v for (v,) in attrition]) != []
    assert derivable_small_counts([v for (v,) in horizons]) != []


def test_no_small_count_can_be_derived_from_any_page(small_run):
    shown_anything = 0
    for page_file in sorted(small_run.paths.reports.glob("*.html")):
        page = page_file.read_text(encoding="utf-8")
        counts = page_counts(page)
        for where, values in counts.items():
            assert derivable_small_counts(values) == [], (page_file.name, where)
        # the whole page at once: tables read side by side must not give small counts away either
        everything = [v for values in counts.values() for v in values]
        assert derivable_small_counts(everything) == [], page_file.name
        shown_anything += len(everything)
    assert shown_anything > 40  # the pages do show counts: the check is not vacuous


def test_a_suppressed_estimate_shows_no_status(small_run):
    with duckdb.connect(str(small_run.paths.warehouse), read_only=True) as con:
        met_or_not = con.execute(
            "SELECT programme_id, label FROM results.indicators WHERE period = 'all' AND n BETWEEN 1 AND 9 "
            "AND status IN ('met', 'not_met', 'inconclusive')").fetchall()
    for programme_id, label in met_or_not:
        page = (small_run.paths.reports / f"{programme_id}.html").read_text(encoding="utf-8")
        row = re.search(r'<tr><th scope="row">' + re.escape(label) + r"</th>(.*?)</tr>", page, re.S).group(1)
        assert "Met" not in row and "Not met" not in row and "Inconclusive" not in row, label
        assert "No status: too few people to publish the estimate" in row


def test_the_aggregates_only_research_file_gives_no_small_count_away(small_run):
    with duckdb.connect(str(small_run.paths.research), read_only=True) as con:
        assert con.execute("SELECT person_level FROM run_info").fetchall() == [(False,)]
        names = {name for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT internal "
            "UNION SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        assert names & PERSON_LEVEL == set()
        assert {"effects", "attrition", "km_horizons", "indicators", "headline_effects"} <= names
        columns = con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal AND data_type IN "
            "('TINYINT', 'SMALLINT', 'INTEGER', 'BIGINT', 'HUGEINT', 'UBIGINT') ORDER BY ALL").fetchall()
        checked = 0
        for table, group in itertools.groupby(columns, key=lambda row: row[0]):
            counted = [column for _, column in group if column not in NOT_COUNT_COLUMNS]
            values = [value for column in counted for (value,) in con.execute(
                f'SELECT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL').fetchall()]
            assert derivable_small_counts(values) == [], table
            checked += len(values)
        assert checked > 50
        # the Kaplan-Meier steps are published without their counts, in steps of at least 10 reoffences
        assert con.execute("SELECT count(n_at_risk), count(n_events) FROM km_curves").fetchall() == [(0, 0)]
