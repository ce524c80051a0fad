"""Programmes as partitions: a new, changed or removed programme touches only its own partitions, and
programmes run side by side; all through real runs recorded in a real Dagster instance."""
from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd
import pytest

from conftest import materialize_all
from desist import warehouse as wh
from desist.config import load_settings, write_settings
from desist.generate import write_extract
from pipelines.definitions import build_definitions
from pipelines.partitions import (FINGERPRINT_TAG, PROGRAMME_ASSETS, PROGRAMMES, partition_file, planned_fingerprints,
                                  programme_fingerprints, recorded_fingerprint, warehouse_state)
from pipelines.stages import ProgrammePlan

PROGRAMME_TABLES = ("programmes", "participation", "mentors")


def read(landing, table: str) -> pd.DataFrame:
    return pd.read_csv(landing / f"{table}.csv", dtype=str, keep_default_na=False)


def write(landing, table: str, frame: pd.DataFrame) -> None:
    frame.to_csv(landing / f"{table}.csv", index=False)


def add_twin_programme(landing, source: str, twin: str) -> None:
    """A new programme whose enrolments are those of `source` (same people, dates and sessions), with its
    own mentors: nobody else's cohort or comparison pool changes, and its results must equal `source`'s."""
    programmes, participation, mentors = (read(landing, table) for table in PROGRAMME_TABLES)
    row = programmes[programmes["programme_id"] == source].assign(programme_id=twin, name=f"Twin of {source}")
    enrolments = participation[participation["programme_id"] == source].assign(
        programme_id=twin, mentor_id=lambda f: f["mentor_id"].str.replace(source, twin, n=1))
    own_mentors = mentors[mentors["programme_id"] == source].assign(
        programme_id=twin, mentor_id=lambda f: f["mentor_id"].str.replace(source, twin, n=1))
    write(landing, "programmes", pd.concat([programmes, row]))
    write(landing, "participation", pd.concat([participation, enrolments]))
    write(landing, "mentors", pd.concat([mentors, own_mentors]))


