"""The warehouse connection: DuckDB's memory and threads follow evaluation.yaml `warehouse:`; query results
with their text as categories."""
import os

import duckdb
import pandas as pd
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


def test_frame_with_categories_reads_text_as_sorted_categories_and_keeps_everything_else():
    con = duckdb.connect()
    con.execute("CREATE TABLE category_rows AS SELECT 'left alone' AS note")  # a table of the same name
    frame = warehouse.frame_with_categories(con, """
        SELECT * FROM (VALUES (3, 'wales', NULL, true), (1, 'north''s', NULL, NULL), (2, 'east', NULL, false),
                              (4, 'wales', NULL, true), (0, NULL, NULL, true)) AS t(i, region, nothing, flag)
        WHERE i >= $lowest ORDER BY i DESC""", {"lowest": 1})
    assert frame["i"].tolist() == [4, 3, 2, 1]  # the query's rows in its order
    assert frame["region"].dtype == "category"
    assert frame["region"].cat.categories.tolist() == ["east", "north's", "wales"]  # only those present, sorted
    assert frame["region"].tolist() == ["wales", "wales", "east", "north's"]
    assert frame["nothing"].isna().all() and frame["nothing"].dtype == object  # no level to make a category of
    # The other columns come as DuckDB converts them (a nullable boolean stays one).
    pd.testing.assert_series_equal(frame["flag"], con.execute(
        "SELECT * FROM (VALUES (true), (true), (false), (NULL)) AS t(flag)").df()["flag"])
    assert con.execute("SELECT * FROM category_rows").fetchall() == [("left alone",)]
