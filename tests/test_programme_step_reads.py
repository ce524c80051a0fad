"""The survival and subgroup steps' reads (one query through Arrow of the effects step's analysed_people
file, people put in order in NumPy) give the models what plain, sorted DuckDB queries of the analysis
tables give, and stop when an analysis table lacks or doubles a person of the matched sets, or when
the analysed_people file is missing or from other inputs."""
from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from conftest import SAMPLE_DIR
from desist import analysis, ingest, warehouse
from desist.config import load_settings, write_settings
from models.evaluation import evaluate_effects, evaluate_survival
from pipelines.diagnostics import read_diagnostic_inputs
from pipelines.effects import (analysed_people, analysed_people_extra, matching_spec, read_cohort,
                               read_survival_cohort)
from pipelines.for_whom import read_subgroup_people
from pipelines.partitions import ANALYSED_PEOPLE_FILE, partition_file, programme_fingerprints, write_partition

PROGRAMME = "P02"


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """The sample's warehouse with P02's matched_sets, balance, effects and analysed_people files written
    as the effects step writes them, and a risk band for some of the people (the rest have none, as
    when a person has no risk score)."""
    folder = tmp_path_factory.mktemp("programme_step_reads")
    settings = load_settings(write_settings(folder, SAMPLE_DIR))
    con = warehouse.connect(settings)
    ingest.ingest(con, settings.paths.landing, settings.tables)
    analysis.build_analysis(con)
    con.execute("CREATE OR REPLACE TABLE results.risk_scores AS SELECT DISTINCT person_id, index_date, "
                "['low', 'medium', 'high'][(1 + hash(person_id) % 3)::BIGINT] AS risk_band "
                "FROM analysis.covariates WHERE hash(person_id) % 5 > 0")
    people = read_cohort(con, settings, PROGRAMME, extra=analysed_people_extra(settings))
    extra = {name: people.pop(name) for name in analysed_people_extra(settings)}
    effects = evaluate_effects(PROGRAMME, people, None, matching_spec(settings),
                               windows=settings.follow_up.windows_months,
                               headline_window=settings.follow_up.headline_months)
    assert effects.status == "ok"
    inputs = programme_fingerprints(con, settings, [PROGRAMME])[PROGRAMME]
    write_partition(con, settings, PROGRAMME, ("matched_sets", "balance", "effects"),
                    {table: getattr(effects, table).assign(programme_id=PROGRAMME)
                     for table in ("matched_sets", "balance", "effects")})
    write_partition(con, settings, PROGRAMME, (ANALYSED_PEOPLE_FILE,),
                    {ANALYSED_PEOPLE_FILE: analysed_people(PROGRAMME, people, extra, effects.matched_sets, settings)},
                    inputs)
    yield settings, con, partition_file(settings, "matched_sets", PROGRAMME), inputs
    con.close()


def plain_survival(con, settings, path) -> pd.DataFrame:
    """Everyone analysed with what the survival analysis reads, by plain joins, in time order
    (ties in the matched_sets file's order)."""
    covariates = "".join(f", covariates.{warehouse.quoted(name)}" for name in settings.covariates.all)
    return con.execute(f"""
        SELECT sets.person_id, sets.treated, sets.weight, sets.subclass{covariates}, survival.time_days, survival.event
        FROM read_parquet($path, file_row_number = true) AS sets
        JOIN analysis.covariates AS covariates USING (programme_id, person_id)
        JOIN analysis.survival AS survival USING (programme_id, person_id)
        ORDER BY survival.time_days, sets.file_row_number""", {"path": str(path)}).df()


def as_lists(frame: pd.DataFrame) -> dict[str, list]:
    return {name: frame[name].astype(object).where(frame[name].notna(), None).tolist() for name in frame.columns}


