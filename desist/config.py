"""Evaluation settings: evaluation.yaml read once into a typed object and passed down."""
from __future__ import annotations

import datetime as dt
import difflib
import os
import types
import typing
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from desist.contract import COVARIATE_TABLES, DERIVED_COVARIATES, TABLES, Table, effective_tables
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

    @model_validator(mode="after")
    def _period_in_order(self) -> Cohort:
        if self.index_from > self.index_to:
            raise ValueError(f"index_from {self.index_from} is after index_to {self.index_to}: "
                             "the cohort period is empty")
        return self


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


def _as_text(value: object) -> str:
    """A YAML scalar as the text a CSV cell would hold (YAML reads M as text but 1 and yes otherwise)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


class ColumnSettings(_Section):
    """How an extract's column maps onto a contract column."""

    from_: str | None = Field(None, alias="from")  # the extract's column name
    values: dict[str, str] = {}  # extract code -> contract value, applied before the checks
    allowed: list[str] | None = None  # replaces the contract's allowed values
    required: bool | None = None  # false: a column the extract does not have is loaded as empty

    @field_validator("values", mode="before")
    @classmethod
    def _text_codes(cls, value: object) -> object:
        return {_as_text(k): _as_text(v) for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("allowed", mode="before")
    @classmethod
    def _text_allowed(cls, value: object) -> object:
        return [_as_text(v) for v in value] if isinstance(value, list) else value


class ExtraColumn(ColumnSettings):
    """One of the extract's own columns: typed, range-checked, validated and documented like the rest."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    type: Literal["text", "integer", "number", "boolean", "date"]
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""


class TableContract(_Section):
    columns: dict[str, ColumnSettings] = {}
    extra_columns: list[ExtraColumn] = []


# Covariates when evaluation.yaml names none: required columns and the measures derived from
# them only, so every extract that meets the contract can be analysed.
DEFAULT_COVARIATES = {
    "numeric": ["age_at_index", "prior_proven_offences", "prior_custodial_sentences", "years_since_first_offence",
                "sentence_months"],
    "binary": ["female"],
    "categorical": ["index_type", "region"],
}


class Covariates(_Section):
    numeric: list[str] = DEFAULT_COVARIATES["numeric"]
    binary: list[str] = DEFAULT_COVARIATES["binary"]
    categorical: list[str] = DEFAULT_COVARIATES["categorical"]
    # Per covariate: complete_case (the default) drops people without a value;
    # missing_indicator keeps them, with the value filled in and a <name>_missing indicator.
    missing: dict[str, Literal["complete_case", "missing_indicator"]] = {}

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.binary, *self.categorical]

    @property
    def complete_case(self) -> list[str]:
        """Covariates a person must have to be analysed, in the order attrition counts them."""
        return [name for name in self.all if self.missing.get(name, "complete_case") == "complete_case"]

    @property
    def missing_indicator(self) -> list[str]:
        return [name for name in self.all if self.missing.get(name) == "missing_indicator"]

    @model_validator(mode="after")
    def _named_once(self) -> Covariates:
        repeated = sorted({name for name in self.all if self.all.count(name) > 1})
        if repeated:
            raise ValueError(f"covariates {repeated} are listed more than once")
        unknown = sorted(set(self.missing) - set(self.all))
        if unknown:
            raise ValueError(f"covariates.missing names {unknown}, which are not listed as covariates")
        return self


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


class WarehouseEngine(_Section):
    """How much of the machine DuckDB may use for the warehouse.

    memory_limit caps DuckDB's own memory (its default is 80% of RAM); larger sorts, joins and
    aggregates spill to a temporary folder beside the warehouse instead. threads: DuckDB's
    worker threads, every usable core when not given.
    """

    memory_limit: str = Field("1GB", pattern=r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$")
    threads: int | None = Field(None, ge=1)


class Publish(_Section):
    """What the researcher database holds.

    person_level: true publishes the pseudonymous person-level tables too, for approved
    researchers under a data-sharing agreement; false publishes aggregates only, under the
    same disclosure control as the reports.
    """

    person_level: bool = True
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
    sensor_interval_seconds: int = Field(60, ge=5)  # how often the daemon looks at the landing folder


class Alerts(_Section):
    """Where the run-failure sensor reports a failed run (it runs in the Dagster daemon: make serve, desist ui)."""

    webhook: str | None = Field(None, pattern=r"^https?://")  # receives a JSON POST per failed run
    smtp_host: str | None = None  # an SMTP server that mails each failed run to email_to
    smtp_port: int = Field(25, gt=0)
    email_from: str = "desist@localhost"
    email_to: list[str] = []


SUBGROUP_VARIABLES = ("sex", "age_band", "index_type", "risk_band")


class Subgroups(_Section):
    """Pre-declared subgroups: each gets its own matched estimate of the headline reoffending rate."""

    variables: list[str] = list(SUBGROUP_VARIABLES)
    age_band_edges: list[int] = [18, 25, 35]  # bands 18-24, 25-34, 35+ (and under 18 when anyone is)

    @field_validator("variables")
    @classmethod
    def _known_variables(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in SUBGROUP_VARIABLES]
        if unknown:
            raise ValueError(f"unknown subgroup variable(s) {unknown}; expected some of {list(SUBGROUP_VARIABLES)}")
        return value

    @field_validator("age_band_edges")
    @classmethod
    def _increasing_edges(cls, value: list[int]) -> list[int]:
        if not value or any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError(f"age_band_edges must be increasing ages, got {value}")
        return value


class RiskModel(_Section):
    """The reoffending-risk model (for evaluation only): temporal validation and risk bands."""

    test_quarters: int = Field(4, ge=1)  # the latest index quarters with complete follow-up are the test set
    band_thresholds: list[float] = [0.2, 0.4]  # predicted risk: low < first <= medium < second <= high

    @field_validator("band_thresholds")
    @classmethod
    def _two_increasing_risks(cls, value: list[float]) -> list[float]:
        if len(value) != 2 or not 0 < value[0] < value[1] < 1:
            raise ValueError(f"band_thresholds must be two increasing risks between 0 and 1, got {value}")
        return value


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
    publish: Publish = Publish()
    warehouse: WarehouseEngine = WarehouseEngine()
    diagnostics: Diagnostics = Diagnostics()
    schedule: Schedule = Schedule()
    subgroups: Subgroups = Subgroups()
    risk_model: RiskModel = RiskModel()
    alerts: Alerts = Alerts()
    success_criteria: list[SuccessCriterion] = DEFAULT_SUCCESS_CRITERIA
    contract: dict[str, TableContract] = {}  # how the extract maps onto the data contract
    source: Path | None = None  # the file these settings were read from

    @property
    def tables(self) -> dict[str, Table]:
        """The data contract as `contract:` adjusts it."""
        return effective_tables(self.contract)

    @field_validator("contract")
    @classmethod
    def _known_contract(cls, value: dict[str, TableContract]) -> dict[str, TableContract]:
        for table_name, table_settings in value.items():
            if table_name not in TABLES:
                raise ValueError(f"contract.{table_name}: no such table; expected one of {list(TABLES)}")
            table = TABLES[table_name]
            names = set(table.column_names)
            for column_name, column in table_settings.columns.items():
                where = f"contract.{table_name}.columns.{column_name}"
                if column_name not in names:
                    raise ValueError(f"{where}: no such column; expected one of {table.column_names}")
                kind = table.column(column_name).type
                if column.required is False and column_name in table.key:
                    raise ValueError(f"{where}: a key column cannot be optional")
                if column.allowed is not None and kind != "text":
                    raise ValueError(f"{where}: allowed values apply to text columns, not {kind}")
                _check_value_map(where, column, table.column(column_name).domain, kind)
            taken = names | set(DERIVED_COVARIATES)
            if table_name in COVARIATE_TABLES:  # their columns meet in analysis.covariates
                taken |= {c for t in COVARIATE_TABLES for c in TABLES[t].column_names}
                taken |= {e.name for t in COVARIATE_TABLES if t != table_name and t in value
                          for e in value[t].extra_columns}
            for extra in table_settings.extra_columns:
                where = f"contract.{table_name}.extra_columns.{extra.name}"
                if extra.name in taken:
                    raise ValueError(f"{where}: the name is already a column or derived covariate")
                taken.add(extra.name)
                if extra.allowed is not None and extra.type != "text":
                    raise ValueError(f"{where}: allowed values apply to text columns, not {extra.type}")
                _check_value_map(where, extra, None, extra.type)
            sources = [c.from_ or n for n, c in table_settings.columns.items()]
            sources += [e.from_ or e.name for e in table_settings.extra_columns]
            repeated = sorted({s for s in sources if sources.count(s) > 1})
            if repeated:
                raise ValueError(f"contract.{table_name}: extract column(s) {repeated} are mapped more than once")
        return value

    @model_validator(mode="after")
    def _cutoff_after_cohort_start(self) -> Settings:
        if self.data_cutoff < self.cohort.index_from:
            raise ValueError(f"data_cutoff {self.data_cutoff} is before cohort.index_from {self.cohort.index_from}: "
                             "no index event of the cohort period can be in the extract")
        return self

    @field_validator("success_criteria")
    @classmethod
    def _unique_criterion_ids(cls, value: list[SuccessCriterion]) -> list[SuccessCriterion]:
        ids = [criterion.id for criterion in value]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"success_criteria ids must be unique; repeated: {repeated}")
        return value


def _check_value_map(where: str, column: ColumnSettings, domain: tuple[str, ...] | None, kind: str) -> None:
    """Mapped values must pass the column's checks: in its allowed values, or readable as its type."""
    allowed = column.allowed if column.allowed is not None else domain
    if allowed is not None:
        outside = sorted({v for v in column.values.values() if v not in allowed})
        if outside:
            raise ValueError(f"{where}: values map to {outside}, which are not allowed ({', '.join(allowed)})")
    if kind == "boolean":
        outside = sorted({v for v in column.values.values() if v not in ("true", "false")})
        if outside:
            raise ValueError(f"{where}: values map to {outside}; a boolean maps to true or false")
class SettingsError(ValueError):
    """A mistake in the settings file, said in one line naming the file, the key or line, and the problem."""

    def __init__(self, source: Path, problem: str) -> None:
        super().__init__(f"{source}: {problem}")


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark, context = getattr(error, "problem_mark", None), getattr(error, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(error, "problem", None) or str(error)
    if getattr(error, "context", None):
        started = f" that starts on line {context.line + 1}" if context else ""
        problem += f" ({error.context}{started})"
    return f"{where}not valid YAML: {problem}"


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys valid at `loc` (a pydantic error location ending in the offending key)."""
    current: object = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return []
        current = current.model_fields[part].annotation
        while typing.get_origin(current) in (list, typing.Union, types.UnionType):
            current = next(a for a in typing.get_args(current) if a is not type(None))
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _line_of(text: str, loc: tuple) -> int | None:
    """The line (from 1) of the deepest key of `loc` found in the YAML text."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def settings_problem(error: ValidationError, text: str = "") -> str:
    """pydantic's errors as one line: where, which key, what is wrong (and how many more problems)."""
    errors = error.errors()
    misspelt = {tuple(e["loc"][:-1]) for e in errors if e["type"] == "extra_forbidden"}
    # A misspelt key comes first; the required key it was meant to be is then not missing twice.
    errors = sorted((e for e in errors if not (e["type"] == "missing" and tuple(e["loc"][:-1]) in misspelt)),
                    key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(first["loc"])
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        valid = _fields_at(Settings, loc)
        nearest = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
        message = "unknown key" + (f"; did you mean '{nearest[0]}'?" if nearest else
                                   f"; expected one of {', '.join(valid)}" if valid else "")
    elif first["type"] == "missing":
        message = "required key missing"
    else:
        message += f" (got {first['input']!r})" if first["type"] not in ("value_error", "assertion_error") else ""
    line = _line_of(text, loc) if text else None
    where = f"line {line}: " if line else ""
    key = f"{key}: " if key else ""
    more = len(errors) - 1
    return f"{where}{key}{message}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    """The settings file: an explicit path, else $DESIST_CONFIG, else evaluation.yaml in the project."""
    return Path(explicit or os.environ.get("DESIST_CONFIG") or DEFAULT_CONFIG).resolve()


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Read and validate the settings file; relative paths are resolved against its folder."""
    source = config_path(path)
    if not source.exists():
        raise FileNotFoundError(f"settings file not found: {source}")
    text = source.read_text()
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise SettingsError(source, _yaml_problem(error)) from None
    if not isinstance(raw, dict):
        raise SettingsError(source, "the file should hold keys and values (a YAML mapping)")
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as error:
        raise SettingsError(source, settings_problem(error, text)) from None
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

