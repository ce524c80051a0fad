"""The researcher database as a whole pipeline run on the committed sample publishes it.

Documented (every table, view and column carries its comment), pseudonymous (no direct
identifiers, no birth years, no quarantined raw values), consistent with the warehouse it was
built from, and described by docs/research.md and docs/data-dictionary.md as they stand.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import time

import dagster as dg
import duckdb
import pytest
from conftest import SAMPLE_DIR, materialize_all

from desist import publish
from desist.config import PROJECT_ROOT, load_settings, write_settings
from desist.contract import DIRECT_IDENTIFIERS
from desist.runs import failure_reason
from pipelines.publish import ResearchBuild, parquet_folder
from pipelines.resources import Warehouse

RESEARCH_MD = PROJECT_ROOT / "docs" / "research.md"
PERSON_LEVEL = {"cohort", "covariates_by_index", "measures_by_index", "survival_times_by_index", "covariates",
                "measures", "survival_times", "matched_sets", "unmatched", "matched_outcomes", "risk_scores"}
BIRTH_LIKE = re.compile(r"birth|dob|born")
QUARANTINED_VALUES = {"raw_value", "raw_record", "detail", "source_file", "source_row", "unexpected_sample"}


@pytest.fixture(scope="module")
def research(sample_run):
    with duckdb.connect(str(sample_run.paths.research), read_only=True) as con:
        yield con


@pytest.fixture(scope="module")
def warehouse(sample_run):
    with duckdb.connect(str(sample_run.paths.warehouse), read_only=True) as con:
        yield con


def published_objects(con) -> dict[str, tuple[str, str | None]]:
    """name -> (kind, comment) of every table and view in the published file."""
    rows = con.execute(
        "SELECT table_name, 'table', comment FROM duckdb_tables() WHERE NOT internal "
        "UNION ALL SELECT view_name, 'view', comment FROM duckdb_views() WHERE NOT internal"
    ).fetchall()
    return {name: (kind, comment) for name, kind, comment in rows}


def published_columns(con) -> dict[str, list[tuple[str, str, str | None]]]:
    """name -> [(column, type, comment)] in column order."""
    columns: dict[str, list[tuple[str, str, str | None]]] = {}
    for table, column, dtype, comment in con.execute(
        "SELECT table_name, column_name, data_type, comment FROM duckdb_columns() WHERE NOT internal "
        "ORDER BY table_name, column_index"
    ).fetchall():
        columns.setdefault(table, []).append((column, dtype, comment))
    return columns


def test_the_published_set_is_the_catalogue(research):
    catalogue = publish.load_catalogue()
    assert {name: kind for name, (kind, _) in published_objects(research).items()} == {
        obj.name: obj.kind for obj in catalogue}
    columns = published_columns(research)
    for obj in catalogue:
        assert [column for column, _, _ in columns[obj.name]] == list(obj.columns), obj.name


def test_every_table_view_and_column_carries_its_comment(research):
    catalogue = {obj.name: obj for obj in publish.load_catalogue()}
    for name, (_, comment) in published_objects(research).items():
        assert comment and comment == catalogue[name].description, name
    for name, columns in published_columns(research).items():
        for column, _, comment in columns:
            assert comment and comment.strip() == catalogue[name].columns[column], f"{name}.{column}"
            assert "|" not in comment, f"{name}.{column}: the comment would break the dictionary's table"


def test_person_level_objects_carry_pseudonymous_ids_only(research):
    columns = published_columns(research)
    person_level = {name for name, cols in columns.items() if "person_id" in {c for c, _, _ in cols}}
    assert person_level == PERSON_LEVEL
    for name in person_level:
        names = {column for column, _, _ in columns[name]}
        assert not names & DIRECT_IDENTIFIERS, name
        assert not [column for column in names if BIRTH_LIKE.search(column)], name
        assert not names & {"sex", "ethnic_group", "mentor_id"}, name
    for name, cols in columns.items():
        assert not {column for column, _, _ in cols} & QUARANTINED_VALUES, name


def test_quarantine_summary_has_the_columns_desist_status_reads(research):
    assert [c for c, _, _ in published_columns(research)["quarantine_summary"]] == ["table_name", "stage", "reason", "rows"]


def test_quarantine_and_data_quality_counts_without_publishing_raw_values(sample_run, tmp_path):
    """Quarantined rows and failing values holding a marker: the counts are published, the marker nowhere."""
    warehouse_copy = tmp_path / "warehouse.duckdb"
    shutil.copy(sample_run.paths.warehouse, warehouse_copy)
    marker = "Jane Q Example 1970-01-01"
    with duckdb.connect(str(warehouse_copy)) as con:
        con.execute(
            "INSERT INTO quarantine.rows SELECT 'people', 'people_extra.csv', i, 'birth_year', ?, "
            "CASE WHEN i <= 3 THEN 'out_of_range' ELSE 'bad_integer' END, ?, ?, 'ingest', now() "
            "FROM range(1, 6) AS r(i)",
            [marker, f"birth_year: '{marker}'", f'{{"person_id": "{marker}"}}'],
        )
        con.execute(
            "INSERT INTO results.data_quality VALUES ('later-run', now() + INTERVAL 1 DAY, 'people', 'birth_year', "
            "'expect_column_values_to_be_between', 'critical', 'quarantined', 20005, 5, ?)",
            [marker],
        )
        publish.publish(con, tmp_path / "research.duckdb", tmp_path / "research_parquet")
    with duckdb.connect(str(tmp_path / "research.duckdb"), read_only=True) as con:
        assert con.execute("SELECT * FROM quarantine_summary").fetchall() == [
            ("people", "ingest", "bad_integer", 2), ("people", "ingest", "out_of_range", 3)]
        assert con.execute("SELECT run_id, table_name, status, unexpected_count FROM data_quality").fetchall() == [
            ("later-run", "people", "quarantined", 5)]
        text_columns = con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() "
            "WHERE NOT internal AND data_type = 'VARCHAR' AND table_name IN (SELECT table_name FROM duckdb_tables())"
        ).fetchall()
        for table, column in text_columns:
            found = con.execute(f'SELECT count(*) FROM {table} WHERE contains("{column}", ?)', [marker]).fetchall()[0][0]
            assert found == 0, f"{table}.{column}"


def test_every_example_query_in_research_md_runs_and_returns_rows(research):
    blocks = re.findall(r"```sql\n(.*?)```", RESEARCH_MD.read_text(), flags=re.DOTALL)
    assert len(blocks) == 10  # every example query of the guide is run below
    for block in blocks:
        assert research.execute(block).fetchall(), block


def test_the_committed_data_dictionary_is_up_to_date(sample_run):
    assert publish.DATA_DICTIONARY.read_text() == publish.data_dictionary(sample_run.paths.research), (
        "docs/data-dictionary.md is stale: run the pipeline and `desist dictionary`")


def test_the_dictionary_follows_the_catalogue_order(sample_run):
    headings = re.findall(r"^## `(\w+)` \((table|view)\)$", publish.data_dictionary(sample_run.paths.research),
                          flags=re.MULTILINE)
    assert headings == [(obj.name, obj.kind) for obj in publish.load_catalogue()]


def test_the_parquet_export_holds_every_table_with_its_rows(sample_run, research):
    folder = sample_run.paths.research.with_name("research_parquet")
    tables = {name for name, (kind, _) in published_objects(research).items() if kind == "table"}
    assert {path.stem for path in folder.glob("*.parquet")} == tables
    for table in tables:
        in_file = research.execute(f"SELECT count(*) FROM {table}").fetchall()
        assert research.execute(f"SELECT count(*) FROM '{folder / (table + '.parquet')}'").fetchall() == in_file, table


def test_every_published_table_and_its_parquet_copy_hold_exactly_the_warehouse_rows(sample_run, research, warehouse):
    # Row for row and value for value, in the catalogue's order.
    folder = sample_run.paths.research.with_name("research_parquet")
    warehouse.execute("SET VARIABLE publish_person_level = true")
    for obj in publish.load_catalogue():
        if obj.kind != "table":
            continue
        expected = warehouse.sql(obj.sql).to_arrow_table()
        assert research.sql(f"SELECT * FROM {obj.name}").to_arrow_table().equals(expected), obj.name
        copy = f"'{folder / (obj.name + '.parquet')}'"  # Parquet has no HUGEINT: compared as DuckDB reads it back
        assert research.execute(f"SELECT count(*) FROM (SELECT * FROM {obj.name} EXCEPT ALL SELECT * FROM {copy}) "
                                f"UNION ALL SELECT count(*) FROM (SELECT * FROM {copy} EXCEPT ALL SELECT * FROM "
                                f"{obj.name})").fetchall() == [(0,), (0,)], obj.name
    assert expected.num_rows > 0


def test_person_level_tables_hold_the_warehouse_rows(research, warehouse):
    for published, source in [("cohort", "analysis.cohort"), ("covariates_by_index", "analysis.covariates_by_index"),
                              ("covariates", "analysis.covariates"), ("measures_by_index", "analysis.measures_by_index"),
                              ("measures", "analysis.measures"),
                              ("survival_times_by_index", "analysis.survival_by_index"),
                              ("survival_times", "analysis.survival"),
                              ("matched_sets", "results.matched_sets")]:
        assert research.execute(f"SELECT count(*) FROM {published}").fetchall() == \
            warehouse.execute(f"SELECT count(*) FROM {source}").fetchall(), published
    # 20,000 people in the sample; four programmes, each with every eligible person once.
    assert research.execute("SELECT count(*), count(DISTINCT person_id) FROM cohort").fetchall() == [(80_000, 20_000)]
    assert research.execute("SELECT count(*) FROM measures").fetchall() == [(240_000,)]
    # Stored once per person and index date in cohort (427 participants' index dates differ from the one
    # they have in the other programmes' comparison pools), three windows each.
    assert research.execute("SELECT count(DISTINCT (person_id, index_date)) FROM cohort").fetchall() == [(20_427,)]
    assert research.execute("SELECT count(*), count(DISTINCT (person_id, index_date)) FROM covariates_by_index"
                            ).fetchall() == [(20_427, 20_427)]
    assert research.execute("SELECT count(*) FROM measures_by_index").fetchall() == [(61_281,)]
    assert research.execute("SELECT count(*) FROM survival_times_by_index").fetchall() == [(20_427,)]


def test_the_matched_sample_is_one_to_one(research):
    """1:1 matching without replacement: each matched set holds one participant and one comparison person."""
    sets = research.execute(
        "SELECT programme_id, count(*) AS sets, bool_and(size = 2 AND participants = 1) AS pairs "
        "FROM (SELECT programme_id, subclass, count(*) AS size, count(*) FILTER (WHERE treated) AS participants "
        "      FROM matched_sets WHERE weight > 0 GROUP BY ALL) GROUP BY programme_id ORDER BY programme_id"
    ).fetchall()
    matched = research.execute(
        "SELECT programme_id, n_matched FROM sample_sizes WHERE grp = 'treated' ORDER BY programme_id").fetchall()
    assert [(p, n, True) for p, n in matched] == sets
    assert research.execute("SELECT count(*) FROM unmatched").fetchall() == research.execute(
        "SELECT sum(n_unmatched)::BIGINT FROM sample_sizes WHERE grp = 'treated'").fetchall()


def test_reoffending_by_group_reproduces_the_effect_estimates_group_means(research):
    """The view's SQL rates equal the group means models/effects.py estimated, to rounding."""
    rows = research.execute("""
        SELECT grouped.sample, grouped.grp, grouped.reoffending_rate, grouped.people,
               CASE WHEN grouped.grp = 'treated' THEN effect.treated_value ELSE effect.comparison_value END,
               CASE WHEN grouped.grp = 'treated' THEN effect.n_treated ELSE effect.n_comparison END
        FROM reoffending_by_group AS grouped
        JOIN effects AS effect
          ON effect.programme_id = grouped.programme_id AND effect.window_months = grouped.window_months
         AND effect.measure = 'reoffended'
         AND effect.estimator = CASE grouped.sample WHEN 'matched' THEN 'matched' ELSE 'naive' END
    """).fetchall()
    assert len(rows) == 4 * 2 * 2 * 3  # programmes x samples x groups x windows
    for sample, group, rate, people, estimated_rate, estimated_people in rows:
        assert rate == pytest.approx(estimated_rate, abs=1e-12), (sample, group)
        assert people == estimated_people, (sample, group)


