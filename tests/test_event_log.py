"""The local instance's storages (desist/event_log.py): the same runs and events as Dagster's own SQLite
storages, pool slots still claimed and freed, and a watcher (the UI's live run log) still told of each new
event."""

import threading

import dagster as dg
import pytest

from desist import event_log as storages
from desist.event_log import OpenSqliteEventLogStorage, OpenSqliteRunStorage, OpenSqliteScheduleStorage


@dg.asset(pool="warehouse")
def counted() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset(deps=[counted])
def summarised(context: dg.AssetExecutionContext) -> None:
    context.log.info("summarised 3 rows")


def event_log(tmp_path, storage: str) -> dict:
    overrides = {"concurrency": {"pools": {"default_limit": 1}}}
    if storage == "open":
        home = tmp_path / storage
        for key, name, folder in [("run_storage", "OpenSqliteRunStorage", home / "history"),
                                  ("event_log_storage", "OpenSqliteEventLogStorage", home / "history" / "runs"),
                                  ("schedule_storage", "OpenSqliteScheduleStorage", home / "schedules")]:
            overrides[key] = {"module": "desist.event_log", "class": name, "config": {"base_dir": str(folder)}}
    return overrides


@pytest.mark.parametrize("batch_size", ["0", "1000"])
def test_a_run_records_the_same_events_and_frees_its_pool_slot(tmp_path, monkeypatch, batch_size):
    # With a batch size, Dagster sends a run's planned materialisations as one batch (`desist run` sets it).
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch_size)
    batches = []
    store_event_batch = OpenSqliteEventLogStorage.store_event_batch
    monkeypatch.setattr(OpenSqliteEventLogStorage, "store_event_batch",
                        lambda self, events: (batches.append(len(events)), store_event_batch(self, events)))
    recorded = {}
    for storage in ("dagster", "open"):
        (tmp_path / storage).mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / storage), overrides=event_log(tmp_path, storage)) as instance:
            assert isinstance(instance.event_log_storage, OpenSqliteEventLogStorage) == (storage == "open")
            assert isinstance(instance.run_storage, OpenSqliteRunStorage) == (storage == "open")
            assert isinstance(instance.schedule_storage, OpenSqliteScheduleStorage) == (storage == "open")
            instance.add_dynamic_partitions("programmes", ["P02", "P01"])
            result = dg.materialize([counted, summarised], instance=instance, tags={"desist/pid": "7"})
            assert result.success
            run = instance.get_run_by_id(result.run_id)
            recorded[storage] = [(run.status, run.tags["desist/pid"], instance.get_dynamic_partitions("programmes"))] + [
                (entry.dagster_event.event_type_value if entry.dagster_event else entry.user_message, entry.step_key)
                for entry in instance.all_logs(result.run_id)]
            if storage == "open":  # every database in WAL mode, commits not waiting for the disk (1 = NORMAL)
                for store in (instance.run_storage, instance.schedule_storage):
                    with store.connect() as conn:
                        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
            materialization = instance.get_latest_materialization_event(dg.AssetKey("counted"))
            assert materialization.asset_materialization.metadata["rows"].value == 3
            pool = instance.event_log_storage.get_concurrency_info("warehouse")
            assert (pool.limit, pool.claimed_slots, pool.pending_steps) == (1, [], [])
    assert recorded["open"] == recorded["dagster"]
    assert len(recorded["open"]) > 15 and ("summarised 3 rows", "summarised") in recorded["open"]
    assert batches == ([2] if batch_size == "1000" else [])  # the two assets' planned materialisations


