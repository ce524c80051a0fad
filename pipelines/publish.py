"""Provenance of the run and the published researcher database."""

import datetime as dt
from collections.abc import Sequence

import dagster as dg

from desist import provenance
from desist.publish import extra_covariate_columns, publish
from pipelines.resources import WAREHOUSE_POOL, Warehouse

RUN_INFO = dg.AssetKey(["results", "run_info"])
RESEARCH_DB = dg.AssetKey(["published", "research_db"])

def build_publish_assets(upstream: Sequence[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    """The provenance asset (after ingest) and the publish asset (after everything else)."""
    raw_keys = [key for key in upstream if key.path[0] == "raw"]

    @dg.asset(key=RUN_INFO, deps=raw_keys, pool=WAREHOUSE_POOL, group_name="publish",
              description="Run id, time, code version, input fingerprint and the analysis settings with their hash, "
                          "carried by every output.")
    def run_info(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            hashes = con.execute(
                "SELECT file_name, sha256 FROM raw.ingest_summary WHERE sha256 IS NOT NULL"
            ).fetchall()
            settings_json, settings_hash = provenance.settings_record(warehouse.settings)
            row = (
                context.run.run_id,
                dt.datetime.now(dt.timezone.utc).replace(microsecond=0),
                provenance.code_version(),
                provenance.input_fingerprint(hashes),
                warehouse.settings.data_cutoff,
                warehouse.settings.follow_up.headline_months,
                settings_json,
                settings_hash,
            )
            con.execute(
                "CREATE OR REPLACE TABLE results.run_info AS SELECT ?::VARCHAR AS run_id, "
                "?::TIMESTAMPTZ AS started_at, ?::VARCHAR AS code_version, "
                "?::VARCHAR AS input_fingerprint, ?::DATE AS data_cutoff, ?::INTEGER AS headline_months, "
                "?::JSON AS settings, ?::VARCHAR AS settings_hash",
                list(row),
            )
        return dg.MaterializeResult(metadata={"code_version": row[2], "input_fingerprint": row[3],
                                              "settings_hash": settings_hash})

    @dg.asset(key=RESEARCH_DB, deps=[*upstream, RUN_INFO], pool=WAREHOUSE_POOL, group_name="publish",
              description="The documented researcher database, swapped in atomically, and its Parquet export.")
    def research_db(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        research = warehouse.settings.paths.research
        with warehouse.connect() as con:
            counts = publish(con, research, parquet_dir=research.with_name(research.stem + "_parquet"),
                             extra_covariates=extra_covariate_columns(warehouse.settings.tables),
                             person_level=warehouse.settings.publish.person_level,
                             min_count=warehouse.settings.disclosure.min_count)
            fingerprint, settings_hash = con.execute(
                "SELECT input_fingerprint, settings_hash FROM results.run_info").fetchone()
        context.log.info(f"published {len(counts)} tables and views to {research}")
        # The landing sensor reads input_fingerprint to tell files already published from new ones.
        return dg.MaterializeResult(metadata={
            "path": str(research), "input_fingerprint": fingerprint, "settings_hash": settings_hash,
            **{f"rows/{k}": v for k, v in counts.items()}})

    return [run_info, research_db]
