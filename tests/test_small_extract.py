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
        assert [row[:2] for row in analysed] == [(p, "propensity_model_failed") for p in ("P01", "P02", "P03", "P04")]
        assert all("separate treated from comparison people perfectly" in message for *_, message in analysed)
        # The result tables keep their documented columns with no rows.
        for table, columns in {"effects": 21, "matched_sets": 7, "balance": 13, "km_curves": 11, "cox": 10,
                               "rmst": 10}.items():
            assert con.sql(f"SELECT count(*) FROM {table}").fetchall() == [(0,)], table
            assert len(con.sql(f"DESCRIBE {table}").fetchall()) == columns, table
        assert con.sql("SELECT count(*), count(difference) FROM headline_effects").fetchall() == [(4, 0)]
    page = (settings.paths.reports / "P01.html").read_text(encoding="utf-8")
    assert "No estimate could be made: the model of who takes part could not be fitted to these data." in page
