"""Shared test fixtures: settings for a throw-away evaluation in a temporary folder."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from desist.config import DEFAULT_CONFIG, PROJECT_ROOT, Settings, load_settings

SAMPLE_DIR = PROJECT_ROOT / "data" / "sample"


def write_settings(folder: Path, landing: Path, **overrides) -> Path:
    """An evaluation.yaml in `folder` reading `landing`, writing everything else inside `folder`.

    `overrides` replace top-level sections (or keys inside them when given as dicts).
    """
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["paths"] = {
        "landing": str(landing),
        "warehouse": str(folder / "warehouse.duckdb"),
        "research": str(folder / "research.duckdb"),
        "reports": str(folder / "reports"),
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key].update(value)
        else:
            raw[key] = value
    path = folder / "evaluation.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def make_settings(tmp_path):
    """make_settings(landing=None, **overrides) -> Settings in a fresh temporary folder."""

    def _make(landing: Path | None = None, **overrides) -> Settings:
        landing = landing or tmp_path / "landing"
        landing.mkdir(parents=True, exist_ok=True)
        return load_settings(write_settings(tmp_path, landing, **overrides))

    return _make
