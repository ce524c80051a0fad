"""Shared test fixtures: settings for a throw-away evaluation in a temporary folder."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from desist.config import PROJECT_ROOT, Settings, load_settings, write_settings
from desist.contract import TABLES

SAMPLE_DIR = PROJECT_ROOT / "data" / "sample"


def read_sample(table: str) -> pd.DataFrame:
    """One table of the committed sample extract, every value as text (empty cells as missing)."""
    return pd.read_csv(SAMPLE_DIR / f"{table}.csv", dtype=str, keep_default_na=False, na_values=[""])


def create_staging_tables(con) -> None:
    """Empty typed staging tables, as ingest leaves them."""
    for table in TABLES.values():
        columns = ", ".join(f"{c.name} {c.duckdb_type}" for c in table.columns)
        con.execute(f"CREATE OR REPLACE TABLE staging.{table.name} ({columns}, source_file VARCHAR, source_row BIGINT)")


def stage_sample(con) -> None:
    """The sample's CSV files straight into typed staging tables (typed as the contract says, without ingest)."""
    create_staging_tables(con)
    for table in TABLES.values():
        con.register("sample_frame", read_sample(table.name))
        con.execute(f"INSERT INTO staging.{table.name} BY NAME SELECT *, '{table.name}.csv' AS source_file, "
                    "row_number() OVER () AS source_row FROM sample_frame")
        con.unregister("sample_frame")


@pytest.fixture
def make_settings(tmp_path):
    """make_settings(landing=None, **overrides) -> Settings in a fresh temporary folder."""

    def _make(landing: Path | None = None, **overrides) -> Settings:
        landing = landing or tmp_path / "landing"
        landing.mkdir(parents=True, exist_ok=True)
        return load_settings(write_settings(tmp_path, landing, **overrides))

    return _make


def materialize_all(config_file: Path, raise_on_error: bool = True, instance=None):
    """Run the whole evaluation as `desist run` does (pipelines/stages.py: the upstream run, one run per
    programme in worker processes, then assembly and publishing), on a throw-away Dagster instance
    unless one is given. Returns the outcome: success, the runs, their events and the failure reason."""
    import dagster as dg

    from pipelines.stages import run_evaluation

    if instance is None:
        with dg.instance_for_test() as instance:
            return materialize_all(config_file, raise_on_error, instance)
    outcome = run_evaluation(str(config_file), instance)
    if raise_on_error and not outcome.success:
        raise AssertionError(f"the evaluation failed: {outcome.reason}")
    return outcome


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> Settings:
    """The whole pipeline run once on the committed sample; returns its settings."""
    folder = tmp_path_factory.mktemp("sample_run")
    config = write_settings(folder, SAMPLE_DIR)
    result = materialize_all(config)
    assert result.success
    return load_settings(config)