def test_headline_effects_is_the_matched_twelve_month_rate_difference(research):
    headline = research.execute(
        "SELECT programme_id, programme_name, difference, ci_lower, ci_upper, naive_difference, sentence "
        "FROM headline_effects ORDER BY programme_id").fetchall()
    effects = research.execute(
        "SELECT programme_id, difference, ci_lower, ci_upper FROM effects "
        "WHERE measure = 'reoffended' AND window_months = 12 AND estimator = 'matched' ORDER BY programme_id"
    ).fetchall()
    names = research.execute("SELECT programme_id, name FROM programmes ORDER BY programme_id").fetchall()
    assert [(row[0], row[1]) for row in headline] == names
    assert [(row[0], row[2], row[3], row[4]) for row in headline] == effects
    assert all(row[6].startswith("For 100 typical people who took part") for row in headline)
    assert all(row[5] is not None for row in headline)


def test_headline_effects_follows_the_headline_window_of_the_run(sample_run, tmp_path):
    copy = tmp_path / "research.duckdb"
    shutil.copy(sample_run.paths.research, copy)
    with duckdb.connect(str(copy)) as con:
        # by default the file holds the person-level tables, and says so
        assert con.execute("SELECT headline_months, person_level FROM run_info").fetchall() == [(12, True)]
        assert con.execute("SELECT count(*) FROM matched_sets").fetchone()[0] > 0
        con.execute("UPDATE run_info SET headline_months = 6")
        headline = con.execute("SELECT programme_id, n_treated, difference, naive_difference FROM headline_effects "
                               "ORDER BY programme_id").fetchall()
        six_months = con.execute("""
            SELECT matched.programme_id, matched.n_treated, matched.difference, naive.difference
            FROM effects AS matched JOIN effects AS naive USING (programme_id, measure, window_months)
            WHERE matched.measure = 'reoffended' AND matched.window_months = 6
              AND matched.estimator = 'matched' AND naive.estimator = 'naive'
            ORDER BY programme_id""").fetchall()
    assert len(headline) == 4
    assert headline == six_months


