"""Analysis assets: one per table in sql/analysis/, built in the order desist.analysis lists."""
from __future__ import annotations

import dagster as dg

from desist.analysis import ANALYSIS_TABLES, AnalysisTable, build_table, stored_table
from pipelines.resources import WAREHOUSE_POOL, Warehouse


def analysis_asset(table: AnalysisTable) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey(["analysis", table.name]),
        group_name="analysis",
        description=table.description,
        deps=[
            *(dg.AssetKey(["staging", name]) for name in table.staging_inputs),
            *(dg.AssetKey(["analysis", name]) for name in table.analysis_inputs),
        ],
        pool=WAREHOUSE_POOL,
        kinds={"duckdb", "sql"},
        metadata={"sql_file": f"sql/{table.sql_file}"},
    )
    def _asset(warehouse: Warehouse) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            rows = build_table(con, table.name)
        return dg.MaterializeResult(metadata={"rows": dg.MetadataValue.int(rows),
                                              "table": dg.MetadataValue.text(stored_table(table.name))})

    return _asset


analysis_assets = [analysis_asset(table) for table in ANALYSIS_TABLES]
