"""The programme steps' fast reads give the models exactly what the plain reads gave: the effects
step's one narrow query through Arrow against desist.analysis.ANALYSED_PEOPLE read into pandas
with the measures laid out by models.evaluation._measures_wide, and the diagnostics step's
matched-sample read against the whole cohort."""
from __future__ import annotations

from dataclasses import replace

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from conftest import SAMPLE_DIR
from desist import analysis, ingest, warehouse
from desist.config import load_settings, write_settings
from models.diagnostics import Thresholds
from models.evaluation import _measures_wide, evaluate_diagnostics, evaluate_effects
from pipelines.diagnostics import MATCHED_SAMPLE
from pipelines.effects import ANALYSED_PEOPLE, analysed_people, analysed_people_extra, matching_spec, read_cohort

MEASURES = ("SELECT person_id, window_months, reoffended, frequency, days_to_first, custodial_reoffence "
            "FROM analysis.measures WHERE programme_id = $programme_id")
# A covariate with missing values filled in and flagged, so the read meets a nullable column too.
COVARIATES = {"numeric": ["age_at_index", "prior_proven_offences", "sentence_months", "risk_score"],
              "binary": ["female", "employment_at_index"], "categorical": ["index_type", "region"],
              "missing": {"risk_score": "missing_indicator"}}


@pytest.fixture(scope="module")
def sample_warehouse(tmp_path_factory):
    folder = tmp_path_factory.mktemp("programme_reads")
    settings = load_settings(write_settings(folder, SAMPLE_DIR, covariates=COVARIATES))
    con = warehouse.connect(settings)
    ingest.ingest(con, settings.paths.landing, settings.tables)
    analysis.build_analysis(con)
    # Some people without a risk score: their covariates are complete (missing_indicator), the
    # value is NULL in the read.
    con.execute("UPDATE analysis.covariates_by_index SET risk_score = NULL WHERE hash(person_id) % 40 = 0")
    yield settings, con
    con.close()


