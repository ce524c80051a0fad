"""The researcher database: documented, swapped in atomically, readable while a run republishes."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
import time

import duckdb
import pytest

from desist import publish, warehouse
from desist.publish import load_catalogue


def _warehouse_with_run_info(settings, run_id: str):
    con = warehouse.connect(settings)
    con.execute(
        "CREATE OR REPLACE TABLE results.run_info AS SELECT ?::VARCHAR AS run_id, "
        "now()::TIMESTAMPTZ AS started_at, 'v'::VARCHAR AS code_version, 'f'::VARCHAR AS input_fingerprint, "
        "DATE '2025-06-30' AS data_cutoff",
        [run_id],
    )
    return con


@pytest.fixture
def single_table_catalogue(tmp_path):
    """Publish only run_info so these tests do not need a whole pipeline's results."""
    folder = tmp_path / "published"
    (folder / "tables").mkdir(parents=True)
    (folder / "views").mkdir()
    (folder / "catalogue.yaml").write_text(textwrap.dedent("""\
        run_info:
          description: One row about the run.
          columns:
            run_id: Run id.
            started_at: Start.
            code_version: Code.
            input_fingerprint: Inputs.
            data_cutoff: Cut-off.
        run_ids:
          kind: view
          description: The run ids.
          columns:
            run_id: Run id.
    """))
    (folder / "tables" / "run_info.sql").write_text("SELECT * FROM results.run_info")
    (folder / "views" / "run_ids.sql").write_text("SELECT run_id FROM run_info")
    return folder / "catalogue.yaml"


def test_published_objects_carry_their_comments(make_settings, single_table_catalogue, tmp_path):
    settings = make_settings()
    with _warehouse_with_run_info(settings, "run-1") as con:
        counts = publish.publish(con, settings.paths.research, tmp_path / "parquet", single_table_catalogue)
    assert counts == {"run_info": 1}
    with duckdb.connect(str(settings.paths.research), read_only=True) as reader:
        assert reader.execute("SELECT comment FROM duckdb_tables() WHERE table_name='run_info'").fetchone() == (
            "One row about the run.",)
        assert reader.execute("SELECT comment FROM duckdb_views() WHERE view_name='run_ids'").fetchone() == (
            "The run ids.",)
        assert reader.execute(
            "SELECT comment FROM duckdb_columns() WHERE table_name='run_info' AND column_name='data_cutoff'"
        ).fetchone() == ("Cut-off.",)
        assert reader.execute("SELECT run_id FROM run_ids").fetchall() == [("run-1",)]
    assert duckdb.sql(f"SELECT run_id FROM '{tmp_path / 'parquet' / 'run_info.parquet'}'").fetchall() == [("run-1",)]
    assert not settings.paths.research.with_name("research.duckdb.building").exists()


def test_the_extracts_own_columns_follow_the_covariates_own_row_for_row(make_settings, tmp_path):
    folder = tmp_path / "published"
    (folder / "tables").mkdir(parents=True)
    (folder / "views").mkdir()
    (folder / "catalogue.yaml").write_text(textwrap.dedent("""\
        covariates_by_index:
          description: Covariates once per person.
          columns:
            person_id: Person.
            score: Score.
        covariates:
          kind: view
          description: Covariates per programme.
          columns:
            programme_id: Programme.
            person_id: Person.
            score: Score.
    """))
    # As in sql/published/tables/covariates_by_index.sql: a comment between the columns and FROM.
    (folder / "tables" / "covariates_by_index.sql").write_text(
        "SELECT person_id, score\n-- notes is left out on purpose\nFROM analysis.covariates_by_index\n")
    (folder / "views" / "covariates.sql").write_text(
        "SELECT programme.programme_id, covariate.* FROM covariates_by_index AS covariate "
        "CROSS JOIN (SELECT 'P1' AS programme_id) AS programme")
    settings = make_settings()
    with warehouse.connect(settings) as con:
        con.execute("CREATE TABLE analysis.covariates_by_index AS SELECT * FROM (VALUES ('C', 2.5, 'no', 7, 'b'), "
                    "('B', 1.5, 'yes', NULL, 'a'), ('A', 0.5, NULL, 3, 'c')) "
                    "AS t(person_id, score, needs, visits, notes)")
        counts = publish.publish(con, settings.paths.research, tmp_path / "parquet", folder / "catalogue.yaml",
                                 extra_covariates={"needs": "Needs, as supplied.", "visits": "Visits."})
    assert counts == {"covariates_by_index": 3}
    expected = [("C", 2.5, "no", 7), ("B", 1.5, "yes", None), ("A", 0.5, None, 3)]
    extra_comments = [("needs", "Needs, as supplied."), ("visits", "Visits.")]
    with duckdb.connect(str(settings.paths.research), read_only=True) as reader:
        assert reader.execute("SELECT * FROM covariates_by_index").fetchall() == expected  # the warehouse's order
        assert sorted(reader.execute("SELECT * FROM covariates").fetchall()) == sorted(("P1", *row) for row in expected)
        for name, own in [("covariates_by_index", []), ("covariates", [("programme_id", "Programme.")])]:
            assert reader.execute("SELECT column_name, comment FROM duckdb_columns() WHERE table_name = ? "
                                  "ORDER BY column_index", [name]).fetchall() == [
                *own, ("person_id", "Person."), ("score", "Score."), *extra_comments], name
    assert sorted(duckdb.sql(f"SELECT * FROM '{tmp_path / 'parquet' / 'covariates_by_index.parquet'}'").fetchall(),
                  key=str) == sorted(expected, key=str)


