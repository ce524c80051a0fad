"""An extract too small to estimate anything still runs to the end and says why, in every output."""
from __future__ import annotations

import duckdb

from conftest import materialize_all
from desist.config import load_settings, write_settings
from desist.generate import write_extract


def test_a_tiny_extract_runs_through_and_reports_that_nothing_could_be_estimated(tmp_path):
    write_extract(tmp_path / "landing", people=300, seed=3)
    config = write_settings(tmp_path, tmp_path / "landing")
    settings = load_settings(config)

    result = materialize_all(config, raise_on_error=False)

    assert result.success
    with duckdb.connect(str(settings.paths.research), read_only=True) as con:
        analysed = con.sql("SELECT programme_id, status, message FROM programmes_analysed ORDER BY 1").fetchall()
        # Too few participants: stopped before the propensity model, which could not be fitted to so few.
        assert [row[:2] for row in analysed] == [(p, "too_few_participants") for p in ("P01", "P02", "P03", "P04")]
        assert all(message.startswith("too few participants: ") and message.endswith(" of the 60 needed")
                   for *_, message in analysed)
        assert con.sql("SELECT DISTINCT diagnostic, status, threshold FROM diagnostics").fetchall() == [
            ("minimum_sample", "fail", 60.0)]
        # The result tables keep their documented columns with no rows.
        for table, columns in {"effects": 21, "matched_sets": 7, "balance": 13, "km_curves": 11, "cox": 10,
                               "rmst": 10}.items():
            assert con.sql(f"SELECT count(*) FROM {table}").fetchall() == [(0,)], table
            assert len(con.sql(f"DESCRIBE {table}").fetchall()) == columns, table
        assert con.sql("SELECT count(*), count(difference) FROM headline_effects").fetchall() == [(4, 0)]
    page = (settings.paths.reports / "P01.html").read_text(encoding="utf-8")
    assert "could not be fitted" not in page
    assert "No reoffending estimate is published: too few participants could be analysed" in page
    assert "Too few participants: 11 of the 60 needed" in page
    # P02 has 3: a count below the disclosure minimum is not shown
    page = (settings.paths.reports / "P02.html").read_text(encoding="utf-8")
    assert "Too few participants: fewer than 10 of the 60 needed" in page and "3 of the 60" not in page
