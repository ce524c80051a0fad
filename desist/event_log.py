"""The local Dagster instance's storage: Dagster's SQLite storages with their connections kept open.

Dagster's SQLite event log creates an engine, opens a connection and closes it again for every
event it writes; closing the last connection to a database in WAL mode checkpoints it and
deletes its journal, and every commit waits for the disk. A run writes about 60 events
(planned materialisations, step starts, outputs, successes), so that cost sat between every two
steps. This storage keeps one engine per database open, commits with ``synchronous=NORMAL``
(in WAL mode a process crash loses nothing; a power cut may lose the last events, never the
database) and checkpoints a run's database after each write, so the UI, which watches the
run's database file for changes, still streams the run's log as it happens.

The run and schedule storages get the same treatment: Dagster creates their databases with
journalled DDL (each of about 50 statements waiting for the disk: 0.8-3 s for a new instance on a
busy disk) and opens a new engine, and waits for the disk, for every run record it writes.
"""
from __future__ import annotations

import os
import sqlite3
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as db
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sql import get_alembic_config
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS

# Dagster's event log migrations, read once per process (Dagster reads them again for every new run's database).
MIGRATIONS = ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__))
OPEN_RUN_DATABASES = 4  # runs whose database stays open (a long-lived UI reads many runs' logs)


def _write_ahead(dbapi_connection, _record) -> None:
    """WAL from the start (Dagster switches a new run's database to it only after creating its tables, each
    table then waiting for the disk), commits that do not wait for the disk."""
    dbapi_connection.execute("PRAGMA journal_mode = WAL")
    dbapi_connection.execute("PRAGMA synchronous = NORMAL")


@contextmanager
def _write_ahead_while_creating(base_dir: str) -> Iterator[None]:
    """Every SQLite connection opened meanwhile to a database in `base_dir` in WAL mode, committing without
    waiting for the disk (Dagster's storages create their databases on connections of their own)."""
    folder = os.path.realpath(base_dir) + os.sep

    def in_folder(dbapi_connection, record) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            path = dbapi_connection.execute("PRAGMA database_list").fetchone()[2]
            if os.path.realpath(path).startswith(folder):
                _write_ahead(dbapi_connection, record)

    db.event.listen(db.pool.Pool, "connect", in_folder)
    try:
        yield
    finally:
        db.event.remove(db.pool.Pool, "connect", in_folder)


class _OpenEngine:
    """One engine per storage, kept open, its connections in WAL mode committing without waiting for the disk."""

    _conn_string: str
    _open_engine: db.Engine | None = None

    @contextmanager
    def connect(self) -> Iterator[db.Connection]:
        if self._open_engine is None:
            self._open_engine = db.create_engine(self._conn_string,
                                                 connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            db.event.listen(self._open_engine, "connect", _write_ahead)
        with self._open_engine.connect() as conn:
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        if self._open_engine is not None:
            self._open_engine.dispose()
            self._open_engine = None


class OpenSqliteRunStorage(_OpenEngine, SqliteRunStorage):
    """`SqliteRunStorage` created and used in WAL mode with one engine kept open (dagster.yaml: run_storage)."""

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> OpenSqliteRunStorage:
        with _write_ahead_while_creating(config_value["base_dir"]):
            return cls.from_local(inst_data=inst_data, **config_value)


class OpenSqliteScheduleStorage(_OpenEngine, SqliteScheduleStorage):
    """`SqliteScheduleStorage` created and used in WAL mode with one engine kept open (dagster.yaml:
    schedule_storage)."""

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> OpenSqliteScheduleStorage:
        with _write_ahead_while_creating(config_value["base_dir"]):
            return cls.from_local(inst_data=inst_data, **config_value)


class OpenSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with one engine per database kept open (dagster.yaml: event_log_storage)."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, db.Engine] = OrderedDict()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> OpenSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> db.Engine:
        engine = self._engines.get(shard)
        if engine is None:
            engine = db.create_engine(self.conn_string_for_shard(shard),
                                      connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            db.event.listen(engine, "connect", _write_ahead)
            self._engines[shard] = engine
            run_shards = [name for name in self._engines if name != INDEX_SHARD_NAME]
            for oldest in run_shards[:-OPEN_RUN_DATABASES]:
                self._engines.pop(oldest).dispose()
        else:
            self._engines.move_to_end(shard)
        return engine

    def _initdb(self, engine: db.Engine, for_index_shard: bool = False) -> None:
        """A database without a migration stamp gets Dagster's tables, stamped with the latest migration
        (as Dagster does, without reading the migration scripts again)."""
        if for_index_shard:
            return super()._initdb(engine, for_index_shard=True)
        with engine.connect() as connection:
            migration = MigrationContext.configure(connection)
            if migration.get_current_revision():
                return
            SqlEventLogStorageMetadata.create_all(engine)
            migration.stamp(MIGRATIONS, "head")
            connection.commit()

    @contextmanager
    def _connect(self, shard: str) -> Iterator[db.Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn
                if shard != INDEX_SHARD_NAME:  # what the UI's watch of the run's file sees
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _close_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def delete_events(self, run_id: str) -> None:
        super().delete_events(run_id)
        with self._db_lock:
            engine = self._engines.pop(run_id, None)
        if engine is not None:
            engine.dispose()

    def wipe(self) -> None:
        self._close_engines()
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        self._close_engines()
