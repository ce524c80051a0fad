"""An extract too small to estimate anything stops before publishing and says why, one line per programme."""
from __future__ import annotations

import duckdb

from conftest import materialize_all
from desist.config import load_settings, write_settings
from desist.generate import write_extract
from desist.runs import failure_reason


def test_a_tiny_extract_where_nothing_can_be_estimated_stops_before_publishing(tmp_path):
    write_extract(tmp_path / "landing", people=300, seed=3)
    config = write_settings(tmp_path, tmp_path / "landing")
    settings = load_settings(config)

    result = materialize_all(config, raise_on_error=False)

    # Nobody can be estimated: the run stops before publishing, one line per programme. Too few
    # participants stops a programme before the propensity model, which could not be fitted to so few.
    assert not result.success
    lines = failure_reason(result.all_events).splitlines()
    assert lines[0] == ("step 'assembled_results' failed: no programme could be estimated, so the published "
                        "database and reports were kept as they were")
    assert [line.split(": ")[:2] for line in lines[1:]] == [
        [p, "too few participants"] for p in ("P01", "P02", "P03", "P04")]
    assert lines[1] == "P01: too few participants: 11 of the 60 needed"
    assert all(line.endswith(" of the 60 needed") for line in lines[1:])
    assert not settings.paths.research.exists()
    assert not (settings.paths.reports / "index.html").exists()
    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        analysed = con.sql("SELECT programme_id, status FROM results.programmes_analysed ORDER BY 1").fetchall()
        assert analysed == [(p, "too_few_participants") for p in ("P01", "P02", "P03", "P04")]
        assert con.sql("SELECT count(*) FROM results.effects").fetchall() == [(0,)]
