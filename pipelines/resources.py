"""Resources shared by every asset: the evaluation settings and the warehouse connection."""

import ctypes
import gc
import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import dagster as dg
import duckdb

from desist import warehouse
from desist.config import Settings, config_path, load_settings

# Every asset that writes the warehouse runs in this pool; the instance limits it to one
# slot because DuckDB allows a single writer process.
WAREHOUSE_POOL = "warehouse"

# The child processes of a run still running: the programme workers and the researcher database's build
# (so `desist run` can stop them on a signal).
WORKERS: set[multiprocessing.Process] = set()
# Child processes are forked from a server process that imported the pipeline once (at the start of
# `desist run`, while stage 1 runs; pipelines/stages.py): a fork from it starts in milliseconds, a fresh
# interpreter takes seconds to import Dagster, pandas and the models. Each fork opens its own DuckDB and
# Dagster connections; the server holds none, and no threads, so forking it is safe.
WORKER_CONTEXT = multiprocessing.get_context("forkserver")


@lru_cache(maxsize=8)
def _settings_for(path: str) -> Settings:
    return load_settings(path)


class Warehouse(dg.ConfigurableResource):
    """The evaluation settings and a connection to the working DuckDB database."""

    config_file: str = ""

    @property
    def settings(self) -> Settings:
        return _settings_for(str(config_path(self.config_file or None)))

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        con = warehouse.connect(self.settings, read_only=read_only)
        try:
            yield con
        finally:
            con.close()


def release_free_memory() -> None:
    """Give the memory this process has freed back to the system (glibc keeps freed heap pages otherwise)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to give back this way
        pass