def test_balance_summary_counts_the_flags_of_balance(research):
    flagged = research.execute(
        "SELECT programme_id, stage, count(*) FILTER (WHERE abs(smd) >= 0.1) FROM balance "
        "WHERE covariate <> 'distance' GROUP BY ALL ORDER BY ALL").fetchall()
    summary = research.execute(
        "SELECT programme_id, stage, terms_smd_over_threshold FROM balance_summary ORDER BY ALL").fetchall()
    assert summary == flagged
    assert len(summary) == 8


def test_run_info_records_the_settings_and_their_hash(research, sample_run):
    settings_json, settings_hash = research.execute("SELECT settings::VARCHAR, settings_hash FROM run_info").fetchone()
    assert hashlib.sha256(settings_json.encode()).hexdigest() == settings_hash
    recorded = json.loads(settings_json)
    # The values of evaluation.yaml as the sample run read them, and the defaults it leaves out.
    assert recorded["matching"] == {"ratio": 1, "replace": False, "caliper": 0.2, "exact": []}
    assert recorded["data_cutoff"] == "2025-06-30"
    assert recorded["disclosure"]["min_count"] == 10
    assert [c["id"] for c in recorded["success_criteria"]][:2] == ["reoffending", "life_skills"]
    assert "paths" not in recorded and "source" not in recorded and "alerts" not in recorded


