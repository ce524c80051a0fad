"""An evaluator's own extract: column names, codes, allowed values, extra columns and covariates
set in evaluation.yaml (`contract:` and `covariates:`)."""
from __future__ import annotations

import shutil

import duckdb
import pandas as pd
import pytest
from recode_extract import CONTRACT, recode

from conftest import SAMPLE_DIR, materialize_all
from desist import analysis, ingest, validation, warehouse
from desist.config import load_settings, write_settings
from models.evaluation import MatchingSpec, evaluate_effects, prepare_covariates
from pipelines.effects import ANALYSED_PEOPLE, matching_spec

# A small extract from a US state: region codes, M/F sex, the extract's own needs measures.
PEOPLE = pd.DataFrame({
    "person_id": ["A1", "A2", "A3", "A4", "A5"],
    "Gender": ["M", "F", "m", "M", "F"],
    "birth_year": [1980, 1985, 1990, 1975, 1999],
    "region": ["NC", "MD", "va", "NC", "MD"],
})
INDEX_EVENTS = pd.DataFrame({
    "person_id": ["A1", "A2", "A3", "A4", "A5"],
    "release_date": ["2020-01-06", "2020-02-03", "2020-03-02", "2020-04-06", "2020-05-04"],
    "index_type": ["custody_release"] * 5,
    "index_offence_group": ["theft", "drugs", "violence", "theft", "fraud"],
    "sentence_months": ["12", "6", "24", "3", "9"],
    "needs_score": ["12.5", "", "80", "150", "0"],
    "substance_misuse": ["Y", "N", "Y", "N", "Y"],
})
US_CONTRACT = {
    "people": {"columns": {"sex": {"from": "gender", "values": {"M": "male", "F": "female"}},
                           "region": {"allowed": ["NC", "MD", "VA"]}}},
    "index_events": {
        "columns": {"index_date": {"from": "release_date"}},
        "extra_columns": [
            {"name": "needs_score", "type": "number", "minimum": 0, "maximum": 100, "required": False},
            {"name": "substance_misuse", "type": "boolean", "values": {"Y": True, "N": False}},
        ],
    },
}


def write_landing(folder, frames: dict[str, pd.DataFrame]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False)


def test_value_maps_and_allowed_values_quarantine_nothing_and_extra_columns_are_typed_and_checked(make_settings):
    settings = make_settings(contract=US_CONTRACT)
    write_landing(settings.paths.landing, {"people": PEOPLE, "index_events": INDEX_EVENTS})
    con = warehouse.connect(settings)
    ingest.ingest(con, settings.paths.landing, settings.tables)
    run = validation.validate_warehouse(con, settings, data_docs=settings.paths.reports / "data-quality")

    assert con.sql("SELECT person_id, sex, region FROM staging.people ORDER BY 1").fetchall() == [
        ("A1", "male", "NC"), ("A2", "female", "MD"), ("A3", "male", "VA"), ("A4", "male", "NC"),
        ("A5", "female", "MD")]
    assert dict(con.sql("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
                        "'staging' AND table_name = 'index_events' AND column_name IN "
                        "('needs_score', 'substance_misuse')").fetchall()) == \
        {"needs_score": "DOUBLE", "substance_misuse": "BOOLEAN"}
    # Only A4's needs score of 150 breaks a rule; A2's empty score is allowed (optional).
    assert con.sql("SELECT table_name, source_row, column_name, raw_value, reason FROM quarantine.rows").fetchall() \
        == [("index_events", 4, "needs_score", "150", "out_of_range")]
    assert con.sql("SELECT person_id, needs_score, substance_misuse FROM staging.index_events ORDER BY 1").fetchall() \
        == [("A1", 12.5, True), ("A2", None, False), ("A3", 80.0, True), ("A5", 0.0, True)]
    # The Great Expectations suites follow the adjusted contract, and pass.
    people = next(o for o in run.tables["people"].outcomes if o.column_name == "region" and o.rule == "domain")
    assert (people.unexpected_count, people.description) == (0, "expected one of NC, MD, VA")
    sex = next(o for o in run.tables["people"].outcomes if o.column_name == "sex" and o.rule == "domain")
    assert sex.description == "expected one of female, male, other (value map: M read as male; F read as female)"
    needs = [o.expectation for o in run.tables["index_events"].outcomes if o.column_name == "needs_score"]
    assert needs == ["expect_column_values_to_be_between"]
    assert run.quarantined == dict.fromkeys(run.quarantined, 0)
    page = (settings.paths.reports / "data-quality" / "index.html").read_text()
    assert "people.region: allowed values replaced by NC, MD, VA" in page
    assert "people.sex: value map, codes read M as male, F as female" in page
    assert "index_events.needs_score: the extract&#x27;s own number column (optional, 0 to 100)" in page
    con.close()