def materialised_partitions(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[dg.AssetKey, set[str]]:
    """Per partitioned asset, the partition keys these runs materialised, from the instance's event log."""
    found: dict[dg.AssetKey, set[str]] = {key: set() for key in PROGRAMME_ASSETS}
    for run_id in run_ids:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            materialization = entry.asset_materialization
            if materialization.asset_key in found:
                found[materialization.asset_key].add(materialization.partition)
    return found


def results(settings, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        return con.execute(sql).df()


EFFECTS = ("SELECT * EXCLUDE (programme_id) FROM results.effects WHERE programme_id = $1 "
           "ORDER BY measure, window_months, estimator")


@pytest.fixture
def settings(tmp_path):
    """A small generated extract and its settings."""
    landing = tmp_path / "landing"
    write_extract(landing, people=6_000, seed=11)
    return load_settings(write_settings(tmp_path, landing))


def test_programmes_run_side_by_side_and_a_new_changed_or_removed_one_touches_only_itself(settings):
    landing = settings.paths.landing
    original = sorted(read(landing, "programmes")["programme_id"])
    assert original == ["P01", "P02", "P03", "P04"]
    with dg.instance_for_test() as instance:
        first = materialise(settings, instance)
        assert first.plan.changed == original
        # Programmes ran side by side, each reading the warehouse, without a DuckDB lock error.
        assert overlapping_programme_runs(instance, first)
        assert materialised_partitions(instance, first.run_ids) == {key: set(original) for key in PROGRAMME_ASSETS}
        # Each programme's run carries the fingerprint the planner read, and every step recorded it: the
        # hash of the rows as they are, computed here again.
        with wh.connect(settings, read_only=True) as con:
            computed = programme_fingerprints(con, settings)
        for programme_id in original:
            assert instance.get_run_by_id(first.programme_runs[programme_id]).tags[FINGERPRINT_TAG] == computed[
                programme_id]
            assert {recorded_fingerprint(instance, key, programme_id) for key in PROGRAMME_ASSETS} == {
                computed[programme_id]}
        before = {p: results(settings, EFFECTS.replace("$1", f"'{p}'")) for p in original}
        # A programme run started by hand, without the tag, hashes the same inputs to the same value.
        by_hand = build_definitions(str(settings.source)).resolve_job_def("programme_evaluation").execute_in_process(
            instance=instance, partition_key="P02", raise_on_error=False)
        assert by_hand.success and FINGERPRINT_TAG not in instance.get_run_by_id(by_hand.run_id).tags
        assert {key: recorded_fingerprint(instance, key, "P02") for key in PROGRAMME_ASSETS} == {
            key: computed["P02"] for key in PROGRAMME_ASSETS}

        # A programme added: only its partitions run; the results tables hold every programme.
        add_twin_programme(landing, "P04", "P05")
        second = materialise(settings, instance)
        assert second.plan.added == ["P05"] and second.plan.changed == ["P05"]
        assert materialised_partitions(instance, second.run_ids) == {key: {"P05"} for key in PROGRAMME_ASSETS}
        assert sorted(instance.get_dynamic_partitions(PROGRAMMES.name)) == [*original, "P05"]
        analysed = results(settings, "SELECT programme_id, status FROM results.programmes_analysed ORDER BY 1")
        assert analysed["programme_id"].tolist() == [*original, "P05"]
        assert (analysed["status"] == "ok").all()
        for programme_id in original:  # the others' results were carried over unchanged
            pd.testing.assert_frame_equal(results(settings, EFFECTS.replace("$1", f"'{programme_id}'")),
                                          before[programme_id])
        # The twin had the same people as P04: the same estimates, computed on their own.
        pd.testing.assert_frame_equal(results(settings, EFFECTS.replace("$1", "'P05'")), before["P04"])
        with duckdb.connect(str(settings.paths.research), read_only=True) as research:
            assert research.execute("SELECT count(DISTINCT programme_id) FROM effects").fetchone()[0] == 5

        # One enrolment of the new programme dropped, and the programme's run fails (a folder stands where
        # its effects file goes): the evaluation stops naming it, and nothing is assembled or published.
        participation = read(landing, "participation")
        dropped = participation.index[participation["programme_id"] == "P05"][0]
        write(landing, "participation", participation.drop(index=dropped))
        published = settings.paths.research.stat().st_mtime_ns
        obstacle = partition_file(settings, "effects", "P05")
        obstacle.unlink()
        obstacle.mkdir()
        failed = materialize_all(settings.source, raise_on_error=False, instance=instance)
        assert failed.plan.changed == ["P05"]
        assert failed.reason.splitlines()[0].startswith("programme P05: step 'programmes__effects' failed: "
                                                        "IsADirectoryError")
        assert [instance.get_run_by_id(run_id).job_name for run_id in failed.run_ids] == [
            "evaluation", "programme_evaluation"]
        assert settings.paths.research.stat().st_mtime_ns == published
        obstacle.rmdir()

        # The same data again: only that programme runs.
        third = materialise(settings, instance)
        assert third.plan.changed == ["P05"] and third.plan.added == []
        assert materialised_partitions(instance, third.run_ids) == {key: {"P05"} for key in PROGRAMME_ASSETS}
        n_treated = results(settings, "SELECT programme_id, n_treated_analysed FROM results.programmes_analysed "
                                      "WHERE programme_id IN ('P04', 'P05') ORDER BY 1")["n_treated_analysed"]
        assert n_treated.tolist()[1] in (n_treated.tolist()[0] - 1, n_treated.tolist()[0])

        # The programme removed from the extract: its partition and its files go, nothing runs.
        for table in PROGRAMME_TABLES:
            frame = read(landing, table)
            write(landing, table, frame[frame["programme_id"] != "P05"])
        assert partition_file(settings, "effects", "P05").exists()
        fourth = materialise(settings, instance)
        assert fourth.plan.removed == ["P05"] and fourth.plan.changed == []
        assert materialised_partitions(instance, fourth.run_ids) == {key: set() for key in PROGRAMME_ASSETS}
        assert sorted(instance.get_dynamic_partitions(PROGRAMMES.name)) == original
        assert not partition_file(settings, "effects", "P05").exists()
        assert not partition_file(settings, "programmes_analysed", "P05").exists()
        assert results(settings, "SELECT programme_id FROM results.programmes_analysed ORDER BY 1")[
            "programme_id"].tolist() == original


def materialise(settings, instance):
    outcome = materialize_all(settings.source, raise_on_error=False, instance=instance)
    assert outcome.success, outcome.reason
    return outcome


def overlapping_programme_runs(instance: dg.DagsterInstance, outcome) -> list[tuple[str, str]]:
    """Pairs of programme runs whose steps overlapped in time (first step start to last step end, from
    the event log); each run must have succeeded."""
    spans = {}
    for programme_id, run_id in outcome.programme_runs.items():
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        times = [entry.timestamp for entry in instance.all_logs(run_id)
                 if entry.dagster_event and entry.dagster_event.event_type_value in ("STEP_START", "STEP_SUCCESS")]
        spans[programme_id] = (min(times), max(times))
    return [(a, b) for a in spans for b in spans
            if a < b and max(spans[a][0], spans[b][0]) < min(spans[a][1], spans[b][1])]


def test_the_publish_run_reuses_the_plans_fingerprints_only_while_nothing_writes_the_warehouse(tmp_path):
    settings = load_settings(write_settings(tmp_path, tmp_path / "landing"))
    with wh.connect(settings) as con:
        con.execute("CREATE TABLE staging.programmes AS SELECT 'P01' AS programme_id, 'Mentoring' AS name, "
                    "'a.csv' AS source_file, 1 AS source_row")
    plan = ProgrammePlan(programmes=["P01"], added=[], removed=[], changed=[], fingerprints={"P01": "0123abcd"},
                         warehouse=warehouse_state(settings))
    tags = plan.publish_tags({"desist/batch": "run-1"})
    assert tags["desist/batch"] == "run-1"
    assert planned_fingerprints(settings, tags) == {"P01": "0123abcd"}
    with wh.connect(settings, read_only=True) as con:  # the programme runs only read it
        assert con.execute("SELECT count(*) FROM staging.programmes").fetchone()[0] == 1
    assert planned_fingerprints(settings, tags) == {"P01": "0123abcd"}
    with wh.connect(settings) as con:  # a writer since the plan: hash again
        con.execute("INSERT INTO staging.programmes VALUES ('P02', 'Second', 'a.csv', 2)")
    assert planned_fingerprints(settings, tags) is None
    assert planned_fingerprints(settings, {"desist/batch": "run-1"}) is None  # a run the daemon started
