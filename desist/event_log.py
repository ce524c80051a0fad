"""The local Dagster instance's storage: Dagster's SQLite storages with their connections kept open.

Dagster's SQLite event log creates an engine, opens a connection and closes it again for every
event it writes; closing the last connection to a database in WAL mode checkpoints it and
deletes its journal, and every commit waits for the disk. A run writes about 60 events
(planned materialisations, step starts, outputs, successes), so that cost sat between every two
steps. This storage keeps one engine per database open, commits with ``synchronous=NORMAL``
(in WAL mode a process crash loses nothing; a power cut may lose the last events, never the
database) and touches a run's database file after each write, so the UI, which watches the
run's database file for changes, still streams the run's log as it happens (it once checkpointed
the database instead: two waits for the disk per event, 15 ms an event on a busy disk).

The run and schedule storages get the same treatment: Dagster creates their databases with
journalled DDL (each of about 50 statements waiting for the disk: 0.8-3 s for a new instance on a
busy disk) and opens a new engine, and waits for the disk, for every run record it writes.

Every new database (the run, schedule and index databases of a new instance, each run's event
database) starts as a copy of an empty one Dagster created once per Dagster version, kept in
TEMPLATES: creating them costs 0.5-1.2 s of DDL and migration scripts for a new instance and
about 0.05 s per run, copying them a few milliseconds. A database already stamped with the
template's migration is opened as it is, without Dagster reading its migration scripts again.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import lru_cache
from pathlib import Path

import sqlalchemy as db
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sql import get_alembic_config
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS, create_db_conn_string
from dagster.version import __version__ as DAGSTER_VERSION

OPEN_RUN_DATABASES = 4  # runs whose database stays open (a long-lived UI reads many runs' logs)
# Empty databases as this Dagster version creates them: runs.db, schedules.db, index.db and run.db (one run's events).
TEMPLATES = (Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "desist"
             / f"dagster-{DAGSTER_VERSION}-storage")


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


def _make_templates() -> Path | None:
    """TEMPLATES, created by Dagster's own storages in a folder renamed into place when complete
    (None where the cache cannot be written: each storage then creates its database itself)."""
    if (TEMPLATES / "run.db").exists():
        return TEMPLATES
    try:
        TEMPLATES.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=".building-", dir=TEMPLATES.parent))
    except OSError:
        return None
    try:
        with _write_ahead_while_creating(str(building)):
            storages = [SqliteRunStorage.from_local(str(building)), SqliteScheduleStorage.from_local(str(building))]
        events = OpenSqliteEventLogStorage(str(building), templates=False)
        with events._connect("run"):
            pass
        for storage in [*storages, events]:
            storage.dispose()
        for name in ("runs", "schedules", "index", "run"):
            # Everything in the database file, which readers of the template then open without a journal
            # (each storage's connections put its copy in WAL mode again).
            connection = sqlite3.connect(building / f"{name}.db")
            connection.execute("PRAGMA journal_mode = DELETE")
            connection.close()
        try:
            building.rename(TEMPLATES)
        except OSError:  # another process put its templates in place first
            pass
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return TEMPLATES if (TEMPLATES / "run.db").exists() else None


def _stamp(path: Path) -> str | None:
    """The migration a database is stamped with (None when it has none or cannot be read)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        connection.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


@lru_cache(maxsize=None)
def _migrations() -> ScriptDirectory:
    """Dagster's event log migrations, read once per process (Dagster reads them again for every new run's
    database), and only where a run's database is made without a template."""
    return ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__))


@lru_cache(maxsize=None)
def _template_stamp(path: Path) -> str | None:
    return _stamp(path)


def _from_template(path: Path, template: str) -> bool:
    """Whether the database at ``path`` is ready to open as it is: copied from the template when absent,
    or already stamped with the template's migration (False: let Dagster create or check it)."""
    templates = _make_templates()
    if templates is None:
        return False
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        copy = path.with_name(f".{path.name}.{os.getpid()}")
        shutil.copyfile(templates / template, copy)
        try:
            os.link(copy, path)  # never over a database another process created meanwhile
        except FileExistsError:
            pass
        finally:
            copy.unlink()
    stamp = _stamp(path)
    return stamp is not None and stamp == _template_stamp(templates / template)