def test_a_run_blocked_by_references_names_the_codes_that_quarantined_the_rows_they_name(make_settings):
    settings = make_settings(contract={"people": {"columns": {"sex": {"from": "gender"}}},
                                       "index_events": {"columns": {"index_date": {"from": "release_date"}}}})
    write_landing(settings.paths.landing, {"people": PEOPLE, "index_events": INDEX_EVENTS})
    con = warehouse.connect(settings)
    ingest.ingest(con, settings.paths.landing, settings.tables)
    run = validation.validate_warehouse(con, settings)
    assert run.blocked
    assert run.blocking_reasons == [
        "people: 5 of 5 rows (100.00%) fail at ingest or critical expectations, more than max_failing_row_share "
        "5.00%: out_of_domain at ingest (5 rows)",
        "index_events.person_id expect_column_values_to_be_in_set: not found in people.person_id for 5 of 5 rows; "
        "0.00% resolve, below min_reference_rate",
        "people: rows quarantined at ingest, so references to them cannot resolve: sex out_of_domain 5 (e.g. 'F'); "
        "`desist check` suggests value maps",
    ]
    con.close()


def test_a_changed_mapping_reads_the_files_again(make_settings, tmp_path):
    landing = tmp_path / "landing"
    write_landing(landing, {"people": PEOPLE})
    settings = make_settings()
    con = warehouse.connect(settings)
    first = ingest.ingest(con, landing, settings.tables)
    # Without the settings the file lacks sex, and its regions and codes are not the contract's.
    assert [f.status for f in first.raw.files] == ["rejected"]
    assert "required column(s) missing: sex" in first.raw.files[0].reason
    second = ingest.ingest(con, landing, load_settings(write_settings(tmp_path, landing, contract=US_CONTRACT)).tables)
    assert [(f.action, f.status) for f in second.raw.files] == [("new", "loaded")]
    assert second.tables["people"].rows_loaded == 5
    con.close()


@pytest.mark.parametrize(("contract", "message"), [
    ({"persons": {}}, "contract.persons: no such table"),
    ({"people": {"columns": {"gender": {"from": "sex"}}}}, "contract.people.columns.gender: no such column"),
    ({"people": {"columns": {"sex": {"values": {"M": "man"}}}}},
     r"contract.people.columns.sex: values map to \['man'\], which are not allowed"),
    ({"people": {"columns": {"birth_year": {"allowed": ["1990"]}}}},
     "allowed values apply to text columns, not integer"),
    ({"index_events": {"extra_columns": [{"name": "risk_score", "type": "number"}]}},
     "extra_columns.risk_score: the name is already a column or derived covariate"),
    ({"index_events": {"extra_columns": [{"name": "region", "type": "text"}]}},
     "extra_columns.region: the name is already a column or derived covariate"),
    ({"index_events": {"extra_columns": [{"name": "needs", "type": "decimal"}]}}, "type"),
    ({"index_events": {"columns": {"person_id": {"required": False}}}}, "a key column cannot be optional"),
    ({"people": {"columns": {"sex": {"from": "gender"}}, "extra_columns": [{"name": "gender_code", "from": "gender",
                                                                             "type": "text"}]}},
     r"extract column\(s\) \['gender'\] are mapped more than once"),
])
def test_contract_settings_are_checked(make_settings, contract, message):
    with pytest.raises(ValueError, match=message):
        make_settings(contract=contract)


def test_covariate_settings_are_checked(make_settings):
    with pytest.raises(ValueError, match=r"covariates.missing names \['needs'\], which are not listed"):
        make_settings(covariates={"missing": {"needs": "missing_indicator"}})
    with pytest.raises(ValueError, match="missing"):
        make_settings(covariates={"missing": {"risk_score": "drop"}})


def test_default_covariates_use_only_required_columns_and_derived_measures(tmp_path):
    from desist.config import Covariates
    from desist.contract import DERIVED_COVARIATES, TABLES

    required = {c.name for name in ("people", "index_events") for c in TABLES[name].columns if c.required}
    assert set(Covariates().all) <= required | set(DERIVED_COVARIATES)
    assert Covariates().all == ["age_at_index", "prior_proven_offences", "prior_custodial_sentences",
                                "years_since_first_offence", "sentence_months", "female", "index_type", "region"]


# --- an optional covariate the extract does not have ------------------------------------------

@pytest.fixture(scope="module")
def sample_with_needs_score(tmp_path_factory):
    """The sample ingested with an extra optional column needs_score that its files do not carry."""
    def build(rule: str):
        folder = tmp_path_factory.mktemp(f"needs_{rule}")
        settings = load_settings(write_settings(folder, SAMPLE_DIR, contract={"index_events": {"extra_columns": [
            {"name": "needs_score", "type": "number", "minimum": 0, "maximum": 100}]}}, covariates={
            "numeric": ["age_at_index", "prior_proven_offences", "sentence_months", "needs_score"],
            "binary": ["female"], "categorical": ["index_type"], "missing": {"needs_score": rule}}))
        con = warehouse.connect(settings)
        ingest.ingest(con, settings.paths.landing, settings.tables)
        analysis.build_analysis(con)
        return settings, con
    return build


