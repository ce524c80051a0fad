"""The one entry point Dagster loads: every asset, check, schedule, sensor and resource."""
from __future__ import annotations

import os

import dagster as dg

from desist.config import config_path, load_settings
from pipelines import analysis, assembly, diagnostics, effects, for_whom, indicators, ingest, reports, validation
from pipelines.alerts import build_alert_sensor
from pipelines.publish import build_publish_assets
from pipelines.resources import Warehouse
from pipelines.schedules import build_schedule_and_sensor
from pipelines.stages import JOBS, build_stages_sensor

ASSET_MODULES: list = [ingest, analysis, effects, diagnostics, for_whom, assembly, indicators, reports]
CHECK_MODULES: list = [validation]


def build_definitions(config_file: str | None = None) -> dg.Definitions:
    """Definitions for one evaluation settings file (default: $DESIST_CONFIG or evaluation.yaml)."""
    config_file = str(config_path(config_file or os.environ.get("DESIST_CONFIG") or None))
    assets = list(dg.load_assets_from_modules(ASSET_MODULES))
    upstream = [key for asset in assets for key in asset.keys]
    settings = load_settings(config_file)
    schedule, sensor = build_schedule_and_sensor(settings)
    return dg.Definitions(
        assets=[*assets, *build_publish_assets(upstream)],
        asset_checks=dg.load_asset_checks_from_modules(CHECK_MODULES),
        jobs=list(JOBS),
        schedules=[schedule],
        sensors=[sensor, build_stages_sensor(settings), build_alert_sensor(settings)],
        resources={"warehouse": Warehouse(config_file=config_file)},
        # Within a run, steps run one after another (the writing ones could not run side by side:
        # one DuckDB writer): one process per run, not per step, so runs do not pay the heavy imports
        # once per step. Programmes run in parallel as separate runs (pipelines/stages.py).
        executor=dg.in_process_executor,
    )


defs = build_definitions()
