"""The one entry point Dagster loads: every asset, check, schedule, sensor and resource."""
from __future__ import annotations

import os

import dagster as dg

from pipelines.resources import Warehouse

ASSET_MODULES: list = []
CHECK_MODULES: list = []


def build_definitions(config_file: str | None = None) -> dg.Definitions:
    """Definitions for one evaluation settings file (default: $DESIST_CONFIG or evaluation.yaml)."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules(ASSET_MODULES),
        asset_checks=dg.load_asset_checks_from_modules(CHECK_MODULES),
        resources={"warehouse": Warehouse(config_file=config_file or os.environ.get("DESIST_CONFIG", ""))},
    )


defs = build_definitions()