def test_a_watcher_of_a_run_is_told_of_each_event_as_it_is_written(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as source:
        run_id = dg.materialize([counted], instance=source).run_id
        entries = source.all_logs(run_id)
    storage = OpenSqliteEventLogStorage(str(tmp_path / "runs"))
    seen, arrived = [], threading.Event()

    def watcher(entry, _cursor):
        seen.append(entry.dagster_event.event_type_value if entry.dagster_event else entry.user_message)
        if len(seen) == len(entries):
            arrived.set()

    storage.watch(run_id, None, watcher)
    try:
        for entry in entries:
            storage.store_event(entry)
        assert arrived.wait(20), f"the watcher saw {len(seen)} of {len(entries)} events"
    finally:
        storage.end_watch(run_id, watcher)
        storage.dispose()
    assert len(seen) == len(entries) and seen[-1] == "PIPELINE_SUCCESS"


def schema(path) -> tuple:
    """A SQLite database's tables and indexes (their SQL), migration stamp and data migrations marked done."""
    import sqlite3

    with sqlite3.connect(path) as connection:
        tables = sorted(connection.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
        stamp = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        marks = sorted(connection.execute("SELECT name FROM secondary_indexes").fetchall()) if any(
            name == "secondary_indexes" for _, name, _ in tables) else []
    connection.close()
    return tables, stamp, marks


def test_new_databases_are_copies_of_the_empty_ones_dagster_makes(tmp_path, monkeypatch):
    monkeypatch.setattr(storages, "TEMPLATES", tmp_path / "cache" / "templates")
    run_ids = {}
    for storage in ("dagster", "open"):
        (tmp_path / storage).mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / storage), overrides=event_log(tmp_path, storage)) as instance:
            run_ids[storage] = dg.materialize([counted], instance=instance).run_id
    assert sorted(path.name for path in storages.TEMPLATES.iterdir()) == ["index.db", "run.db", "runs.db",
                                                                          "schedules.db"]
    for ours, dagsters in [("history/runs.db", "history/runs.db"), ("schedules/schedules.db", "schedules/schedules.db"),
                           ("history/runs/index.db", "history/runs/index.db"),
                           (f"history/runs/{run_ids['open']}.db", f"history/runs/{run_ids['dagster']}.db")]:
        tables, stamp, marks = schema(tmp_path / "open" / ours)
        assert (tables, stamp, marks) == schema(tmp_path / "dagster" / dagsters), ours
        assert len(tables) >= 3 and len(stamp) == 1
    assert len(schema(tmp_path / "open" / "history/runs.db")[2]) == 7  # run storage's data migrations, marked done


def test_without_a_writable_cache_dagster_creates_the_databases(tmp_path, monkeypatch):
    (tmp_path / "cache").write_text("a file where the cache folder would be")
    monkeypatch.setattr(storages, "TEMPLATES", tmp_path / "cache" / "templates")
    (tmp_path / "open").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "open"), overrides=event_log(tmp_path, "open")) as instance:
        assert dg.materialize([counted], instance=instance).success
        assert [run.status for run in instance.get_runs()] == [dg.DagsterRunStatus.SUCCESS]
    assert schema(tmp_path / "open" / "history/runs.db")[1] == schema(tmp_path / "open" / "history/runs/index.db")[1]


def test_a_batch_that_fails_part_way_writes_none_of_its_events(tmp_path, monkeypatch):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as source:
        run_id = dg.materialize([counted], instance=source).run_id
        entries = source.all_logs(run_id)
    storage = OpenSqliteEventLogStorage(str(tmp_path / "runs"))
    store_event = OpenSqliteEventLogStorage.store_event

    def fails_on_the_third(self, event):
        if event is entries[2]:
            raise RuntimeError("disk full")
        store_event(self, event)

    monkeypatch.setattr(OpenSqliteEventLogStorage, "store_event", fails_on_the_third)
    with pytest.raises(RuntimeError, match="disk full"):
        storage.store_event_batch(entries[:4])
    assert storage.get_logs_for_run(run_id) == []
    monkeypatch.setattr(OpenSqliteEventLogStorage, "store_event", store_event)
    storage.store_event_batch(entries)
    assert [e.dagster_event.event_type_value if e.dagster_event else e.user_message
            for e in storage.get_logs_for_run(run_id)] == [
        e.dagster_event.event_type_value if e.dagster_event else e.user_message for e in entries]
    storage.dispose()
