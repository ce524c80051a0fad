"""Evaluation settings: evaluation.yaml read once into a typed object and passed down."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PROJECT_ROOT / "evaluation.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Paths(_Section):
    landing: Path
    warehouse: Path
    research: Path
    reports: Path


class Cohort(_Section):
    index_from: dt.date
    index_to: dt.date
    enrolment_days_before: int = Field(90, ge=0)
    enrolment_days_after: int = Field(180, ge=0)


class FollowUp(_Section):
    windows_months: list[int] = [6, 12, 24]
    headline_months: int = 12
    waiting_period_months: int = Field(6, ge=0)

    @model_validator(mode="after")
    def _headline_is_a_window(self) -> FollowUp:
        if self.headline_months not in self.windows_months:
            raise ValueError(f"follow_up.headline_months={self.headline_months} is not one of windows_months")
        return self


class Covariates(_Section):
    numeric: list[str] = []
    binary: list[str] = []
    categorical: list[str] = []

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.binary, *self.categorical]


class Matching(_Section):
    ratio: int = Field(1, ge=1)
    replace: bool = False
    caliper: float | None = Field(0.2, gt=0)
    exact: list[str] = []


class Validation(_Section):
    max_failing_row_share: float = Field(0.05, ge=0, le=1)
    min_reference_rate: float = Field(0.99, ge=0, le=1)


class Disclosure(_Section):
    min_count: int = Field(10, ge=1)


class Schedule(_Section):
    cron: str = "0 6 1 * *"


class Settings(_Section):
    paths: Paths
    data_cutoff: dt.date
    cohort: Cohort
    follow_up: FollowUp = FollowUp()
    covariates: Covariates = Covariates()
    matching: Matching = Matching()
    validation: Validation = Validation()
    disclosure: Disclosure = Disclosure()
    schedule: Schedule = Schedule()
    source: Path | None = None  # the file these settings were read from


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    """The settings file: an explicit path, else $DESIST_CONFIG, else evaluation.yaml in the project."""
    return Path(explicit or os.environ.get("DESIST_CONFIG") or DEFAULT_CONFIG).resolve()


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Read and validate the settings file; relative paths are resolved against its folder."""
    source = config_path(path)
    if not source.exists():
        raise FileNotFoundError(f"settings file not found: {source}")
    raw = yaml.safe_load(source.read_text()) or {}
    settings = Settings.model_validate(raw)
    base = source.parent
    settings.paths = Paths(**{
        name: (value if value.is_absolute() else (base / value).resolve())
        for name, value in settings.paths.model_dump().items()
    })
    settings.source = source
    return settings
