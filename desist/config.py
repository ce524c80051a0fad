"""Evaluation settings: evaluation.yaml read once into a typed object and passed down."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.indicators import CRITERION_INDICATORS, DIRECTIONS

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


class Survival(_Section):
    rmst_horizon_days: int = Field(365, gt=0)
    horizons_days: list[int] = [91, 182, 365, 730]


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


class Diagnostics(_Section):
    """Thresholds of the study diagnostics (models/diagnostics.py): a failed diagnostic withholds
    a programme's headline effect."""

    min_participants: int = Field(60, ge=1)
    max_smd: float = Field(0.1, gt=0)
    max_smd_warning: float = Field(0.25, gt=0)
    variance_ratio_bounds: tuple[float, float] = (0.5, 2.0)
    min_matched_share: float = Field(0.9, ge=0, le=1)
    max_detectable_difference: float = Field(0.2, gt=0, lt=1)
    max_systematic_error: float = Field(0.25, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Diagnostics:
        if self.max_smd_warning < self.max_smd:
            raise ValueError("diagnostics.max_smd_warning must be at least diagnostics.max_smd")
        low, high = self.variance_ratio_bounds
        if not 0 < low < 1 < high:
            raise ValueError("diagnostics.variance_ratio_bounds must be (low, high) with 0 < low < 1 < high")
        return self


class Schedule(_Section):
    cron: str = "0 6 1 * *"


class SuccessCriterion(_Section):
    """A success criterion: the named indicator should move in `direction` relative to `target`."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1)  # plain words, shown to funders
    indicator: str
    target: float
    direction: str

    @field_validator("indicator")
    @classmethod
    def _known_indicator(cls, value: str) -> str:
        if value not in CRITERION_INDICATORS:
            raise ValueError(f"unknown indicator '{value}'; expected one of {sorted(CRITERION_INDICATORS)}")
        return value

    @field_validator("direction")
    @classmethod
    def _known_direction(cls, value: str) -> str:
        if value not in DIRECTIONS:
            raise ValueError(f"unknown direction '{value}'; expected one of {list(DIRECTIONS)}")
        return value

    @model_validator(mode="after")
    def _target_in_range(self) -> SuccessCriterion:
        low, high = CRITERION_INDICATORS[self.indicator].target_range
        if not low <= self.target <= high:
            raise ValueError(f"success criterion '{self.id}': target {self.target} is outside "
                             f"[{low}, {high}] for indicator '{self.indicator}'")
        return self


DEFAULT_SUCCESS_CRITERIA = [
    SuccessCriterion(id="reoffending", indicator="reoffending_rate_difference", target=0, direction="decrease",
                     label="Fewer participants reoffend within a year than similar people who did not take part"),
    SuccessCriterion(id="life_skills", indicator="life_skills_change", target=0, direction="increase",
                     label="Life skills scores improve between the start and the end of the programme"),
    SuccessCriterion(id="employment", indicator="employment_gain", target=0.25, direction="at_least",
                     label="At least a quarter of participants not in work at the start are in work by the end "
                           "or at follow-up"),
    SuccessCriterion(id="settled_accommodation", indicator="settled_accommodation_gain", target=0.25,
                     direction="at_least",
                     label="At least a quarter of participants without settled accommodation at the start have "
                           "it by the end"),
    SuccessCriterion(id="community_integration", indicator="community_integration_change", target=0,
                     direction="increase",
                     label="Community integration scores improve between the start and the end of the programme"),
    SuccessCriterion(id="satisfaction", indicator="satisfaction_mean", target=4.0, direction="at_least",
                     label="Stakeholders rate their satisfaction at 4 out of 5 or higher on average"),
    SuccessCriterion(id="satisfied_share", indicator="share_satisfied", target=0.75, direction="at_least",
                     label="At least three in four stakeholders are satisfied (4 or 5 out of 5)"),
]


class Settings(_Section):
    paths: Paths
    data_cutoff: dt.date
    cohort: Cohort
    follow_up: FollowUp = FollowUp()
    survival: Survival = Survival()
    covariates: Covariates = Covariates()
    matching: Matching = Matching()
    validation: Validation = Validation()
    disclosure: Disclosure = Disclosure()
    diagnostics: Diagnostics = Diagnostics()
    schedule: Schedule = Schedule()
    success_criteria: list[SuccessCriterion] = DEFAULT_SUCCESS_CRITERIA
    source: Path | None = None  # the file these settings were read from

    @field_validator("success_criteria")
    @classmethod
    def _unique_criterion_ids(cls, value: list[SuccessCriterion]) -> list[SuccessCriterion]:
        ids = [criterion.id for criterion in value]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"success_criteria ids must be unique; repeated: {repeated}")
        return value


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


def write_settings(folder: Path, landing: Path, **overrides) -> Path:
    """Write ``folder/evaluation.yaml``: the default settings, reading ``landing`` and writing every
    output inside ``folder`` (for a throw-away evaluation: tests, benchmarks).

    ``overrides`` replace top-level sections (or keys inside them when given as dicts).
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