class _OpenEngine:
    """One engine per storage, kept open, its connections in WAL mode committing without waiting for the disk."""

    DATABASE: str  # the database file in the instance folder, without ".db"
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

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        """The storage on ``<base_dir>/<DATABASE>.db``: copied from its template when new, else created by Dagster."""
        base_dir = config_value["base_dir"]
        if _from_template(Path(base_dir) / f"{cls.DATABASE}.db", f"{cls.DATABASE}.db"):
            return cls(create_db_conn_string(base_dir, cls.DATABASE), inst_data)
        with _write_ahead_while_creating(base_dir):
            return cls.from_local(inst_data=inst_data, **config_value)


class OpenSqliteRunStorage(_OpenEngine, SqliteRunStorage):
    """`SqliteRunStorage` created and used in WAL mode with one engine kept open (dagster.yaml: run_storage)."""

    DATABASE = "runs"


class OpenSqliteScheduleStorage(_OpenEngine, SqliteScheduleStorage):
    """`SqliteScheduleStorage` created and used in WAL mode with one engine kept open (dagster.yaml:
    schedule_storage)."""

    DATABASE = "schedules"


class OpenSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with one engine per database kept open (dagster.yaml: event_log_storage)."""

    def __init__(self, base_dir: str, inst_data=None, templates: bool = True):
        self._engines: OrderedDict[str, db.Engine] = OrderedDict()
        self._templates = templates  # False while the templates themselves are made
        # While a batch is written (store_event_batch): its thread, and its open connection to each database.
        self._batch: dict[str, db.Connection] | None = None
        self._batch_thread: int | None = None
        self._batch_stack: ExitStack | None = None
        if templates:
            _from_template(Path(base_dir) / f"{INDEX_SHARD_NAME}.db", "index.db")
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
            migration.stamp(_migrations(), "head")
            connection.commit()

    def _ready_engine(self, shard: str) -> db.Engine:
        """The shard's engine, its database created first if need be (the caller holds ``_db_lock``)."""
        engine = self._engine(shard)
        if shard not in self._initialized_dbs:
            template = "index.db" if shard == INDEX_SHARD_NAME else "run.db"
            if not (self._templates and _from_template(Path(self.path_for_shard(shard)), template)):
                self._initdb(engine)
            self._initialized_dbs.add(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[db.Connection]:
        if self._batch is not None and self._batch_thread == threading.get_ident():
            yield self._batch_connection(shard)
            return
        with self._db_lock:
            with self._ready_engine(shard).connect() as conn:
                changes = conn.connection.dbapi_connection.total_changes
                with conn.begin():
                    yield conn
                if shard != INDEX_SHARD_NAME and conn.connection.dbapi_connection.total_changes != changes:
                    self._tell_watchers(shard)

    def _batch_connection(self, shard: str) -> db.Connection:
        """The connection, in the batch's transaction, through which a batch writes to ``shard``."""
        conn = self._batch.get(shard)
        if conn is None:
            conn = self._batch_stack.enter_context(self._ready_engine(shard).connect())
            self._batch_stack.enter_context(conn.begin())
            self._batch[shard] = conn
        return conn

    def store_event_batch(self, events) -> None:
        """The events of a batch in one transaction per database, committed together, instead of two or three
        transactions per event. Dagster sends a new run's planned materialisations and checks (about 45 events
        for the evaluation job) as one batch when DAGSTER_EVENT_BATCH_SIZE is set (`desist run` sets it); on an
        error nothing of the batch is written and Dagster stores the events one by one."""
        with self._db_lock:
            self._batch, self._batch_thread = {}, threading.get_ident()
            try:
                with ExitStack() as self._batch_stack:
                    for event in events:
                        self.store_event(event)
                written = [shard for shard in self._batch if shard != INDEX_SHARD_NAME]
            finally:
                self._batch = self._batch_stack = None
            for shard in written:
                self._tell_watchers(shard)

    def _tell_watchers(self, shard: str) -> None:
        """Touch a run's database file after a write: what the UI's watch of the file (inotify or polling, through
        watchdog) sees as a change, and why it reads the run's new events (from the WAL, as any reader does).
        A checkpoint per write did the same by writing the file, at the cost of two waits for the disk."""
        try:
            os.utime(self.path_for_shard(shard))
        except FileNotFoundError:  # deleted meanwhile (delete_events)
            pass

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
