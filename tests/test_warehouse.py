"""The warehouse connection: DuckDB's memory and threads follow evaluation.yaml `warehouse:`."""
import os

import pytest

from desist import warehouse
from desist.config import SettingsError


def _setting(con, name: str) -> str:
    return con.execute("SELECT value FROM duckdb_settings() WHERE name = ?", [name]).fetchone()[0]


def test_the_warehouse_uses_the_configured_memory_limit_and_threads(make_settings):
    settings = make_settings(warehouse={"memory_limit": "512MB", "threads": 1})
    with warehouse.connect(settings) as con:
        assert _setting(con, "memory_limit") == "488.2 MiB"  # 512 MB in DuckDB's binary units
        assert _setting(con, "threads") == "1"


def test_by_default_the_warehouse_takes_1GB_and_every_usable_core(make_settings):
    settings = make_settings()
    assert settings.warehouse.memory_limit == "1GB"
    with warehouse.connect(settings) as con:
        assert _setting(con, "memory_limit") == "953.6 MiB"
        assert _setting(con, "threads") == str(len(os.sched_getaffinity(0)))


def test_a_memory_limit_without_a_unit_is_refused(make_settings):
    with pytest.raises(SettingsError, match="memory_limit"):
        make_settings(warehouse={"memory_limit": "lots"})