def test_the_survival_read_gives_everyone_analysed_in_time_order_as_plain_joins_do(analysed):
    settings, con, path, _ = analysed
    plain = plain_survival(con, settings, path)
    cohort = read_survival_cohort(con, PROGRAMME, partition_file(settings, ANALYSED_PEOPLE_FILE, PROGRAMME))
    assert len(cohort) == len(plain) == len(pd.read_parquet(path)) > 100
    assert sorted(cohort.columns) == sorted(plain.columns)
    # The person id is read for the matched sample only, the people the matched analyses cluster on.
    matched = plain["weight"] > 0
    assert cohort["person_id"].notna().sum() == matched.sum() > 50
    expected = as_lists(plain.assign(person_id=plain["person_id"].where(matched)))
    assert as_lists(cohort[plain.columns]) == expected
    for name in settings.covariates.categorical:
        assert list(cohort[name].cat.categories) == sorted(plain[name].unique())

    # The published survival tables are those of the plain read.
    arguments = dict(spec=matching_spec(settings), horizon_days=settings.survival.rmst_horizon_days,
                     horizons=settings.survival.horizons_days)
    fast = evaluate_survival(PROGRAMME, cohort[cohort["weight"] > 0], cohort, **arguments)
    slow = evaluate_survival(PROGRAMME, plain[matched], plain, **arguments)
    for table in ("km_curves", "km_horizons", "logrank", "cox", "ph_tests", "rmst"):
        pd.testing.assert_frame_equal(getattr(fast, table), getattr(slow, table), check_exact=False, rtol=1e-12,
                                      obj=table)


def test_the_subgroup_read_gives_everyone_analysed_in_the_order_they_were_matched(analysed):
    settings, con, path, inputs = analysed
    plain = con.execute("""
        SELECT sets.treated, sets.logit_score, headline.reoffended::DOUBLE AS outcome, covariates.age_at_index,
               scores.risk_band, covariates.sex, covariates.index_type
        FROM read_parquet($path, file_row_number = true) AS sets
        JOIN analysis.covariates AS covariates USING (programme_id, person_id)
        JOIN analysis.measures AS headline USING (programme_id, person_id, index_date)
        LEFT JOIN results.risk_scores AS scores USING (person_id, index_date)
        WHERE headline.window_months = getvariable('headline_months')
        ORDER BY sets.file_row_number""", {"path": str(path)}).df()
    people = read_subgroup_people(con, settings, PROGRAMME, inputs)
    assert len(people) == len(plain) > 100
    assert sorted(people.columns) == sorted(plain.columns)
    assert 0 < people["risk_band"].isna().sum() < len(people)
    assert as_lists(people[plain.columns]) == as_lists(plain)


@pytest.mark.parametrize("change, message", [
    ("DELETE FROM analysis.survival_by_index WHERE person_id = (SELECT max(person_id) FROM read_parquet($path))",
     "lacks 1 of the {n} people analysed for its effects$"),
    ("INSERT INTO analysis.survival_by_index SELECT * FROM analysis.survival_by_index "
     "WHERE (person_id, index_date) = (SELECT (person_id, index_date::DATE) FROM read_parquet($path) "
     "ORDER BY person_id LIMIT 1)",
     "holds more than one row for 1 of the {n} people analysed for its effects$"),
])
def test_a_person_missing_or_doubled_in_the_survival_table_stops_the_read(analysed, change, message):
    settings, con, path, _ = analysed
    people = partition_file(settings, ANALYSED_PEOPLE_FILE, PROGRAMME)
    n = len(pd.read_parquet(path))
    con.execute("BEGIN")
    try:
        con.execute(change, {"path": str(path)})
        with pytest.raises(dg.Failure, match=f"^programme P02: analysis.survival {message.format(n=n)}"):
            read_survival_cohort(con, PROGRAMME, people)
    finally:
        con.execute("ROLLBACK")
    assert len(read_survival_cohort(con, PROGRAMME, people)) == n


