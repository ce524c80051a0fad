"""Study diagnostics through the whole pipeline: planted hidden confounding is caught by the
negative control and withholds the headline; the committed sample (no hidden confounding) passes."""
from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd
import pytest

from conftest import materialize_all
from desist.config import load_settings, write_settings
from desist.generate import write_extract
from pipelines.diagnostics import check_results


def test_the_sample_passes_its_negative_controls_and_shows_every_headline(sample_run):
    with duckdb.connect(str(sample_run.paths.research), read_only=True) as con:
        controls = con.sql("SELECT programme_id, status, value FROM diagnostics WHERE diagnostic = 'negative_control' "
                           "ORDER BY 1").fetchall()
        assert [(p, s) for p, s, _ in controls] == [("P01", "pass"), ("P02", "pass"), ("P03", "pass"), ("P04", "pass")]
        assert all(value < 0.1 for *_, value in controls)
        assert con.sql("SELECT count(*) FROM diagnostics WHERE status = 'fail'").fetchall() == [(0,)]
        assert con.sql("SELECT DISTINCT diagnostics_status FROM headline_effects").fetchall() == [("pass",)]
        # every programme has each diagnostic once, and the estimates behind them
        per_programme = con.sql("SELECT programme_id, count(*), count(DISTINCT diagnostic) FROM diagnostics "
                                "GROUP BY 1 ORDER BY 1").fetchall()
        assert all(total == distinct >= 12 for _, total, distinct in per_programme)
        assert con.sql("SELECT estimate, count(*) FROM diagnostic_estimates GROUP BY 1 ORDER BY 1").fetchall() == [
            ("doubly_robust", 4), ("negative_control", 8)]
    page = (sample_run.paths.reports / "P02.html").read_text(encoding="utf-8")
    assert "How much can we trust this?" in page
    assert "Every check that could withhold the result passed." in page
    assert "For 100 typical people who took part" in page


@pytest.fixture(scope="module")
def confounded_run(tmp_path_factory):
    """The pipeline on an extract where enrolment depends on a characteristic the extract does not hold."""
    folder = tmp_path_factory.mktemp("confounded")
    write_extract(folder / "landing", people=6000, seed=4, hidden_confounding=1.5)
    config = write_settings(folder, folder / "landing")
    result = materialize_all(config, raise_on_error=False)
    return result, load_settings(config)


def test_hidden_confounding_fails_the_negative_control_and_withholds_the_headline(confounded_run):
    result, settings = confounded_run
    assert result.success  # the checks warn; they do not block the run
    with duckdb.connect(str(settings.paths.research), read_only=True) as con:
        failed = con.sql("SELECT programme_id, diagnostic FROM diagnostics WHERE status = 'fail' ORDER BY 1, 2").fetchall()
        assert [row for row in failed if row[1] == "negative_control"] == [
            ("P01", "negative_control"), ("P02", "negative_control"), ("P04", "negative_control")]
        # researchers keep the withheld estimates, marked as such
        headline = con.sql("SELECT programme_id, difference, diagnostics_status FROM headline_effects "
                           "WHERE programme_id IN ('P01', 'P02', 'P04') ORDER BY 1").fetchall()
        assert [(p, status) for p, _, status in headline] == [("P01", "fail"), ("P02", "fail"), ("P04", "fail")]
        assert all(difference < 0 for _, difference, _ in headline)  # the spurious benefit
        assert con.sql("SELECT DISTINCT headline_shown FROM diagnostics WHERE programme_id = 'P01'").fetchall() == [
            (False,)]
    page = (settings.paths.reports / "P01.html").read_text(encoding="utf-8")
    assert "The reoffending result is withheld" in page
    assert "already differed before the programme" in page
    assert "For 100 typical people who took part" not in page
    index = (settings.paths.reports / "index.html").read_text(encoding="utf-8")
    assert "withheld: design checks failed" in index

    checks = {(e.check_name, e.passed) for e in result.get_asset_check_evaluations()
              if e.asset_key == dg.AssetKey(["results", "diagnostics"])}
    assert ("diagnostics_status", False) in checks
    assert ("minimum_sample", True) in checks


def test_checks_warn_per_programme_and_never_block():
    diagnostics = pd.DataFrame({
        "programme_id": ["P1", "P1", "P2", "P2", "P3"],
        "diagnostic": ["minimum_sample", "balance", "minimum_sample", "balance", "minimum_sample"],
        "value": [200, 0.05, 250, 0.3, 14],
        "threshold": [60, 0.1, 60, 0.1, 60],
        "status": ["pass", "pass", "pass", "fail", "fail"],
        "explanation": ["enough", "alike", "enough", "too different on age", "too few participants: 14 of the 60 needed"],
    })
    results = {r.check_name: r for r in check_results(diagnostics)}
    assert {name: r.passed for name, r in results.items()} == {
        "balance": False, "minimum_sample": False, "diagnostics_status": False}
    assert all(r.severity == dg.AssetCheckSeverity.WARN for r in results.values())
    assert results["minimum_sample"].description == "P3: too few participants: 14 of the 60 needed"
    assert results["balance"].description == "P2: too different on age"
    assert "| P1 | headline shown |" in results["diagnostics_status"].metadata["programmes"].value
    assert "| P3 | headline withheld |" in results["diagnostics_status"].metadata["programmes"].value


def test_the_diagnostics_checks_are_in_the_definitions_and_never_block():
    from pipelines.assembly import assembled_results

    specs = {spec.name: spec for spec in assembled_results.check_specs}
    assert sorted(specs) == ["balance", "diagnostics_status", "minimum_sample"]
    assert not any(spec.blocking for spec in specs.values())
    assert all(spec.asset_key == dg.AssetKey(["results", "diagnostics"]) for spec in specs.values())
