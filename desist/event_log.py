"""The local Dagster instance's event log: Dagster's SQLite storage with its connections kept open.

Dagster's SQLite event log creates an engine, opens a connection and closes it again for every
event it writes; closing the last connection to a database in WAL mode checkpoints it and
deletes its journal, and every commit waits for the disk. A run writes about 60 events
(planned materialisations, step starts, outputs, successes), so that cost sat between every two
steps. This storage keeps one engine per database open, commits with ``synchronous=NORMAL``
(in WAL mode a process crash loses nothing; a power cut may lose the last events, never the
database) and checkpoints a run's database after each write, so the UI, which watches the
run's database file for changes, still streams the run's log as it happens.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as db
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
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
