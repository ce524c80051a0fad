"""`desist check` on the Rossi extract of docs/bring-your-own-data.md, set up right and wrong."""
from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest
import yaml
from conftest import materialize_all
from test_rossi_walkthrough import desist, walkthrough_files

from desist.check import check, suggest
from desist.config import load_settings
from desist.runs import failure_reason


@pytest.fixture(scope="module")
def rossi(tmp_path_factory):
    """The walkthrough's landing folder and settings; returns a function writing adjusted settings."""
    folder = tmp_path_factory.mktemp("rossi_check")
    for path, text in walkthrough_files().items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    subprocess.run([sys.executable, "rossi/prepare.py"], cwd=folder, check=True, timeout=120)
    walkthrough = yaml.safe_load((folder / "rossi" / "evaluation.yaml").read_text())

    def settings(name: str, change) -> object:
        raw = yaml.safe_load(yaml.safe_dump(walkthrough))
        change(raw)
        path = folder / "rossi" / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    return settings


def test_check_reports_codes_outside_the_allowed_values_with_a_suggested_value_map(rossi):
    def unmapped(raw):
        raw["contract"]["people"]["columns"] = {"sex": {"from": "gender"}}

    config = rossi("unmapped", unmapped)
    report = check(load_settings(config))
    lines = report.lines
    assert "  people: 432 rows read, 0 loaded, 432 quarantined (out_of_domain 432): 100.0% would be quarantined " \
           "or rejected" in lines
    assert ("  people.region: 'MD' (432); allowed: north_east, north_west, yorkshire, east_midlands, "
            "west_midlands, east, london, south_east, south_west, wales") in lines
    assert "  people.sex: 'M' (432); allowed: female, male, other" in lines
    assert ("    suggested value map: contract: {people: {columns: {sex: {values: {M: male}}}}}  "
            "(or replace the allowed values: {allowed: [...]})") in lines
    # the cause comes first; the unresolved references it leads to are reported as such
    assert "  index_events.person_id not found in people.person_id for 432 of 432 rows" in lines
    assert not report.ok
    # with nobody in staging.people, everyone lacks the first covariate derived from it
    assert report.reasons == [
        "FA: no participant with complete follow-up has every complete-case covariate; missing: age_at_index "
        "(drop them from covariates, or set covariates.missing to missing_indicator for them)"]

    cli = desist("check", "--config", str(config), cwd=config.parent, home=config.parent / "home")
    assert cli.returncode == 1
    assert cli.stderr.splitlines()[-1] == "desist: a run would estimate nothing"


def test_check_names_a_missing_required_column_and_the_columns_it_does_not_know(rossi):
    def no_contract(raw):
        del raw["contract"]["people"]

    report = check(load_settings(rossi("no_people_contract", no_contract)))
    assert "  people.csv -> people" in report.lines
    assert ("    MISSING required: sex (the file would be rejected; map the extract's name with contract: "
            "columns: <column>: {from: <name>})") in report.lines
    assert "    unknown (ignored; declare them as extra_columns to use them): gender" in report.lines
    assert "    missing optional (loaded as empty): ethnic_group" in report.lines


def test_check_says_which_cut_off_a_follow_up_window_needs(rossi):
    def default_follow_up(raw):
        del raw["follow_up"]

    report = check(load_settings(rossi("default_follow_up", default_follow_up)))
    assert "  FA: 0 participants, 0 comparison people; does not meet the minimum of 60 participants" in report.lines
    # released 1971-01-04: 12 months and a 6-month waiting period end on 1972-07-04
    assert report.reasons == [
        "FA: no participant has complete follow-up: the 12-month window plus 6-month waiting period ends after "
        "the data cut-off 1972-01-03; the first would need a data cut-off of 1972-07-04 or later (or a shorter "
        "follow_up.headline_months or waiting_period_months)"]
    assert not report.ok


def test_check_names_an_absent_complete_case_covariate(rossi):
    def needs_score(raw):
        raw["contract"]["index_events"]["extra_columns"].append({"name": "needs_score", "type": "number"})
        raw["covariates"]["numeric"].append("needs_score")

    report = check(load_settings(rossi("needs_score", needs_score)))
    assert "    missing optional (loaded as empty): index_offence_group, sentence_months, prior_offences, " \
           "prior_custody, age_first_offence, risk_score, employment_at_index, accommodation_at_index, " \
           "needs_score" in report.lines
    assert report.reasons == [
        "FA: no participant with complete follow-up has every complete-case covariate; missing: needs_score "
        "(drop them from covariates, or set covariates.missing to missing_indicator for them)"]


def test_check_of_the_walkthrough_passes_and_drops_the_constant_covariate(rossi):
    report = check(load_settings(rossi("as_written", lambda raw: None)))
    assert report.ok and report.reasons == []
    assert report.estimable == ["FA"]
    assert "    covariate female dropped: every person analysed has the same value" in report.lines


@pytest.mark.parametrize(("value", "allowed", "expected"), [
    ("M", ("female", "male", "other"), "male"),
    ("F", ("female", "male", "other"), "female"),
    ("LONDON", ("london", "wales"), "london"),
    ("MD", ("north_east", "wales"), None),
    ("", ("female",), None),
])
def test_suggested_values(value, allowed, expected):
    assert suggest(value, allowed) == expected


def test_a_run_gives_the_reason_check_gives(rossi):
    """The programme's effects step records the same one-line reason in results.programmes_analysed, and
    the assembly stops the run with it, since nothing was estimated."""
    def default_follow_up(raw):
        del raw["follow_up"]
        raw["paths"]["warehouse"] = "run_default_follow_up.duckdb"

    config = rossi("run_default_follow_up", default_follow_up)
    result = materialize_all(config, raise_on_error=False)
    assert not result.success
    reasons = check(load_settings(config)).reasons
    assert failure_reason(result.all_events).splitlines()[1:] == reasons
    with duckdb.connect(str(load_settings(config).paths.warehouse), read_only=True) as con:
        recorded = con.sql("SELECT status, message FROM results.programmes_analysed").fetchall()
    assert recorded == [("not_estimated", reasons[0])]
    assert "would need a data cut-off of 1972-07-04 or later" in recorded[0][1]
