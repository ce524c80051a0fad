"""Resources shared by every asset: the evaluation settings and the warehouse connection."""

import ctypes
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import dagster as dg
import duckdb
import pyarrow as pa

from desist import warehouse
from desist.config import Settings, config_path, load_settings

# Every asset that writes the warehouse runs in this pool; the instance limits it to one
# slot because DuckDB allows a single writer process.
WAREHOUSE_POOL = "warehouse"


@lru_cache(maxsize=8)
def _settings_for(path: str) -> Settings:
    return load_settings(path)


# Warehouses this process holds open read-write for a task in the background (pipelines/publish.py: the
# researcher database built while the last steps write the results schema). DuckDB opens a database file once
# per process, in one mode: a step asking for a read-only connection to one shares the open database instead.
_SHARED_READ_WRITE: set[str] = set()


class Warehouse(dg.ConfigurableResource):
    """The evaluation settings and a connection to the working DuckDB database."""

    config_file: str = ""

    @property
    def settings(self) -> Settings:
        return _settings_for(str(config_path(self.config_file or None)))

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        shared = str(self.settings.paths.warehouse) in _SHARED_READ_WRITE
        con = warehouse.connect(self.settings, read_only=read_only and not shared)
        try:
            yield con
        finally:
            con.close()

    def open_shared(self) -> duckdb.DuckDBPyConnection:
        """A read-write connection for a task in the background, closed with ``close_shared``; meanwhile the
        steps' connections share its database, read-only ones too."""
        path = str(self.settings.paths.warehouse)
        _SHARED_READ_WRITE.add(path)  # first: a step opening meanwhile opens read-write
        try:
            return warehouse.connect(self.settings)
        except BaseException:
            _SHARED_READ_WRITE.discard(path)
            raise

    def close_shared(self, con: duckdb.DuckDBPyConnection) -> None:
        con.close()
        _SHARED_READ_WRITE.discard(str(self.settings.paths.warehouse))


def release_free_memory(collect: bool = True) -> None:
    """Give the memory this process has freed back to the system. Arrow's allocator keeps the pages of the
    query results converted for reuse until told to give them back (after stage 1 at 1,000,000 people,
    86 MB that `desist run`'s process would otherwise hold through stage 2, its peak), and glibc the freed
    pages inside its heap.

    ``collect`` first frees what only reference cycles hold; a caller that leaves no cycles skips it
    (in a programme worker a collection costs about 0.13 s)."""
    if collect:
        gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to give back this way
        pass
