"""Ingest assets: landing files into raw, then the typed staging tables and the ingest summary."""

import dagster as dg

from desist import ingest, validation
from desist.contract import TABLES
from pipelines.resources import WAREHOUSE_POOL, Warehouse

LANDING_FILES = dg.AssetKey(["raw", "landing_files"])
INGEST_SUMMARY = dg.AssetKey(["raw", "ingest_summary"])
STAGING = {table: dg.AssetKey(["staging", table]) for table in TABLES}


@dg.asset(key=LANDING_FILES, pool=WAREHOUSE_POOL, group_name="ingest",
          description="Every row of every landing file as text in raw.<table>, fingerprinted in raw.files; "
                      "unchanged files are not read again, changed files replace their rows, removed files lose them.")
def landing_files(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    ingest.check_landing(warehouse.settings.paths.landing)
    validation.import_in_background()  # on the core the CSV reader leaves free; validation needs it next
    with warehouse.connect() as con:
        load = ingest.load_raw(con, warehouse.settings.paths.landing, warehouse.settings.tables)
    for outcome in load.files:
        if outcome.status in ("rejected", "ignored", "removed"):
            context.log.warning(f"{outcome.status}: {outcome.reason}")
    actions, statuses = load.count("action"), load.count("status")
    return dg.MaterializeResult(metadata={
        "files": len(load.files),
        **{f"files_{action}": actions.get(action, 0) for action in ("new", "changed", "unchanged", "reloaded", "removed")},
        **{f"files_{status}": statuses.get(status, 0) for status in ("loaded", "rejected", "ignored")},
        "rows_read": sum(outcome.rows_read for outcome in load.files),
    })


@dg.multi_asset(
    specs=[
        *(dg.AssetSpec(key, deps=[LANDING_FILES], group_name="ingest",
                       description=f"{TABLES[table].description} Typed by the data contract; rows that cannot be "
                                   "typed are in quarantine.rows.")
          for table, key in STAGING.items()),
        dg.AssetSpec(INGEST_SUMMARY, deps=[LANDING_FILES], group_name="ingest",
                     description="Per landing file: status and rows read, loaded, quarantined and rejected."),
    ],
    pool=WAREHOUSE_POOL,
)
def staging_tables(context: dg.AssetExecutionContext, warehouse: Warehouse):
    with warehouse.connect() as con:
        counts = ingest.build_staging(con, warehouse.settings.tables)
        summary = con.execute(
            "SELECT table_name, file_name, status, rows_read, rows_loaded, rows_quarantined, rows_rejected "
            "FROM raw.ingest_summary"
        ).df()
    for table, key in STAGING.items():
        c = counts[table]
        yield dg.MaterializeResult(asset_key=key, metadata={
            "dagster/row_count": c.rows_loaded,
            "rows_read": c.rows_read,
            "rows_quarantined": c.rows_quarantined,
        })
    yield dg.MaterializeResult(asset_key=INGEST_SUMMARY, metadata={
        "dagster/row_count": len(summary),
        "files_rejected": int((summary["status"] == "rejected").sum()),
        "rows_quarantined": int(summary["rows_quarantined"].sum()),
        "summary": dg.MetadataValue.md(summary.to_markdown(index=False)),
    })