def attrition(con, programme_id: str, group: str) -> list[tuple]:
    return con.execute("SELECT step, people, lost, reason FROM analysis.attrition WHERE programme_id = ? "
                       "AND cohort_group = ? AND step_number >= 4 ORDER BY step_number",
                       [programme_id, group]).fetchall()


def test_absent_optional_covariate_with_missing_indicator_keeps_everyone(sample_with_needs_score):
    settings, con = sample_with_needs_score("missing_indicator")
    complete, analysed = attrition(con, "P01", "participants")
    # Nobody is lost between complete follow-up and analysis: the covariates used are all required.
    assert (complete[0], analysed[0], analysed[2]) == ("complete_follow_up", "analysed", 0)
    assert analysed[1] == complete[1] > 60
    people = con.execute(ANALYSED_PEOPLE, {"programme_id": "P01"}).df()
    measures = con.execute("SELECT person_id, window_months, reoffended, frequency, days_to_first, "
                           "custodial_reoffence FROM analysis.measures WHERE programme_id = 'P01'").df()
    result = evaluate_effects("P01", people, measures, matching_spec(settings), windows=[6, 12, 24],
                              headline_window=12)
    assert result.status == "ok"
    assert result.message == ("covariate needs_score dropped: every person analysed has the same value; "
                              "covariate needs_score_missing dropped: every person analysed has the same value")
    assert "needs_score" not in result.propensity_model["term"].tolist()
    assert int(result.matched_sets["treated"].sum()) == analysed[1]
    con.close()


def test_absent_optional_covariate_with_complete_case_is_named_in_attrition(sample_with_needs_score):
    settings, con = sample_with_needs_score("complete_case")
    steps = attrition(con, "P01", "participants")
    complete = steps[0][1]
    assert steps == [
        ("complete_follow_up", complete, steps[0][2], steps[0][3]),
        ("covariate_needs_score", 0, complete,
         "needs_score is missing (covariates are complete_case unless covariates.missing says otherwise)"),
        ("analysed", 0, 0, None),
    ]
    assert analysis.unanalysed_reason(con, "P01") == (
        "P01: no participant with complete follow-up has every complete-case covariate; missing: needs_score "
        "(drop them from covariates, or set covariates.missing to missing_indicator for them)")
    con.close()


# --- design checks ---------------------------------------------------------------------------