def test_the_settings_hash_follows_the_analysis_settings_not_the_paths(tmp_path):
    from desist.config import load_settings, write_settings
    from desist.provenance import settings_record

    def settings_in(folder, **overrides):
        folder.mkdir()
        return load_settings(write_settings(folder, folder / "landing", **overrides))

    here = settings_record(settings_in(tmp_path / "a"))[1]
    elsewhere = settings_record(settings_in(tmp_path / "b"))[1]
    wider_caliper = settings_record(settings_in(tmp_path / "c", matching={"caliper": 0.25}))[1]
    assert here == elsewhere
    assert wider_caliper != here


# ---- built while the reports are written, swapped in only when every step before succeeded ----------

@pytest.fixture
def published_copy(sample_run, tmp_path):
    """A new evaluation folder holding a copy of the sample run's warehouse and published database."""
    settings = load_settings(write_settings(tmp_path, SAMPLE_DIR))
    shutil.copy(sample_run.paths.warehouse, settings.paths.warehouse)
    shutil.copy(sample_run.paths.research, settings.paths.research)
    return settings


END_OF_PUBLISH = [dg.AssetKey(["results", "indicators"]), dg.AssetKey(["reports", "html"]),
                  dg.AssetKey(["published", "research_db"])]


def publish_steps(settings, assets=END_OF_PUBLISH):
    """Steps of evaluation_publish (by default indicators, reports and the researcher database; None: all) on a
    throw-away instance."""
    from pipelines.definitions import build_definitions

    job = build_definitions(str(settings.source)).resolve_job_def("evaluation_publish")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False, asset_selection=assets)
        return result, [(entry.step_key, entry.dagster_event.event_type_value if entry.dagster_event else
                         entry.user_message) for entry in instance.all_logs(result.run_id)]