def test_a_person_doubled_in_the_risk_scores_stops_the_subgroup_read(analysed):
    # The scores are joined on (person_id, index_date): a second row would count the person twice.
    settings, con, path, inputs = analysed
    n = len(pd.read_parquet(path))
    con.execute("BEGIN")
    try:
        doubled = con.execute("""
            INSERT INTO results.risk_scores SELECT scores.* FROM results.risk_scores AS scores
            WHERE (scores.person_id, scores.index_date) IN (
                SELECT (scores.person_id, scores.index_date)
                FROM read_parquet($path) AS sets
                JOIN analysis.covariates AS covariates USING (programme_id, person_id)
                JOIN results.risk_scores AS scores USING (person_id, index_date)
                ORDER BY scores.person_id LIMIT 1)""", {"path": str(path)}).fetchone()[0]
        assert doubled == 1
        with pytest.raises(dg.Failure, match=f"^programme P02: results.risk_scores holds more than one row for 1 of "
                                             f"the {n} people analysed for its effects$"):
            read_subgroup_people(con, settings, PROGRAMME, inputs)
    finally:
        con.execute("ROLLBACK")
    assert len(read_subgroup_people(con, settings, PROGRAMME, inputs)) == n


def test_the_analysed_people_file_holds_each_person_s_headline_measure_and_index_date(analysed):
    settings, con, path, _ = analysed
    plain = con.execute("""
        SELECT sets.person_id, covariates.index_date, headline.reoffended
        FROM read_parquet($path, file_row_number = true) AS sets
        JOIN analysis.covariates AS covariates USING (programme_id, person_id)
        JOIN analysis.measures AS headline USING (programme_id, person_id, index_date)
        WHERE headline.window_months = getvariable('headline_months') AND headline.complete
        ORDER BY sets.file_row_number""", {"path": str(path)}).df()
    people = con.execute("SELECT person_id, index_date::DATE AS index_date, reoffended FROM read_parquet($path)",
                         {"path": str(partition_file(settings, ANALYSED_PEOPLE_FILE, PROGRAMME))}).df()
    assert len(people) == len(plain) == len(pd.read_parquet(path)) > 100
    assert as_lists(people) == as_lists(plain)


@pytest.mark.parametrize("read", [
    lambda con, settings, inputs: read_subgroup_people(con, settings, PROGRAMME, inputs),
    lambda con, settings, inputs: read_diagnostic_inputs(con, settings, PROGRAMME, inputs),
])
def test_a_headline_row_removed_after_the_effects_step_stops_the_later_reads(analysed, read):
    """The later steps read the headline measure from the analysed_people file: one written before a
    headline row went away is from other inputs, and is not read."""
    settings, con, path, inputs = analysed
    con.execute("BEGIN")
    try:
        con.execute("DELETE FROM analysis.measures_by_index WHERE window_months = getvariable('headline_months') "
                    "AND person_id IN (SELECT person_id FROM read_parquet($path) LIMIT 2)", {"path": str(path)})
        now = programme_fingerprints(con, settings, [PROGRAMME])[PROGRAMME]
        assert now != inputs
        with pytest.raises(dg.Failure, match=f"^programme P02: .*analysed_people/P02.parquet was written from "
                                             f"other inputs \\(fingerprint {inputs}, this run's {now}\\)"):
            read(con, settings, now)
    finally:
        con.execute("ROLLBACK")
    assert np.array_equal(read_subgroup_people(con, settings, PROGRAMME, inputs)["logit_score"],
                          pd.read_parquet(path)["logit_score"])


def test_a_missing_analysed_people_file_stops_the_later_reads(analysed, tmp_path):
    settings, con, _, inputs = analysed
    elsewhere = settings.model_copy(update={"paths": settings.paths.model_copy(
        update={"warehouse": tmp_path / "warehouse.duckdb"})})
    with pytest.raises(dg.Failure, match="^programme P02: .*analysed_people/P02.parquet is missing"):
        read_subgroup_people(con, elsewhere, PROGRAMME, inputs)