def test_constant_and_near_constant_covariates_are_dropped_with_a_note():
    n = 200
    people = pd.DataFrame({
        "treated": [1, 0] * (n // 2),
        "age": [20.0 + (i % 37) for i in range(n)],
        "female": [0.0] * n,
        "veteran": [1.0 if i < 4 else 0.0 for i in range(n)],  # 4 people differ
        "score": [float(i % 11) if i % 3 else None for i in range(n)],
        "region": ["NC"] * (n - 3) + ["VA"] * 3,
    })
    spec = MatchingSpec(covariates=["age", "female", "veteran", "score", "region"], categorical=["region"],
                        missing_indicator=["score"])
    frame, kept, notes = prepare_covariates(people, spec)
    assert list(kept.covariates) == ["age", "score", "score_missing"]
    assert list(kept.categorical) == []
    assert notes == [
        "covariate female dropped: every person analysed has the same value",
        "covariate veteran dropped: nearly constant (fewer than 5 people analysed differ from the most common value)",
        "covariate region dropped: nearly constant (fewer than 5 people analysed differ from the most common value)",
    ]
    # filled with the mean of the observed scores, flagged where missing
    observed = people["score"].dropna()
    assert frame.loc[0, "score"] == pytest.approx(observed.mean())
    assert frame["score_missing"].sum() == people["score"].isna().sum() == 67
    assert len(frame) == n


def test_perfect_separation_is_reported_by_name():
    n = 200
    people = pd.DataFrame({"person_id": [f"p{i}" for i in range(n)], "treated": [i % 2 == 0 for i in range(n)],
                           "age": [20.0 + (i % 37) for i in range(n)],
                           "referred": [float(i % 2 == 0) for i in range(n)]})
    measures = pd.DataFrame({"person_id": people["person_id"], "window_months": 12, "reoffended": 0,
                             "frequency": 0, "days_to_first": None, "custodial_reoffence": 0})
    result = evaluate_effects("P", people, measures, MatchingSpec(covariates=["age", "referred"]), [12], 12)
    assert result.status == "propensity_model_failed"
    assert result.message.startswith("covariate(s) 'referred' separate treated from comparison people perfectly")


# --- a renamed and recoded extract, end to end ------------------------------------------------

def test_a_renamed_and_recoded_extract_runs_end_to_end_with_only_settings_added(sample_run, tmp_path):
    recode(SAMPLE_DIR, tmp_path / "landing")
    header = (tmp_path / "landing" / "people.csv").read_text().splitlines()[0]
    assert header == "person_id,Gender,birth_year,Ethnicity,Area Code"
    config = write_settings(tmp_path, tmp_path / "landing", contract=CONTRACT)
    assert materialize_all(config).success

    def results(settings, sql):
        with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
            return con.sql(sql).fetchall()

    recoded = load_settings(config)
    # every code was mapped: nothing quarantined, as in the sample
    quarantined = "SELECT table_name, reason, stage, count(*) FROM quarantine.rows GROUP BY ALL ORDER BY ALL"
    assert results(recoded, quarantined) == results(sample_run, quarantined) == []
    for sql in (
        "SELECT table_name, sum(rows_loaded) FROM raw.ingest_summary GROUP BY ALL ORDER BY ALL",
        "SELECT programme_id, status, n_treated_analysed, n_comparison_pool FROM results.programmes_analysed",
        "SELECT programme_id, measure, window_months, estimator, round(difference, 12), round(se, 12) "
        "FROM results.effects ORDER BY ALL",
        "SELECT programme_id, term, round(coef, 9) FROM results.propensity_model ORDER BY ALL",
    ):
        expected = results(sample_run, sql)
        assert expected and results(recoded, sql) == expected, sql


def test_an_extra_text_column_of_people_is_a_categorical_covariate(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    for path in SAMPLE_DIR.glob("*.csv"):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if path.stem == "people":
            frame["Area Type"] = ["rural" if int(pid[1:]) % 3 == 0 else "urban" for pid in frame["person_id"]]
        frame.to_csv(landing / path.name, index=False)
    settings = load_settings(write_settings(
        tmp_path, landing,
        contract={"people": {"extra_columns": [{"name": "area_type", "from": "Area Type", "type": "text",
                                                "allowed": ["urban", "rural"], "required": True}]}},
        covariates={"numeric": ["age_at_index"], "binary": [], "categorical": ["index_type", "area_type"]}))
    con = warehouse.connect(settings)
    ingest.ingest(con, landing, settings.tables)
    analysis.build_analysis(con)
    # person ids are S00001...: a third of them (every third number) are rural
    assert con.sql("SELECT area_type, count(*) FROM staging.people GROUP BY ALL ORDER BY ALL").fetchall() == \
        [("rural", 6666), ("urban", 13334)]
    people = con.execute(analysis.ANALYSED_PEOPLE, {"programme_id": "P01"}).df()
    measures = con.execute("SELECT person_id, window_months, reoffended, frequency, days_to_first, "
                           "custodial_reoffence FROM analysis.measures WHERE programme_id = 'P01'").df()
    result = evaluate_effects("P01", people, measures, matching_spec(settings), windows=[12], headline_window=12)
    assert result.status == "ok"
    # categorical levels in sorted order, the first the reference
    assert result.propensity_model["term"].tolist() == [
        "(Intercept)", "age_at_index", "index_type[custody_release]", "area_type[urban]"]
    assert "area_type" in set(result.balance["variable"])
    con.close()


# --- gaps in a covariate analysed with a missing indicator, end to end --------------------------

def test_gaps_in_a_missing_indicator_covariate_run_end_to_end_with_the_indicator(tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(SAMPLE_DIR, landing)
    events = pd.read_csv(landing / "index_events.csv", dtype=str, keep_default_na=False)
    events.loc[events.index % 5 == 0, "risk_score"] = ""  # a fifth of the risk scores not recorded
    events.to_csv(landing / "index_events.csv", index=False)
    config = write_settings(tmp_path, landing, covariates={"missing": {"risk_score": "missing_indicator"}})

    outcome = materialize_all(config, raise_on_error=False)

    assert outcome.success, outcome.reason
    with duckdb.connect(str(load_settings(config).paths.warehouse), read_only=True) as con:
        # The risk model and the diagnostics' models take the indicator, as the effects models do.
        assert con.execute("SELECT count(*) FROM results.risk_coefficients WHERE term = 'risk_score_missing'"
                       ).fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM results.propensity_model WHERE term = 'risk_score_missing'"
                       ).fetchone() == (4,)
        estimated = con.execute("SELECT count(*) FROM results.programmes_analysed WHERE status = 'ok'").fetchone()[0]
        assert con.execute("SELECT count(*) FROM results.diagnostics WHERE diagnostic = 'doubly_robust' "
                       "AND isfinite(value)").fetchone()[0] == estimated == 4