def file_digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_nothing_left_building(settings):
    research = settings.paths.research
    assert sorted(p.name for p in research.parent.iterdir() if "building" in p.name) == []
    # The build's read-only connection is closed: this process may open the warehouse for writing again.
    duckdb.connect(str(settings.paths.warehouse)).close()


def test_the_database_is_built_while_the_reports_are_written_and_a_failed_report_publishes_none_of_it(
        published_copy):
    settings = published_copy
    before = file_digest(settings.paths.research)
    settings.paths.reports.write_text("a file where the reports folder goes")

    result, events = publish_steps(settings)

    assert not result.success
    started = events.index(("results__indicators", "the researcher database is being built while reports__html "
                                                   "runs"))
    assert events.index(("results__indicators", "STEP_SUCCESS")) < started < events.index(
        ("reports__html", "STEP_START"))
    assert ("reports__html", "STEP_FAILURE") in events
    assert ("published__research_db", "STEP_START") not in events
    assert file_digest(settings.paths.research) == before
    assert not settings.paths.research.with_name("research_parquet").exists()
    assert_nothing_left_building(settings)


def test_the_researcher_database_publishes_what_the_publish_runs_writers_wrote(tmp_path):
    from pipelines.definitions import build_definitions

    config = write_settings(tmp_path, SAMPLE_DIR)  # a new warehouse: no indicators until the run writes them
    settings = load_settings(config)

    def published_and_written_indicators() -> tuple[int, int]:
        with duckdb.connect(str(settings.paths.research), read_only=True) as research, \
                duckdb.connect(str(settings.paths.warehouse), read_only=True) as warehouse:
            return (research.execute("SELECT count(*) FROM indicators").fetchone()[0],
                    warehouse.execute("SELECT count(*) FROM results.indicators").fetchone()[0])

    with dg.instance_for_test() as instance:
        # `desist run`: the build starts with the publish run.
        materialize_all(config, instance=instance)
        published, written = published_and_written_indicators()
        assert published == written > 0
        # The publish job run on its own, as the daemon runs it: its hooks start the build after the assembly.
        with duckdb.connect(str(settings.paths.warehouse)) as con:
            con.execute("DELETE FROM results.indicators")  # the indicators step writes them again
        job = build_definitions(str(config)).resolve_job_def("evaluation_publish")
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        events = [(entry.step_key, entry.dagster_event.event_type_value if entry.dagster_event else entry.user_message)
                  for entry in instance.all_logs(result.run_id)]

    assert result.success
    started = events.index(("assembled_results", "the researcher database is being built while reports__html, "
                                                 "results__indicators runs"))
    assert events.index(("assembled_results", "STEP_SUCCESS")) < started < events.index(
        ("results__indicators", "STEP_START"))
    published, written = published_and_written_indicators()
    assert published == written > 0


