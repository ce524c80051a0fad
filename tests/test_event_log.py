"""The local instance's storages (desist/event_log.py): the same runs and events as Dagster's own SQLite
storages, pool slots still claimed and freed, and a watcher (the UI's live run log) still told of each new
event."""

import threading

import dagster as dg

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


def test_a_run_records_the_same_events_and_frees_its_pool_slot(tmp_path):
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