def plain_read(con, settings, programme_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    where = {"programme_id": programme_id}
    return con.execute(ANALYSED_PEOPLE, where).df(), con.execute(MEASURES, where).df()


@pytest.mark.parametrize("programme_id", ["P01", "P02"])
def test_read_cohort_gives_the_analysed_people_and_their_measures_as_the_plain_read_does(
        sample_warehouse, programme_id):
    settings, con = sample_warehouse
    people, measures = plain_read(con, settings, programme_id)
    cohort = read_cohort(con, settings, programme_id)

    covariates = ["person_id", "treated", *settings.covariates.all]
    wide = _measures_wide(people["person_id"], measures, settings.follow_up.windows_months)
    assert cohort.columns[:2].tolist() == ["person_id", "treated"]  # then the covariates, in the table's order
    assert sorted(cohort.columns[2:len(covariates)]) == sorted(settings.covariates.all)
    assert cohort.columns[len(covariates):].tolist() == wide.columns.tolist()
    assert len(cohort) == len(people) > 100
    assert cohort["risk_score"].isna().sum() == people["risk_score"].isna().sum() > 0
    for name in covariates:
        expected, got = people[name], cohort[name]
        if name in settings.covariates.categorical:
            assert list(got.cat.categories) == sorted(expected.unique())  # the levels astype('category') makes
        assert got.astype(object).where(got.notna(), None).tolist() == \
            expected.astype(object).where(expected.notna(), None).tolist(), name
    np.testing.assert_array_equal(cohort[wide.columns].to_numpy(), wide.to_numpy())

    # The models give the same tables from either read, to the last bit.
    spec = matching_spec(settings)
    arguments = dict(windows=settings.follow_up.windows_months, headline_window=settings.follow_up.headline_months)
    fast = evaluate_effects(programme_id, cohort, None, spec, **arguments)
    plain = evaluate_effects(programme_id, people, measures, spec, **arguments)
    assert fast.status == plain.status == "ok"
    for table in ("propensity_model", "matched_sets", "balance", "sample_sizes", "effects"):
        pd.testing.assert_frame_equal(getattr(fast, table).astype({"person_id": object} if table == "matched_sets"
                                                                   else {}),
                                      getattr(plain, table), check_exact=True, obj=table)


def programme_copy(con, settings, programme_id: str) -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse holding one programme's analysis.cohort and the rows of
    analysis.covariates_by_index and analysis.measures_by_index its cohort reads."""
    copy = duckdb.connect()
    warehouse.set_variables(copy, settings)
    copy.execute("CREATE SCHEMA analysis")
    cohort = "(SELECT person_id, index_date FROM analysis.cohort WHERE programme_id = $programme_id)"
    for table, query in [("cohort", "SELECT * FROM analysis.cohort WHERE programme_id = $programme_id"),
                         ("covariates_by_index", f"SELECT * FROM analysis.covariates_by_index SEMI JOIN {cohort} "
                                                 "USING (person_id, index_date)"),
                         ("measures_by_index", f"SELECT * FROM analysis.measures_by_index SEMI JOIN {cohort} "
                                               "USING (person_id, index_date)")]:
        copy.register("source", con.execute(query, {"programme_id": programme_id}).df())
        copy.execute(f"CREATE TABLE analysis.{table} AS SELECT * FROM source")
    return copy


def test_a_duplicated_measure_row_stops_the_read_naming_the_programme(sample_warehouse, tmp_path):
    settings, con = sample_warehouse
    copy = programme_copy(con, settings, "P02")
    copy.execute("""
        INSERT INTO analysis.measures_by_index
        SELECT * FROM analysis.measures_by_index WHERE window_months = 6 AND person_id = (
            SELECT min(person_id) FROM analysis.covariates_by_index JOIN analysis.measures_by_index
                                  USING (person_id, index_date)
            WHERE covariates_complete AND window_months = 12 AND complete)""")
    with pytest.raises(dg.Failure, match="programme P02: analysis.measures holds more than one row for a person "
                                         "and follow-up window"):
        read_cohort(copy, settings, "P02")


def test_a_measure_too_large_for_its_float32_column_stops_the_read(sample_warehouse):
    # The cohort holds the measures as float32, exact for counts below 2**24: a larger value is not
    # rounded but named.
    settings, con = sample_warehouse
    copy = programme_copy(con, settings, "P02")
    assert len(read_cohort(copy, settings, "P02")) > 100
    copy.execute("""
        UPDATE analysis.measures_by_index SET frequency = 16777216 WHERE window_months = 6 AND person_id = (
            SELECT min(person_id) FROM analysis.covariates_by_index JOIN analysis.measures_by_index
                                  USING (person_id, index_date)
            WHERE covariates_complete AND window_months = 12 AND complete)""")
    with pytest.raises(dg.Failure, match="programme P02: analysis.measures.frequency holds a value of 16,777,216 "
                                         "or more, out of the measures' range"):
        read_cohort(copy, settings, "P02")


def test_diagnostics_from_the_matched_sample_equal_those_from_everyone(sample_warehouse, tmp_path):
    settings, con = sample_warehouse
    # Without the covariate with gaps: the doubly robust model takes the covariates as they are.
    spec = replace(matching_spec(settings), missing_indicator=(),
                   covariates=[name for name in settings.covariates.all if name != "risk_score"])
    # The matched sample as the effects step leaves it: its analysed_people file.
    cohort = read_cohort(con, settings, "P02", extra=analysed_people_extra(settings))
    extra = {name: cohort.pop(name) for name in analysed_people_extra(settings)}
    effects = evaluate_effects("P02", cohort, None, spec, windows=settings.follow_up.windows_months,
                               headline_window=settings.follow_up.headline_months)
    path = tmp_path / "analysed_people.parquet"
    con.register("people", analysed_people("P02", cohort, extra, effects.matched_sets, settings))
    con.execute(f"COPY (SELECT * FROM people) TO '{path}' (FORMAT parquet)")
    con.unregister("people")
    everyone = con.execute(
        f"SELECT people.*, headline.reoffended, controls.pre_offences_12, controls.pre_offended_24_12 "
        f"FROM ({ANALYSED_PEOPLE}) AS people "
        "JOIN analysis.measures AS headline USING (programme_id, person_id, index_date) "
        "JOIN analysis.negative_controls AS controls USING (programme_id, person_id, index_date) "
        "WHERE headline.window_months = getvariable('headline_months') ORDER BY people.person_id",
        {"programme_id": "P02"}).df()
    sample = con.execute(MATCHED_SAMPLE, {"people": str(path)}).df()
    assert len(sample) == int((effects.matched_sets["weight"] > 0).sum()) < len(everyone)

    arguments = (effects.matched_sets, effects.balance, effects.effects, spec, settings.follow_up.headline_months,
                 Thresholds())
    from_sample = evaluate_diagnostics(sample, *arguments)
    from_everyone = evaluate_diagnostics(everyone, *arguments)
    pd.testing.assert_frame_equal(from_sample.table, from_everyone.table, check_exact=True)
    pd.testing.assert_frame_equal(from_sample.estimates, from_everyone.estimates, check_exact=True)
    assert len(from_sample.table) >= 12

    with pytest.raises(ValueError, match="1 people of the matched sample have no row in the people given"):
        evaluate_diagnostics(sample.iloc[1:], *arguments)


def test_a_programme_with_nobody_analysed_reads_as_an_empty_cohort(sample_warehouse):
    settings, con = sample_warehouse
    cohort = read_cohort(con, settings, "NO-SUCH-PROGRAMME")
    assert len(cohort) == 0
    assert cohort.columns[-12:].tolist()[:4] == ["reoffended_6", "frequency_6", "days_to_first_6",
                                                 "custodial_reoffence_6"]