def test_a_build_beside_the_results_writers_copies_each_table_once_its_writer_is_done(published_copy):
    settings = published_copy
    warehouse = Warehouse(config_file=str(settings.source))
    with warehouse.connect() as con:
        for table in ("rmst", "indicators"):  # the assembly and the indicators step write them again meanwhile
            con.execute(f"CREATE TABLE results.{table}_kept AS SELECT * FROM results.{table}")
            con.execute(f"DELETE FROM results.{table}")

    build = ResearchBuild(warehouse, being_written=["results", "results.indicators"])

    def built() -> set[str]:
        with warehouse.connect(read_only=True) as con:  # shares the build's read-write database
            return {name for (name,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'research_build'").fetchall()}

    def waiting_with(tables: set[str]) -> bool:
        deadline = time.monotonic() + 60
        while not tables <= built() and build.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(1)
        return tables <= built() and build.thread.is_alive()

    # Read from the other schemas (the person-level ones, most of the rows, first): copied at once.
    unwritten = {"cohort", "covariates_by_index", "measures_by_index", "survival_times_by_index", "attrition",
                 "ingest_summary", "programmes", "quarantine_summary"}
    assert waiting_with(unwritten) and built() == unwritten
    with warehouse.connect() as con:
        rmst = con.execute("INSERT INTO results.rmst SELECT * FROM results.rmst_kept").fetchone()[0]
    build.writers_done(["results"])
    assert waiting_with({"rmst", "effects", "matched_sets", "risk_scores"}) and "indicators" not in built()
    with warehouse.connect() as con:
        indicators = con.execute("INSERT INTO results.indicators SELECT * FROM results.indicators_kept").fetchone()[0]
    build.writers_done(["results.indicators"])
    counts = build.result()
    assert counts["rmst"] == rmst > 0 and counts["indicators"] == indicators > 0
    publish.swap_in(settings.paths.research, parquet_folder(settings))
    with duckdb.connect(str(settings.paths.research), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM indicators").fetchone()[0] == indicators
        assert con.execute("SELECT count(*) FROM rmst").fetchone()[0] == rmst
    assert_nothing_left_building(settings)


def test_a_failed_build_stops_the_run_naming_the_table_and_keeps_the_published_database(published_copy):
    settings = published_copy
    with duckdb.connect(str(settings.paths.warehouse)) as con:
        con.execute("DROP TABLE results.rmst")
    before = file_digest(settings.paths.research)

    result, events = publish_steps(settings)

    assert not result.success
    assert ("reports__html", "STEP_SUCCESS") in events  # the pages say the RMST table is not available
    assert failure_reason(result.all_events) == ("step 'published__research_db' failed: CatalogException: Catalog "
                                                 "Error: Table with name rmst does not exist!")
    assert file_digest(settings.paths.research) == before
    assert_nothing_left_building(settings)