def test_the_extracts_own_columns_need_the_covariates_query_to_end_with_its_table():
    covariates = next(obj for obj in load_catalogue() if obj.name == "covariates_by_index")
    assert publish.with_extra_columns(covariates, {"needs": "Needs."}).sql.endswith(
        "-- history instead).\n, needs\nFROM analysis.covariates_by_index")
    joined = dataclasses.replace(covariates, sql=covariates.sql + " JOIN analysis.cohort USING (person_id)")
    with pytest.raises(ValueError, match=r"'covariates_by_index' must end with 'FROM analysis.covariates_by_index'"):
        publish.with_extra_columns(joined, {"needs": "Needs."})


def test_an_undocumented_column_stops_publishing(make_settings, single_table_catalogue):
    settings = make_settings()
    with _warehouse_with_run_info(settings, "run-1") as con:
        con.execute("ALTER TABLE results.run_info ADD COLUMN surprise INTEGER")
        with pytest.raises(ValueError, match=r"'run_info'.*undocumented columns \['surprise'\]"):
            publish.publish(con, settings.paths.research, catalogue=single_table_catalogue)
    assert not settings.paths.research.exists()


READER = textwrap.dedent("""
    import sys, time, duckdb
    path = sys.argv[1]
    con = duckdb.connect(path, read_only=True)
    print(con.execute("SELECT run_id FROM run_info").fetchone()[0], flush=True)
    sys.stdin.readline()                 # the test republishes meanwhile
    print(con.execute("SELECT run_id FROM run_info").fetchone()[0], flush=True)
    con.close()
    con = duckdb.connect(path, read_only=True)
    print(con.execute("SELECT run_id FROM run_info").fetchone()[0], flush=True)
""")


def test_reader_keeps_working_while_the_run_republishes(make_settings, single_table_catalogue):
    settings = make_settings()
    with _warehouse_with_run_info(settings, "run-1") as con:
        publish.publish(con, settings.paths.research, catalogue=single_table_catalogue)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(settings.paths.research)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "run-1"
        started = time.monotonic()
        with _warehouse_with_run_info(settings, "run-2") as con:
            publish.publish(con, settings.paths.research, catalogue=single_table_catalogue)   # must not wait for, or fail on, the open reader
        assert time.monotonic() - started < 30
        reader.stdin.write("go\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "run-1"   # the open connection still reads its file
        assert reader.stdout.readline().strip() == "run-2"   # a new connection sees the new data
        assert reader.wait(timeout=30) == 0
    finally:
        reader.kill()


def test_data_dictionary_lists_every_column_with_its_comment(make_settings, single_table_catalogue):
    settings = make_settings()
    with _warehouse_with_run_info(settings, "run-1") as con:
        publish.publish(con, settings.paths.research, catalogue=single_table_catalogue)
    text = publish.data_dictionary(settings.paths.research)
    assert "## `run_info` (table)" in text
    assert "| `input_fingerprint` | VARCHAR | Inputs. |" in text
    assert "## `run_ids` (view)" in text


def test_every_catalogue_entry_has_its_sql_and_documents_every_column():
    objects = load_catalogue()
    assert objects, "the catalogue is empty"
    for obj in objects:
        assert obj.description, obj.name
        assert all(text for text in obj.columns.values()), obj.name
        assert obj.sql.upper().startswith(("SELECT", "WITH")), obj.name
