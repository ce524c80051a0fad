"""Data validation: Great Expectations suites built from the data contract, run on staging.

The rules live in ``expectations/<table>.json``, one serialised Great Expectations 1.x
suite per input table. ``build_suite`` writes them from ``desist.contract`` (run
``python -m desist.validation`` after editing the contract) and the run loads the committed
files, so a reviewer reads every rule in one place and a test keeps them in sync. A contract
adjusted in evaluation.yaml (``contract:``) gets its suites built the same way at run time.

Each expectation carries ``meta.severity``:

* ``critical`` - row-level: the offending rows move from ``staging.<table>`` to
  ``quarantine.rows`` (stage ``validation``) so one bad row never stops a run. If more than
  ``validation.max_failing_row_share`` of a table's rows fail, or a reference resolves for
  fewer than ``validation.min_reference_rate`` of the rows, the table blocks the run.
* ``warning`` - reported in ``results.data_quality`` and never blocks.

Rules that need other rows or tables (references, the person's birth year, the order of
assessment stages) are checked on helper columns that DuckDB computes before validation:
the suite's ``meta.desist.derived_columns`` holds their SQL, evaluated per staging row ``t``.

Great Expectations takes seconds to import, so it is imported only by ``SuiteRunner``, or ahead of
it on another thread while ingest reads the landing files (``import_in_background``).
"""
from __future__ import annotations

import contextlib
import copy
import datetime as dt
import html
import json
import os
import re
import shutil
import threading
import time
import uuid
from string import Template
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from desist.collector import freeze_survivors, uncollected
from desist.config import PROJECT_ROOT, Settings
from desist.contract import ASSESSMENT_STAGES, TABLES, Table
from desist.warehouse import limit_resources, table_exists

EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
# Bootstrap's stylesheet (npm package bootstrap, the version Great Expectations' pages are written
# for; licence in reports/vendor/bootstrap-LICENSE), copied beside the Data Docs so they keep
# their layout offline.
DATA_DOCS_CSS = PROJECT_ROOT / "reports" / "vendor" / "bootstrap-4.3.1.min.css"
# Tables whose rows describe no person: their Data Docs may show failing values. Every other
# table's pages show how many values failed, never which.
NOT_PERSON_LEVEL = frozenset({"programmes"})
# What a stored validation result of a person-level table keeps: counts and shares only.
RESULT_COUNTS = ("element_count", "missing_count", "missing_percent", "unexpected_count", "unexpected_percent",
                 "unexpected_percent_total", "unexpected_percent_nonmissing")
CRITICAL, WARNING = "critical", "warning"
EARLIEST_DATE = "1900-01-01T00:00:00"
# Suite parameters the run supplies from evaluation.yaml.
PARAMETERS = ("data_cutoff", "min_reference_rate", "min_valid_row_share")
# Plausible age (years) at an index event; outside it the birth year or index date is suspect.
AGE_AT_INDEX = (10, 100)
# Optional columns that should still be mostly filled in (share of rows), reported as warnings.
COMPLETENESS = {
    "index_events": {name: 0.9 for name in (
        "prior_offences", "prior_custody", "age_first_offence", "risk_score",
        "employment_at_index", "accommodation_at_index",
    )},
    "feedback": {"relationship_quality": 0.8},
}
# pandas stores dates as datetime64[ns]; dates outside its range are clamped to these bounds
# (they fail the 1900-to-cut-off expectation either way; quarantine keeps the true value).
PANDAS_DATE_RANGE = ("1677-09-22", "2262-04-11")
SAMPLE_SIZE = 5
DATA_QUALITY_COLUMNS = (
    "run_id VARCHAR, checked_at TIMESTAMPTZ, table_name VARCHAR, column_name VARCHAR, "
    "expectation VARCHAR, severity VARCHAR, status VARCHAR, element_count BIGINT, "
    "unexpected_count BIGINT, unexpected_sample VARCHAR"
)


# ---------------------------------------------------------------------------------------------
# Building the suites from the contract


def _expectation(kind: str, severity: str, rule: str, columns: Iterable[str], description: str,
                 **kwargs) -> dict:
    return {
        "type": kind,
        "kwargs": kwargs,
        "meta": {"severity": severity, "rule": rule, "columns": list(columns)},
        "severity": severity,
        "description": description,
    }


def _critical_share(reference: bool = False) -> dict:
    return {"$PARAMETER": "min_reference_rate" if reference else "min_valid_row_share"}


def _reference_sql(column: str, target: tuple[str, str]) -> str:
    table, key = target
    return (f"CASE WHEN t.{column} IS NULL THEN NULL ELSE EXISTS "
            f"(SELECT 1 FROM staging.{table} AS r WHERE r.{key} = t.{column}) END")


def _birth_year_sql() -> str:
    return "(SELECT max(p.birth_year) FROM staging.people AS p WHERE p.person_id = t.person_id)"


def _stage_order_sql() -> str:
    stages = "[" + ", ".join(f"'{stage}'" for stage in ASSESSMENT_STAGES) + "]"
    earlier = f"list_position({stages}, o.stage) < list_position({stages}, t.stage)"
    later = f"list_position({stages}, o.stage) > list_position({stages}, t.stage)"
    return (
        "NOT EXISTS (SELECT 1 FROM staging.assessments AS o "
        "WHERE o.person_id = t.person_id AND o.programme_id = t.programme_id AND ("
        f"({earlier} AND o.assessment_date > t.assessment_date) OR "
        f"({later} AND o.assessment_date < t.assessment_date)))"
    )


def _table_specific(table: Table) -> tuple[dict[str, str], list[dict]]:
    """Derived columns and the expectations of logical order and plausibility for one table."""
    derived: dict[str, str] = {}
    rules: list[dict] = []
    share = _critical_share()
    if table.name == "offences":
        rules.append(_expectation(
            "expect_column_pair_values_a_to_be_greater_than_b", CRITICAL, "order",
            ("proven_date", "offence_date"), "the offence is proven before it was committed",
            column_A="proven_date", column_B="offence_date", or_equal=True,
            ignore_row_if="either_value_is_missing", mostly=share))
        derived["offence_not_before_birth_year"] = f"year(t.offence_date) >= {_birth_year_sql()}"
        rules.append(_expectation(
            "expect_column_values_to_be_in_set", CRITICAL, "order", ("offence_date",),
            "the offence is dated before the person's birth year",
            column="offence_not_before_birth_year", value_set=[True], mostly=share))
    elif table.name == "participation":
        rules.append(_expectation(
            "expect_column_pair_values_a_to_be_greater_than_b", CRITICAL, "order",
            ("end_date", "start_date"), "the enrolment ends before it starts",
            column_A="end_date", column_B="start_date", or_equal=True,
            ignore_row_if="either_value_is_missing", mostly=share))
        rules.append(_expectation(
            "expect_column_pair_values_a_to_be_greater_than_b", CRITICAL, "order",
            ("sessions_attended", "sessions_offered"), "more sessions attended than offered",
            column_A="sessions_offered", column_B="sessions_attended", or_equal=True,
            ignore_row_if="either_value_is_missing", mostly=share))
    elif table.name == "assessments":
        derived["stage_dates_in_order"] = _stage_order_sql()
        rules.append(_expectation(
            "expect_column_values_to_be_in_set", CRITICAL, "order", ("assessment_date", "stage"),
            "assessment dates of this person and programme are not in stage order "
            f"({' <= '.join(ASSESSMENT_STAGES)})",
            column="stage_dates_in_order", value_set=[True], mostly=share))
    elif table.name == "index_events":
        derived["age_at_index"] = f"year(t.index_date) - {_birth_year_sql()}"
        low, high = AGE_AT_INDEX
        rules.append(_expectation(
            "expect_column_values_to_be_between", WARNING, "plausibility", ("index_date",),
            f"age at the index date outside {low} to {high} years",
            column="age_at_index", min_value=low, max_value=high))
    elif table.name == "mentors":
        derived["trained_before_first_mentoring"] = (
            "t.trained_date <= (SELECT min(p.start_date) FROM staging.participation AS p "
            "WHERE p.mentor_id = t.mentor_id)")
        rules.append(_expectation(
            "expect_column_values_to_be_in_set", WARNING, "plausibility", ("trained_date",),
            "the mentor was trained after their first enrolment started",
            column="trained_before_first_mentoring", value_set=[True]))
    return derived, rules


def build_suite(table: Table) -> dict:
    """The serialised Great Expectations suite for one contract table."""
    share = _critical_share()
    expectations: list[dict] = []
    derived: dict[str, str] = {}
    key = list(table.key)
    if len(key) == 1:
        expectations.append(_expectation(
            "expect_column_values_to_be_unique", CRITICAL, "key", key,
            "the key repeats in another row", column=key[0], mostly=share))
    else:
        expectations.append(_expectation(
            "expect_compound_columns_to_be_unique", CRITICAL, "key", key,
            "the key repeats in another row", column_list=key, mostly=share))
    for column in table.columns:
        if column.required:
            expectations.append(_expectation(
                "expect_column_values_to_not_be_null", CRITICAL, "required", [column.name],
                "the value is empty", column=column.name, mostly=share))
    for column, target in table.references.items():
        helper = f"{column}_is_known"
        derived[helper] = _reference_sql(column, target)
        expectations.append(_expectation(
            "expect_column_values_to_be_in_set", CRITICAL, "reference", [column],
            f"not found in {target[0]}.{target[1]}",
            column=helper, value_set=[True], mostly=_critical_share(reference=True)))
    for column in table.columns:
        if column.domain:
            mapped = "; ".join(f"{code} read as {value}" for code, value in column.value_map)
            expectations.append(_expectation(
                "expect_column_values_to_be_in_set", CRITICAL, "domain", [column.name],
                f"expected one of {', '.join(column.domain)}" + (f" (value map: {mapped})" if mapped else ""),
                column=column.name, value_set=list(column.domain), mostly=share))
    for column in table.columns:
        if column.minimum is not None or column.maximum is not None:
            expectations.append(_expectation(
                "expect_column_values_to_be_between", CRITICAL, "range", [column.name],
                f"expected {_number(column.minimum)} to {_number(column.maximum)}",
                column=column.name, min_value=column.minimum, max_value=column.maximum, mostly=share))
    for column in table.columns:
        if column.type == "date":
            expectations.append(_expectation(
                "expect_column_values_to_be_between", CRITICAL, "date_range", [column.name],
                "expected a date from 1900-01-01 to the data cut-off",
                column=column.name, min_value=EARLIEST_DATE, max_value={"$PARAMETER": "data_cutoff"},
                mostly=share))
    specific_derived, specific = _table_specific(table)
    derived.update(specific_derived)
    expectations.extend(specific)
    for column, mostly in COMPLETENESS.get(table.name, {}).items():
        expectations.append(_expectation(
            "expect_column_values_to_not_be_null", WARNING, "completeness", [column],
            f"fewer than {mostly:.0%} of rows have a value", column=column, mostly=mostly))
    return {
        "name": table.name,
        "expectations": expectations,
        "meta": {"desist": {
            "table": table.name,
            "generated_from": "desist/contract.py by desist.validation.build_suite",
            "parameters": list(PARAMETERS),
            "derived_columns": derived,
        }},
        "notes": f"Validation rules for staging.{table.name}: {table.description}",
    }


def _number(value: float | None) -> str:
    if value is None:
        return "any"
    return str(int(value)) if float(value).is_integer() else str(value)


def build_suites() -> dict[str, dict]:
    return {name: build_suite(table) for name, table in TABLES.items()}


def suite_text(suite: dict) -> str:
    return json.dumps(suite, indent=2) + "\n"


def write_suites(folder: Path = EXPECTATIONS_DIR) -> list[Path]:
    """Write expectations/<table>.json from the contract; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, suite in build_suites().items():
        path = folder / f"{name}.json"
        path.write_text(suite_text(suite))
        written.append(path)
    return written


def load_suite(table: str, folder: Path = EXPECTATIONS_DIR) -> dict:
    path = folder / f"{table}.json"
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite for table '{table}': {path} is missing "
                                "(run `python -m desist.validation` to write the suites)")
    suite = json.loads(path.read_text())
    for position, expectation in enumerate(suite.get("expectations", [])):
        severity = expectation.get("meta", {}).get("severity")
        if severity not in (CRITICAL, WARNING):
            raise ValueError(f"{path}: expectation {position} ({expectation.get('type')}) has "
                             f"meta.severity {severity!r}; expected 'critical' or 'warning'")
    return suite


def validation_order() -> list[str]:
    """Tables ordered so every table comes after the tables it references.

    Rows quarantined from a parent table are gone before its children are checked, so a
    child row that names a quarantined parent is itself caught as an unknown reference.
    """
    graph = {name: {target for target, _ in table.references.values() if target != name}
             for name, table in TABLES.items()}
    return list(TopologicalSorter(graph).static_order())


# ---------------------------------------------------------------------------------------------
# Running a suite on the rows of a table


@dataclass
class Outcome:
    """One expectation's result on one table."""

    table: str
    position: int  # the expectation's place in its suite
    expectation: str  # the Great Expectations type
    columns: tuple[str, ...]  # the contract columns it concerns
    severity: str
    rule: str
    description: str
    success: bool  # as Great Expectations judged it, including any `mostly` threshold
    element_count: int
    unexpected_count: int
    unexpected_share: float  # of the non-missing values the expectation looked at
    sample: list[str]
    rows: np.ndarray  # frame positions of the unexpected rows

    @property
    def column_name(self) -> str:
        return ",".join(self.columns)

    @property
    def label(self) -> str:
        return f"{self.table}.{self.column_name} {self.expectation}"


@dataclass
class TableValidation:
    """A suite's outcomes on one table and what they mean for the run."""

    table: str
    row_count: int
    outcomes: list[Outcome]
    max_failing_row_share: float
    # rows that never reached staging, by reason: ingest quarantine codes and 'rejected_file'
    ingest_failures: dict[str, int] = field(default_factory=dict)
    failing_rows: np.ndarray = field(init=False)  # frame positions failing any critical rule

    def __post_init__(self) -> None:
        critical = [o.rows for o in self.outcomes if o.severity == CRITICAL and len(o.rows)]
        self.failing_rows = np.unique(np.concatenate(critical)) if critical else np.empty(0, np.int64)

    @property
    def rows_read(self) -> int:
        """Every row the landing files held for the table: staged, quarantined at ingest or in a rejected file."""
        return self.row_count + sum(self.ingest_failures.values())

    @property
    def failing_row_count(self) -> int:
        """Rows failing at any stage: ingest (quarantined or rejected with their file) or a critical expectation."""
        return len(self.failing_rows) + sum(self.ingest_failures.values())

    @property
    def failing_row_share(self) -> float:
        return self.failing_row_count / self.rows_read if self.rows_read else 0.0

    def top_failures(self, limit: int = 3) -> str:
        found = [(f"{reason} at ingest", n) for reason, n in self.ingest_failures.items()]
        found += [(o.label, o.unexpected_count) for o in self.outcomes if o.severity == CRITICAL and o.unexpected_count]
        found.sort(key=lambda item: -item[1])
        return "; ".join(f"{label} ({n} rows)" for label, n in found[:limit])

    @property
    def blocking_reasons(self) -> list[str]:
        """One sentence per reason this table blocks the run (none: it does not block)."""
        reasons = []
        for o in self.outcomes:
            if o.severity != CRITICAL or o.success:
                continue
            if o.rule == "reference":
                reasons.append(
                    f"{o.label}: {o.description} for {o.unexpected_count} of "
                    f"{o.element_count} rows; {1 - o.unexpected_share:.2%} resolve, below "
                    "min_reference_rate")
            else:
                reasons.append(
                    f"{o.label}: {o.unexpected_count} of {o.element_count} rows fail "
                    f"({o.unexpected_share:.2%}, more than max_failing_row_share "
                    f"{self.max_failing_row_share:.2%})")
        if not reasons and self.failing_row_share > self.max_failing_row_share:
            stages = "fail at ingest or critical expectations" if self.ingest_failures else "fail critical expectations"
            reasons.append(
                f"{self.table}: {self.failing_row_count} of {self.rows_read} rows "
                f"({self.failing_row_share:.2%}) {stages}, more than "
                f"max_failing_row_share {self.max_failing_row_share:.2%}: {self.top_failures()}")
        return reasons

    @property
    def blocked(self) -> bool:
        return bool(self.blocking_reasons)

    @property
    def warnings(self) -> list[str]:
        return [f"{o.label}: {o.description} ({o.unexpected_count} of {o.element_count} rows)"
                for o in self.outcomes if o.severity == WARNING and not o.success]


_GX_IMPORT: threading.Thread | None = None
_GX_FROZEN = False


def import_in_background() -> None:
    """Start importing Great Expectations on another thread (seconds of one core's work).

    Ingest calls this: reading CSV files keeps one core busy, so by the time validation runs
    the import is done. Errors are left for ``SuiteRunner``'s own import to report.
    """
    global _GX_IMPORT
    if _GX_IMPORT is None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        _GX_IMPORT = threading.Thread(target=_import_great_expectations, name="import-great-expectations",
                                      daemon=True)
        _GX_IMPORT.start()


def freeze_great_expectations() -> None:
    """Once a process, with Great Expectations imported (the background import waited for): everything
    alive is frozen out of the garbage collector's walks (desist/collector.py), after a collection.
    Called before a SuiteRunner exists: a runner frozen would keep its context, and every frame
    validated, until the process ends."""
    global _GX_FROZEN
    if not _GX_FROZEN:
        if _GX_IMPORT is not None:
            _GX_IMPORT.join()
        import great_expectations  # noqa: F401, PLC0415
        freeze_survivors()
        _GX_FROZEN = True


def _import_great_expectations() -> None:
    try:
        with uncollected():  # frozen later (freeze_great_expectations), not here: ingest's data is alive
            import great_expectations  # noqa: F401, PLC0415
    except Exception:  # noqa: BLE001 - SuiteRunner imports it again and the error surfaces there
        pass


class SuiteRunner:
    """Runs suites on Arrow tables, through pandas frames, in one ephemeral Great Expectations context.

    ``parameters`` supplies the suite parameters (``PARAMETERS``). The context keeps every
    result of the run so ``build_data_docs`` can render them afterwards.
    """

    def __init__(self, parameters: Mapping[str, object], run_name: str | None = None) -> None:
        missing = sorted(set(PARAMETERS) - set(parameters))
        if missing:
            raise ValueError(f"suite parameters missing: {', '.join(missing)}")
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        if _GX_IMPORT is not None:
            _GX_IMPORT.join()  # one import at a time: two threads importing the same modules can deadlock
        import great_expectations as gx  # noqa: PLC0415 - seconds to import; only when validating

        self._gx = gx
        self.parameters = dict(parameters)
        self.run_name = run_name or uuid.uuid4().hex
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = {"globally": False, "metric_calculations": False}
        self._source = self.context.data_sources.add_pandas("staging")
        self._results: dict[str, object] = {}
        self._keys: dict[str, object] = {}  # where build_data_docs stores each suite's result

    def close(self) -> None:
        """Let this run's context go: Great Expectations keeps the last context made in a global, and with
        it every frame validated (about 1 GB at 1,000,000 people) for as long as the process lives."""
        from great_expectations.data_context.data_context.context_factory import project_manager  # noqa: PLC0415

        project_manager.set_project(None)

    def validate(self, suite: dict, data: pa.Table, sources: pd.DataFrame | None = None,
                 distinct: Iterable[str] = ()) -> list[Outcome]:
        """Validate the rows of ``data`` (positions 0..n-1) against ``suite``; one Outcome per expectation.

        Great Expectations sees, for each group of expectations, a pandas frame of only the columns
        they read (``_frame_groups``), so no copy of a large table is ever made whole: its metrics
        copy the frame they are given. The groups' results are put together into the one
        validation result a single run of the suite would have stored. ``sources`` (source_file,
        source_row per row) labels the sample values.

        ``distinct`` names columns known (counted exactly beforehand) to hold no value, or
        combination of values, twice, nulls counting as equal. A uniqueness expectation on them
        is then run on row numbers with the same nulls (``_distinct_frame``): the same result
        without hashing millions of strings.
        """
        from great_expectations.constants import DATAFRAME_REPLACEMENT_STR  # noqa: PLC0415
        from great_expectations.core import ExpectationSuiteValidationResult  # noqa: PLC0415
        from great_expectations.core.run_identifier import RunIdentifier  # noqa: PLC0415
        from great_expectations.data_context.types.resource_identifiers import (  # noqa: PLC0415
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )
        from great_expectations.execution_engine import pandas_execution_engine  # noqa: PLC0415
        from great_expectations.expectations.expectation import Expectation  # noqa: PLC0415
        from great_expectations.util import convert_to_json_serializable  # noqa: PLC0415
        from great_expectations.validator.v1_validator import Validator  # noqa: PLC0415
        from great_expectations.validator.validation_statistics import calc_validation_statistics  # noqa: PLC0415

        gx = self._gx
        name = suite["name"]
        if name in self._results:
            raise ValueError(f"suite '{name}' was already validated by this runner")
        if sources is not None and len(sources) != data.num_rows:
            raise ValueError(f"{name}: {len(sources)} source rows for {data.num_rows} rows to validate")
        declared = suite["expectations"]
        gx_suite = gx.ExpectationSuite(**copy.deepcopy(suite))
        if len(gx_suite.expectations) != len(declared):
            raise ValueError(f"suite '{name}': Great Expectations rejected "
                             f"{len(declared) - len(gx_suite.expectations)} of its expectations "
                             "(see the log for the invalid configuration)")
        gx_suite = self.context.suites.add(gx_suite)
        asset = self._source.add_dataframe_asset(name)
        batch = asset.add_batch_definition_whole_dataframe(name)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=gx_suite))
        run_id = RunIdentifier(run_name=self.run_name)
        distinct = set(distinct)
        groups = _frame_groups(gx_suite.expectation_configurations, data)
        gx_results, batch_meta = [], {}
        # Great Expectations fingerprints every frame under HASH_THRESHOLD bytes by hashing all
        # its values, only to label the batch; on millions of rows that is most of the time.
        threshold = pandas_execution_engine.HASH_THRESHOLD
        pandas_execution_engine.HASH_THRESHOLD = 0
        made_each_call = Expectation.configuration
        Expectation.configuration = _configuration_made_once(made_each_call)
        try:
            for columns, configurations in groups:
                unique = [c for c in configurations if distinct and c.type in UNIQUENESS
                          and set(_columns_read(c.kwargs)) <= distinct]
                frames = [(_distinct_frame(data, _columns_read(c.kwargs)), [c]) for c in unique]
                rest = [c for c in configurations if not any(c is u for u in unique)]
                if rest:
                    frames.append((data.select(list(columns)).to_pandas(types_mapper=_pandas_type), rest))
                found = {}
                for frame, subset in frames:
                    validator = Validator(batch_definition=batch, batch_parameters={"dataframe": frame},
                                          result_format={"result_format": "COMPLETE", "partial_unexpected_count": 20})
                    for configuration, gx_result in zip(
                            subset, validator._validate_expectation_configs(subset, self.parameters), strict=True):
                        found[id(configuration)] = gx_result
                    wrapped = validator._wrapped_validator
                    batch_meta = {
                        "batch_spec": convert_to_json_serializable(wrapped.active_batch_spec),
                        "batch_markers": wrapped.active_batch_markers,
                        "active_batch_definition": convert_to_json_serializable(wrapped.active_batch_definition),
                        "batch_id": validator.active_batch_id,
                    }
                    # The execution engine keeps every metric it resolved (condition series, index
                    # lists) for as long as the runner lives, under the batch id all of a table's
                    # frames share: metrics of the next frame are its own, and the memory goes now.
                    wrapped.execution_engine._metric_cache.clear()
                    del validator, wrapped
                # in the order one frame would have given them (Great Expectations keeps a group's order)
                gx_results += [found[id(c)] for c in configurations]
                del frames, frame  # the next group's frame replaces this one
                pa.default_memory_pool().release_unused()
        finally:
            pandas_execution_engine.HASH_THRESHOLD = threshold
            Expectation.configuration = made_each_call
        # The result of one run of the whole suite, as Validator.validate_expectation_suite and
        # ValidationDefinition.run record it.
        statistics = calc_validation_statistics(gx_results)
        batch_id = batch_meta.pop("batch_id", None)
        result = ExpectationSuiteValidationResult(
            results=gx_results, success=statistics.success, suite_name=name,
            statistics={"evaluated_expectations": statistics.evaluated_expectations,
                        "successful_expectations": statistics.successful_expectations,
                        "unsuccessful_expectations": statistics.unsuccessful_expectations,
                        "success_percent": statistics.success_percent},
            meta={"great_expectations_version": gx.__version__, **batch_meta,
                  "validation_id": definition.id, "checkpoint_id": None, "run_id": run_id,
                  "validation_time": run_id.run_time, "batch_parameters": {"dataframe": DATAFRAME_REPLACEMENT_STR}},
            batch_id=batch_id,
        )
        suite_id = ExpectationSuiteIdentifier(name=name)
        # Stored by build_data_docs, once, after the full unexpected lists below have served the
        # quarantine: serialising them value by value took seconds at 1,000,000 people.
        self._keys[name] = ValidationResultIdentifier(
            batch_identifier=batch_id, expectation_suite_identifier=suite_id, run_id=run_id)
        # Results do not come back in suite order: pair them with the suite by expectation id.
        by_id = {r.expectation_config.id: r for r in result.results}
        ordered = [by_id[e.id] for e in gx_suite.expectations]
        outcomes = []
        for position, (config, gx_result) in enumerate(zip(declared, ordered, strict=True)):
            if gx_result.expectation_config.type != config["type"]:
                raise RuntimeError(f"{name}: result {position} is for {gx_result.expectation_config.type}, "
                                   f"not {config['type']}")
            info = gx_result.exception_info or {}
            if info.get("raised_exception"):
                raise RuntimeError(f"{name}: {config['type']} on {config['meta']['columns']} "
                                   f"could not be evaluated: {info.get('exception_message')}")
            detail = gx_result.result
            rows = np.asarray(detail.get("unexpected_index_list") or [], dtype=np.int64)
            if len(rows) != detail.get("unexpected_count", 0):
                raise RuntimeError(f"{name}: {config['type']} reported {detail.get('unexpected_count')} "
                                   f"unexpected rows but listed {len(rows)}")
            meta = config["meta"]
            outcomes.append(Outcome(
                table=name, position=position, expectation=config["type"],
                columns=tuple(meta["columns"]), severity=meta["severity"], rule=meta["rule"],
                description=config.get("description", ""), success=bool(gx_result.success),
                element_count=int(detail.get("element_count", data.num_rows)),
                unexpected_count=int(detail.get("unexpected_count", 0)),
                unexpected_share=float(detail.get("unexpected_percent") or 0.0) / 100,
                sample=_sample(detail, sources),
                rows=rows,
            ))
            # The full lists served the quarantine; the stored result keeps the partial ones.
            for bulky in ("unexpected_list", "unexpected_index_list", "unexpected_index_query"):
                detail.pop(bulky, None)
        self._results[name] = result
        return outcomes

    def build_data_docs(self, folder: Path, quarantined: Mapping[str, int] | None = None,
                        notes: Iterable[str] = ()) -> Path:
        """Render this run's suites and results as a static HTML site in ``folder``.

        Great Expectations' pages load Bootstrap, jQuery, Font Awesome and Vega from public
        CDNs; those tags are removed so the site works offline, with the vendored Bootstrap
        stylesheet in ``static/``, status icons written as symbols and words, and the "Failed
        only" filter run by a script of its own. Links to outside sites are removed. Results of
        person-level tables keep only their counts, so no failing value of a person's row is
        shown. The index, which needs the CDN scripts to list results, is replaced by a static one.
        """
        if folder.exists():
            shutil.rmtree(folder)
        store = self.context.validation_results_store
        for name, key in self._keys.items():
            result = self._results[name]
            if name not in NOT_PERSON_LEVEL:
                for outcome in result.results:
                    outcome.result = {k: v for k, v in outcome.result.items() if k in RESULT_COUNTS}
            store.set(key, result)
        self.context.add_data_docs_site("desist", {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(folder)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        with _templates_compiled_once():
            self.context.build_data_docs(site_names=["desist"])
        (folder / "static").mkdir(exist_ok=True)
        shutil.copyfile(DATA_DOCS_CSS, folder / "static" / "bootstrap.min.css")
        for page in folder.rglob("*.html"):
            to_root = "../" * (len(page.relative_to(folder).parts) - 1)
            page.write_text(_offline_html(page.read_text(), to_root))
        (folder / "index.html").write_text(self._index_page(folder, quarantined or {}, list(notes)))
        return folder / "index.html"

    def _index_page(self, folder: Path, quarantined: Mapping[str, int], notes: list[str]) -> str:
        rows = []
        for name, result in self._results.items():
            pages = sorted((folder / "validations" / name).rglob("*.html"))
            link = pages[-1].relative_to(folder).as_posix() if pages else ""
            stats = result.statistics
            status = "passed" if result.success else "failed"
            rows.append(
                f"<tr><td>{name}</td><td class='{status}'>{status}</td>"
                f"<td>{stats['successful_expectations']} of {stats['evaluated_expectations']}</td>"
                f"<td>{quarantined.get(name, 0)}</td>"
                f"<td><a href='{link}'>results</a></td>"
                f"<td><a href='expectations/{name}.html'>expectations</a></td></tr>")
        contract = ("<h2>How this extract maps onto the data contract</h2><ul>"
                    + "".join(f"<li>{html.escape(note)}</li>" for note in notes) + "</ul>") if notes else ""
        return _INDEX_TEMPLATE.substitute(run=self.run_name, rows="\n".join(rows), contract=contract)


@contextlib.contextmanager
def _templates_compiled_once():
    """Great Expectations' page views, while in this block, share compiled Jinja templates.

    Every view makes a Jinja environment of its own, so each page compiled the same templates
    again (a quarter of the Data Docs' time); a bytecode cache shared by the views compiles each
    once. The pages are the same: Jinja keys its cache by template name and source."""
    import jinja2  # noqa: PLC0415
    from great_expectations.render.view.view import DefaultJinjaView  # noqa: PLC0415

    class SharedBytecode(jinja2.BytecodeCache):
        def __init__(self) -> None:
            self.compiled: dict[str, bytes] = {}

        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            if bucket.key in self.compiled:
                bucket.bytecode_from_string(self.compiled[bucket.key])

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            self.compiled[bucket.key] = bucket.bytecode_to_string()

    shared = SharedBytecode()
    made = DefaultJinjaView.__init__

    def with_shared_templates(view, *args, **kwargs) -> None:
        made(view, *args, **kwargs)
        view.env.bytecode_cache = shared

    DefaultJinjaView.__init__ = with_shared_templates
    try:
        yield
    finally:
        DefaultJinjaView.__init__ = made


_EXTERNAL_RESOURCE = re.compile(
    r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>"
    r"|<link[^>]*\bhref=\"https?://[^\"]*\"[^>]*/?>"
    r"|<img[^>]*\bsrc=\"https?://[^\"]*\"[^>]*/?>"
    r"|url\(['\"]?https?://[^)]*\)",
    re.IGNORECASE,
)
_OFFLINE_STYLE = (
    "<style>body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:75rem}"
    "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;"
    "text-align:left;vertical-align:top}.passed,.dq-passed{color:#1a7f37}.failed,.dq-failed{color:#b42318}"
    ".dq-status{font-weight:600;white-space:nowrap}</style>"
)
_INDEX_TEMPLATE = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>desist data quality</title>
""" + _OFFLINE_STYLE + """</head><body>
<h1>Data quality</h1>
<p>Great Expectations validation of the staging tables, run $run. Critical expectations
quarantine the rows that fail them; warnings are reported only. The same outcomes are in the
warehouse table <code>results.data_quality</code>.</p>
<table><thead><tr><th>table</th><th>status</th><th>expectations met</th><th>rows quarantined</th><th>validation</th>
<th>suite</th></tr></thead><tbody>
$rows
</tbody></table>
$contract</body></html>
""")


def contract_notes(tables: Mapping[str, Table]) -> list[str]:
    """In words, every way evaluation.yaml adjusts the built-in contract (empty when it does not)."""
    notes = []
    for name, table in tables.items():
        for column in table.columns:
            where = f"{name}.{column.name}"
            if column.extra:
                low, high = column.minimum, column.maximum
                bounds = (f", {_number(low)} to {_number(high)}" if low is not None and high is not None
                          else f", at least {_number(low)}" if low is not None
                          else f", at most {_number(high)}" if high is not None else "")
                notes.append(f"{where}: the extract's own {column.type} column"
                             f" ({'required' if column.required else 'optional'}{bounds})")
                continue
            built_in = TABLES[name].column(column.name)
            if column.source:
                notes.append(f"{where}: read from the extract's column {column.source}")
            if column.domain != built_in.domain:
                notes.append(f"{where}: allowed values replaced by {', '.join(column.domain)}")
            if column.required != built_in.required:
                notes.append(f"{where}: {'required' if column.required else 'optional'} in this extract")
        for column in table.columns:
            if column.value_map:
                mapped = ", ".join(f"{code} as {value}" for code, value in column.value_map)
                notes.append(f"{name}.{column.name}: value map, codes read {mapped}")
    return notes


_OUTSIDE_LINK = re.compile(r"<a\b[^>]*\bhref=\"(?:https?:)?//[^\"]*\"[^>]*>(.*?)</a>", re.IGNORECASE | re.DOTALL)
_FOOTER = re.compile(r"<footer>.*?</footer>", re.DOTALL)
_JQUERY_SCRIPT = re.compile(r"<script>(?:(?!</script>).)*ge-walkthrough-modal.*?</script>", re.DOTALL)
_STATUS_ICONS = {  # Great Expectations' Font Awesome status icons, as symbols and words
    re.compile(r"<i class=\"fas fa-check-circle text-success\"[^>]*></i>"):
        "<span class='dq-status dq-passed'>✓ passed</span>",
    re.compile(r"<i class=\"fas fa-times text-danger\"[^>]*></i>"):
        "<span class='dq-status dq-failed'>✗ failed</span>",
}
# The "Show all" / "Failed only" buttons of a validation page, without jQuery: the same rows the
# page's own functions fade, hidden and shown.
_FILTER_SCRIPT = """<script>
function dqRows() {
  return [...document.querySelectorAll(".hide-succeeded-validation-target-child")].map(c => c.parentElement)
    .concat([...document.querySelectorAll(".hide-succeeded-validation-target")]);
}
function dqSections() {
  return [...document.querySelectorAll(".hide-succeeded-validations-column-section-target-child")]
    .map(c => c.parentElement.parentElement);
}
function dqPressed(which) {
  document.querySelectorAll(".btn-group-toggle label").forEach((label, i) => label.classList.toggle("active", i === which));
}
function showAllValidations() {
  dqRows().concat(dqSections()).forEach(el => { el.style.display = ""; });
  dqSections().forEach(el => document.querySelectorAll(`a[href$="${el.id}"]`).forEach(a => { a.style.display = ""; }));
  dqPressed(0);
}
function hideSucceededValidations() {
  dqRows().forEach(el => { el.style.display = "none"; });
  dqSections().forEach(el => {
    el.style.display = "none";
    document.querySelectorAll(`a[href$="${el.id}"]`).forEach(a => { a.style.display = "none"; });
  });
  dqPressed(1);
}
</script>"""


def _offline_html(page: str, to_root: str = "") -> str:
    """A Data Docs page that loads nothing from outside and still shows status and filters."""
    page = _EXTERNAL_RESOURCE.sub(lambda m: "none" if m.group().startswith("url(") else "", page)
    page = _JQUERY_SCRIPT.sub("", _FOOTER.sub("", page))
    page = _OUTSIDE_LINK.sub(lambda m: m.group(1), page)
    for icon, words in _STATUS_ICONS.items():
        page = icon.sub(words, page)
    head = (f'<link rel="stylesheet" href="{to_root}static/bootstrap.min.css">' + _OFFLINE_STYLE)
    return page.replace("</head>", head + "</head>", 1).replace("</body>", _FILTER_SCRIPT + "</body>", 1)


# Largest Arrow size of the columns in one frame given to Great Expectations, unless one column is larger.
FRAME_BYTES = 64 * 2**20


def _frame_groups(configurations: list, data: pa.Table) -> list[tuple[tuple[str, ...], list]]:
    """Expectations grouped into frames: (the columns a frame holds, the expectations run on it).

    Expectations reading the same columns share a frame; groups are packed together up to
    ``FRAME_BYTES``, so a small table is validated in one frame (each frame costs Great
    Expectations a batch of its own) and a large one a few columns at a time.
    """
    by_columns: dict[tuple[str, ...], list] = {}
    for configuration in configurations:
        by_columns.setdefault(_columns_read(configuration.kwargs), []).append(configuration)
    frames: list[tuple[tuple[str, ...], list]] = []
    columns: tuple[str, ...] = ()
    packed: list = []
    for group_columns, group in by_columns.items():
        wider = tuple(dict.fromkeys([*columns, *group_columns]))
        if packed and sum(data.column(c).nbytes for c in wider) > FRAME_BYTES:
            frames.append((columns, packed))
            wider, packed = group_columns, []
        columns, packed = wider, [*packed, *group]
    if packed:
        frames.append((columns, packed))
    return frames


def _configuration_made_once(made: property) -> property:
    """Great Expectations' ``Expectation.configuration``, built once per expectation object.

    The property builds a new configuration from the expectation's fields at every call, and
    planning the metrics of one expectation calls it over a hundred times (about a third of
    Great Expectations' time on 100,000 people). During a validation nothing changes the fields,
    so the first configuration built serves every later call."""
    built: dict[int, tuple[object, object]] = {}

    def configuration(expectation):
        found = built.get(id(expectation))
        if found is None or found[0] is not expectation:
            found = built[id(expectation)] = (expectation, made.fget(expectation))
        return found[1]

    return property(configuration)


UNIQUENESS = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")


def _distinct_frame(data: pa.Table, columns: tuple[str, ...]) -> pd.DataFrame:
    """Columns whose values never repeat, as row numbers with the same nulls: whatever Great
    Expectations counts on them (rows, missing values, repeats: none) is what it counts on the values."""
    numbers = np.arange(data.num_rows, dtype=np.int64)
    return pd.DataFrame({name: pd.arrays.IntegerArray(numbers, data.column(name).is_null().to_numpy())
                         for name in columns})


def _columns_read(kwargs: Mapping[str, object]) -> tuple[str, ...]:
    """The frame columns an expectation reads, from its configuration."""
    named = [kwargs.get(key) for key in ("column", "column_A", "column_B")]
    return tuple(dict.fromkeys([*(c for c in named if c), *(kwargs.get("column_list") or [])]))


def _sample(detail: dict, sources: pd.DataFrame | None) -> list[str]:
    """A few unexpected values as text, each with the file and row it came from."""
    values = (detail.get("partial_unexpected_list") or [])[:SAMPLE_SIZE]
    positions = (detail.get("partial_unexpected_index_list") or [])[:SAMPLE_SIZE]
    if sources is None or len(positions) != len(values):
        return [_as_text(value) for value in values]
    files, rows = sources["source_file"], sources["source_row"]
    return [f"{_as_text(value)} ({files.iat[p]}:{rows.iat[p]})" for value, p in zip(values, positions, strict=True)]


def _as_text(value: object) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(_as_text(v) for v in value.values()) + ")"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_as_text(v) for v in value) + ")"
    if pd.isna(value):
        return "NULL"
    if isinstance(value, (pd.Timestamp, np.datetime64, dt.datetime)):
        stamp = pd.Timestamp(value)
        return stamp.date().isoformat() if stamp == stamp.normalize() else stamp.isoformat()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


# ---------------------------------------------------------------------------------------------
# Validating the warehouse


def frame_sql(table: Table, codes: Mapping[str, Iterable[str]] | None = None,
              names: Iterable[str] | None = None) -> str:
    """The staging rows of ``table`` shaped for pandas, in storage order, with their row ids.

    ``codes`` gives, for columns of few distinct values, every value they hold: DuckDB sends those
    columns coded (an ENUM of the values, a dictionary in Arrow) rather than as text. ``names``
    chooses columns (all, with source_file and source_row, by default)."""
    codes = codes or {}
    low, high = PANDAS_DATE_RANGE
    kinds = {**{c.name: c.type for c in table.columns}, "source_file": "text", "source_row": "integer"}
    columns = []
    for name in (list(kinds) if names is None else names):
        kind = kinds[name]
        if kind == "date":
            columns.append(
                f"CAST(CASE WHEN t.{name} < DATE '{low}' THEN DATE '{low}' "
                f"WHEN t.{name} > DATE '{high}' THEN DATE '{high}' ELSE t.{name} END "
                f"AS TIMESTAMP_NS) AS {name}")
        elif codes.get(name):
            values = ", ".join("'" + value.replace("'", "''") + "'" for value in codes[name])
            columns.append(f"CAST(t.{name} AS ENUM({values})) AS {name}")
        else:
            columns.append(f"t.{name}")
    columns.append(f"t.rowid AS {ROW_ID}")
    return f"SELECT {', '.join(columns)} FROM staging.{table.name} AS t"


def derived_sql(table: Table, suite: dict) -> str | None:
    """The suite's derived columns of every staging row, by row id, in no particular order (None: it has none).

    They are read apart from the rows: their joins would scatter the rows' order, and sorting the
    rows back into order cost more than the joins."""
    derived = suite["meta"]["desist"]["derived_columns"]
    if not derived:
        return None
    columns = [f"t.rowid AS {ROW_ID}", *(f"({sql}) AS {name}" for name, sql in derived.items())]
    return f"SELECT {', '.join(columns)} FROM staging.{table.name} AS t"


ROW_ID = "desist_row_id"


SOURCE_COLUMNS = ("source_file", "source_row")


def _pandas_type(arrow_type: pa.DataType) -> object:
    # Arrow-backed strings and masked booleans keep Great Expectations' checks vectorised.
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow")
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    return None


@dataclass
class StagedRows:
    """A table's staging rows as validation reads them, before their derived columns are put beside them."""

    table: Table
    suite: dict
    distinct: tuple[str, ...]  # key columns counted free of repeats (``_distinct_key``)
    data: pa.Table  # the table's columns, rows in file and row order
    sources: pd.DataFrame  # source_file and source_row of each row, in the same order
    row_ids: np.ndarray  # the rows' staging row ids, in the order DuckDB stores them
    order: FileOrder | None  # how stored rows are put in file order (None: they are in it already)
    # ``data`` with the derived columns, as the connection that read the rows saw the other tables
    with_derived: pa.Table | None = None


def read_rows(con: duckdb.DuckDBPyConnection, name: str, settings: Settings,
              suites_dir: Path = EXPECTATIONS_DIR, duckdb_turn: threading.Lock | None = None,
              derive: Callable[[], bool] = lambda: False) -> StagedRows:
    """The rows Great Expectations validates (as Arrow) and, row for row, where each row came from.

    Rows are in file and row order. Columns with a domain are dictionary-encoded (categoricals in
    pandas): few distinct values, so hashing and set checks on millions of rows stay cheap. The
    file names are too. DuckDB sends those columns coded (``frame_sql``), so their text is never
    held whole, unless one holds more than ``CODED_VALUES`` distinct values (then each batch is
    encoded as it comes). Rows are put in order by Arrow when they are not in order already
    (staging is written by several threads, in blocks out of order): a sort in DuckDB would carry
    every column through it. DuckDB hands back the memory of each query before the next step
    (``settings``' memory limit is set again).

    The committed suite serves the built-in contract; a contract adjusted in evaluation.yaml
    gets its suite built the same way, from the adjusted table. ``duckdb_turn``, when given, is
    held while DuckDB works (``validate_warehouse`` reads the next table on another thread):
    handing memory back lowers the database's memory limit under every query running then. When
    ``derive()`` is true once the rows are read, the derived columns are put beside them too.
    """
    table = settings.tables[name]
    suite = load_suite(name, suites_dir) if table == TABLES[name] else build_suite(table)
    turn = duckdb_turn or contextlib.nullcontext()
    encoded = [*(column.name for column in table.columns if column.domain), "source_file"]
    with turn:
        distinct = _distinct_key(con, table)  # before the rows take their memory
        _hand_back_duckdb_memory(con, settings)
        found = con.execute("SELECT " + ", ".join(f"list(DISTINCT {name}) FILTER (WHERE {name} IS NOT NULL)"
                                                  for name in encoded) + f" FROM staging.{table.name}").fetchall()[0]
    codes = {name: values for name, values in zip(encoded, found, strict=True)
             if values and len(values) <= CODED_VALUES}
    # Where each row comes from, which gives the file order; then the columns of a large table one
    # at a time, each put in order as it arrives, so only one column is ever held twice (a batch
    # DuckDB hands over is freed only when every column of it is).
    read = _read(con, table, codes, list(SOURCE_COLUMNS), encoded, turn)
    row_ids = read.column(ROW_ID).to_numpy()
    files = read.column("source_file")
    dictionary = files.chunk(0).dictionary if files.num_chunks else pa.array([], pa.string())
    file_rank = pc.take(pc.rank(dictionary, sort_keys="ascending"),
                        pa.chunked_array([chunk.indices for chunk in files.chunks], pa.int32()))
    order = _file_order(file_rank, read.column("source_row"))
    del files, dictionary, file_rank
    pool = pa.default_memory_pool()

    def in_order(read: pa.Table, name: str) -> pa.Array:
        """One chunk: pandas' Arrow-backed columns in many chunks are joined again by each check
        that reads them (more CPU and memory in Great Expectations)."""
        column = read.column(name)
        column = _one_chunk(column) if order is None else order.column(column)
        if name in encoded:  # dictionaries in order of first appearance, as encoding the sorted column would give
            column = _first_seen_dictionary(column)
        return column

    sources = pa.table({name: in_order(read, name) for name in SOURCE_COLUMNS}).to_pandas()
    del read
    pool.release_unused()
    columns = {}
    one_batch = len(row_ids) <= READ_BATCH_ROWS
    for names in [table.column_names] if one_batch else [[name] for name in table.column_names]:
        read = _read(con, table, codes, names, encoded, turn, row_ids)
        columns.update((name, in_order(read, name)) for name in names)
        del read
        pool.release_unused()  # the column as it came, before the next one comes on top
    staged = StagedRows(table, suite, distinct, pa.table(columns), sources, row_ids, order)
    del columns
    with turn:
        _hand_back_duckdb_memory(con, settings)  # the table's pages
        if derive():
            staged.with_derived = with_derived(con, staged)
            _hand_back_duckdb_memory(con, settings)  # what the joins of the derived columns took
    return staged


def _read(con: duckdb.DuckDBPyConnection, table: Table, codes: Mapping[str, Iterable[str]], names: list[str],
          encoded: Iterable[str], duckdb_turn, row_ids: np.ndarray | None = None) -> pa.Table:
    """Columns of the table's staging rows with their row ids, in storage order; coded columns as
    dictionaries. ``row_ids``: the rows an earlier read gave, which these must be, in that order."""
    coded = pa.dictionary(pa.int32(), pa.string())
    with duckdb_turn:
        reader = con.sql(frame_sql(table, codes, names)).to_arrow_reader(READ_BATCH_ROWS)
    schema = reader.schema
    for name in names:
        if name in encoded:
            position = schema.get_field_index(name)
            schema = schema.set(position, schema.field(position).with_type(coded))
    batches = []
    seen = 0
    while (batch := _next_batch(reader, duckdb_turn)) is not None:
        for name in names:
            if name in encoded:
                column = batch.column(name)
                column = column.cast(coded) if pa.types.is_dictionary(column.type) else column.dictionary_encode()
                batch = batch.set_column(batch.schema.get_field_index(name), name, column)
        if row_ids is not None:
            if not np.array_equal(batch.column(ROW_ID).to_numpy(), row_ids[seen:seen + batch.num_rows]):
                raise RuntimeError(f"staging.{table.name} gave its rows in another order when read again")
            batch = batch.drop_columns([ROW_ID])
        seen += batch.num_rows
        batches.append(batch)
    with duckdb_turn:
        del reader
    if row_ids is not None and seen != len(row_ids):
        raise RuntimeError(f"staging.{table.name} gave {seen} rows when read again, not {len(row_ids)}")
    if row_ids is not None:
        schema = schema.remove(schema.get_field_index(ROW_ID))
    return pa.Table.from_batches(batches, schema).unify_dictionaries()  # chunks share each column's dictionary


def _next_batch(reader: pa.RecordBatchReader, duckdb_turn) -> pa.RecordBatch | None:
    """The reader's next batch (None: there is none), read in DuckDB's turn: one batch at a time,
    so statements of the other thread wait for a batch, not for the whole table."""
    with duckdb_turn:
        try:
            return reader.read_next_batch()
        except StopIteration:
            return None


READ_BATCH_ROWS = 262_144
# Most distinct values of a column DuckDB sends coded (as an ENUM of them).
CODED_VALUES = 10_000


def with_derived(con: duckdb.DuckDBPyConnection, rows: StagedRows) -> pa.Table:
    """The rows with their suite's derived columns after the table's columns (matched by row id).

    The derived columns read other tables as ``con`` sees them: validation's own transaction, once
    it has moved rows of the tables checked before to quarantine. A true/false helper column is
    true on almost every row: DuckDB returns only the rows where one is not true (false or
    missing), and every other row is true. Other helper columns come whole."""
    sql = derived_sql(rows.table, rows.suite)
    if sql is None:
        return rows.data
    row_ids, order = rows.row_ids, rows.order
    derived = con.sql(sql)
    flags = [name for name, kind in zip(derived.columns[1:], derived.types[1:], strict=True) if kind == "BOOLEAN"]
    values = [name for name in derived.columns[1:] if name not in flags]
    sorter = None if len(row_ids) < 2 or (np.diff(row_ids) > 0).all() else np.argsort(row_ids)

    def positions(found: pa.Table) -> np.ndarray:
        """The stored position of each row id in ``found``."""
        wanted = found.column(ROW_ID).to_numpy()
        at = np.minimum(np.searchsorted(row_ids, wanted, sorter=sorter), max(len(row_ids) - 1, 0))
        at = at if sorter is None else sorter[at]
        if len(at) and not (row_ids[at] == wanted).all():
            raise RuntimeError("derived columns name rows that are not in the frame")
        return at

    columns = {}
    if flags:
        not_true = " OR ".join(f"{name} IS DISTINCT FROM TRUE" for name in flags)
        found = con.sql(f"SELECT {ROW_ID}, {', '.join(flags)} FROM ({sql}) WHERE {not_true}").to_arrow_table()
        at = positions(found)
        for name in flags:
            flag = np.ones(len(row_ids), dtype=bool)
            missing = np.zeros(len(row_ids), dtype=bool)
            flag[at] = found.column(name).fill_null(False).to_numpy(zero_copy_only=False)
            missing[at] = found.column(name).is_null().to_numpy(zero_copy_only=False)
            if order is not None:
                flag, missing = order.values(flag), order.values(missing)
            columns[name] = pa.array(flag, mask=missing if missing.any() else None)
    if values:
        found = con.sql(f"SELECT {ROW_ID}, {', '.join(values)} FROM ({sql})").to_arrow_table()
        if found.num_rows != len(row_ids):
            raise RuntimeError(f"{found.num_rows} rows of derived columns for {len(row_ids)} rows")
        take = np.empty(len(row_ids), dtype=np.int64)
        take[positions(found)] = np.arange(len(row_ids))  # the derived row of each stored row
        if order is not None:
            take = order.values(take)
        for name in values:
            columns[name] = _one_chunk(found.column(name)).take(take)
    data = rows.data
    for name in derived.columns[1:]:  # in the suite's order
        data = data.append_column(name, columns.pop(name))
    return data


@dataclass
class FileOrder:
    """How the stored rows are put by file, then row.

    Staging is written in blocks of consecutive rows by several threads, the blocks out of order.
    When the rows come in few such blocks, the blocks are moved whole (``blocks``: (start, stop) of
    each, in the order they go): a column is copied once, slice after slice. Otherwise a stable sort
    (merging runs already in order) of one number per row gives every row's place (``positions``)."""

    blocks: list[tuple[int, int]] | None = None
    positions: np.ndarray | None = None

    def column(self, column: pa.ChunkedArray) -> pa.Array:
        """The column in file order, in one chunk."""
        if self.blocks is None:
            return _one_chunk(column).take(self.positions)
        return pa.chunked_array(
            [chunk for start, stop in self.blocks for chunk in column.slice(start, stop - start).chunks],
            column.type).combine_chunks()

    def values(self, values: np.ndarray) -> np.ndarray:
        """A NumPy column in file order."""
        if self.blocks is None:
            return values[self.positions]
        return np.concatenate([values[start:stop] for start, stop in self.blocks])


# Most blocks of consecutive rows that are moved whole rather than sorted row by row.
MOVED_BLOCKS = 10_000


def _file_order(file_rank: pa.ChunkedArray, source_row: pa.ChunkedArray) -> FileOrder | None:
    """How to put the rows by file, then row (None: they are in that order already)."""
    files, rows = file_rank.to_numpy(), source_row.to_numpy()
    if len(files) < 2:
        return None
    if rows.dtype.kind != "i" or rows.min() < 0:  # not row numbers: Arrow sorts them as they are
        return FileOrder(positions=pc.sort_indices(pa.table({"file": file_rank, "row": source_row}),
                                                   sort_keys=[("file", "ascending"), ("row", "ascending")]).to_numpy())
    if files.min() == files.max():  # one file: the row numbers order the rows
        key = rows
    else:
        key = files.astype(np.int64)
        key *= int(rows.max()) + 1
        key += rows
    step = np.diff(key)
    if (step >= 0).all():
        return None
    starts = np.flatnonzero(step != 1) + 1  # where a block of consecutive rows begins
    del step
    if len(starts) < MOVED_BLOCKS:
        bounds = np.concatenate([[0], starts, [len(key)]])
        by_first = np.argsort(key[bounds[:-1]], kind="stable")
        firsts, lasts = key[bounds[:-1]][by_first], key[bounds[1:] - 1][by_first]
        if (lasts[:-1] < firsts[1:]).all():  # every block ends before the next one starts
            return FileOrder(blocks=[(int(bounds[i]), int(bounds[i + 1])) for i in by_first])
    return FileOrder(positions=np.argsort(key, kind="stable"))


def _one_chunk(column: pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)


def _first_seen_dictionary(column: pa.DictionaryArray) -> pa.DictionaryArray:
    """The same values, their dictionary ordered by first appearance (unused entries dropped)."""
    seen = pc.unique(column.indices.drop_null())
    position = np.full(len(column.dictionary), -1, dtype=np.int32)
    position[seen.to_numpy()] = np.arange(len(seen), dtype=np.int32)
    indices = pc.take(pa.array(position), column.indices)
    return pa.DictionaryArray.from_arrays(indices, column.dictionary.take(seen))


SQL_TYPES = {"id": "VARCHAR", "text": "VARCHAR", "date": "DATE", "integer": "BIGINT",
             "number": "DOUBLE", "boolean": "BOOLEAN"}


def stage_frames(con: duckdb.DuckDBPyConnection, frames: Mapping[str, pd.DataFrame]) -> None:
    """Write DataFrames straight into typed ``staging.<table>`` tables, as ingest would.

    For tests and benchmarks that start from data rather than landing files. Missing optional
    columns become NULL; without ``source_file``/``source_row`` each row is numbered from 1 in
    a file called ``<table>.csv``.
    """
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    for name, frame in frames.items():
        table = TABLES[name]
        columns = [
            f"CAST({'f.' + c.name if c.name in frame.columns else 'NULL'} AS {SQL_TYPES[c.type]}) AS {c.name}"
            for c in table.columns
        ]
        source_file = "f.source_file" if "source_file" in frame.columns else f"'{name}.csv'"
        source_row = ("CAST(f.source_row AS BIGINT)" if "source_row" in frame.columns
                      else "CAST(row_number() OVER () AS BIGINT)")
        con.register("staged_frame", frame)
        try:
            con.execute(f"CREATE OR REPLACE TABLE staging.{name} AS SELECT {', '.join(columns)}, "
                        f"CAST({source_file} AS VARCHAR) AS source_file, {source_row} AS source_row "
                        "FROM staged_frame AS f")
        finally:
            con.unregister("staged_frame")


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The quarantine and data-quality tables, created if this warehouse has none yet."""
    con.execute("CREATE SCHEMA IF NOT EXISTS quarantine")
    con.execute("CREATE SCHEMA IF NOT EXISTS results")
    con.execute(
        "CREATE TABLE IF NOT EXISTS quarantine.rows (table_name VARCHAR NOT NULL, "
        "source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL, column_name VARCHAR, "
        "raw_value VARCHAR, reason VARCHAR NOT NULL, detail VARCHAR, raw_record VARCHAR, "
        "stage VARCHAR NOT NULL, quarantined_at TIMESTAMPTZ NOT NULL)")
    con.execute(f"CREATE TABLE IF NOT EXISTS results.data_quality ({DATA_QUALITY_COLUMNS})")


def quarantine(con: duckdb.DuckDBPyConnection, validation: TableValidation, sources: pd.DataFrame,
               checked_at: dt.datetime, table: Table | None = None) -> int:
    """Move the rows failing critical expectations from staging to quarantine.rows.

    One quarantine row per staging row, like ingest: column_name, raw_value and reason name
    its first failing expectation (in suite order), detail lists them all. Returns the number
    of rows moved.
    """
    table = table or TABLES[validation.table]
    # A row back in staging (ingest ran again) is no longer quarantined by an earlier run.
    con.execute(f"""
        DELETE FROM quarantine.rows AS q
        WHERE q.stage = 'validation' AND q.table_name = '{table.name}'
          AND EXISTS (SELECT 1 FROM staging.{table.name} AS t
                      WHERE t.source_file = q.source_file AND t.source_row = q.source_row)""")
    failing = [o for o in validation.outcomes if o.severity == CRITICAL and len(o.rows)]
    if not failing:
        return 0
    rows = np.concatenate([o.rows for o in failing])
    problems = pd.DataFrame({
        "source_file": sources["source_file"].take(rows).to_numpy(dtype=object),
        "source_row": sources["source_row"].take(rows).to_numpy(dtype=np.int64),
        "position": np.concatenate([np.full(len(o.rows), o.position) for o in failing]),
    })
    rules = pd.DataFrame({
        "position": [o.position for o in failing],
        "column_name": [o.column_name for o in failing],
        "reason": [o.expectation for o in failing],
        "note": [o.description for o in failing],
    })
    raw_value = "CASE p.position " + " ".join(
        f"WHEN {o.position} THEN concat_ws(', ', {', '.join(f'CAST(t.{c} AS VARCHAR)' for c in o.columns)})"
        for o in failing) + " END"
    record = "to_json({" + ", ".join(f"'{c}': t.{c}" for c in [*table.column_names, "source_file", "source_row"]) + "})"
    con.register("validation_problems", problems)
    con.register("validation_rules", rules)
    try:
        con.execute(f"""
            INSERT INTO quarantine.rows (table_name, source_file, source_row, column_name, raw_value,
                                         reason, detail, raw_record, stage, quarantined_at)
            WITH found AS (
                SELECT p.source_file, p.source_row, p.position, r.column_name, r.reason, r.note,
                       {raw_value} AS raw_value, {record}::VARCHAR AS raw_record
                FROM validation_problems AS p
                JOIN validation_rules AS r USING (position)
                JOIN staging.{table.name} AS t
                  ON t.source_file = p.source_file AND t.source_row = p.source_row
            )
            SELECT '{table.name}', source_file, source_row,
                   arg_min_null(column_name, position), arg_min_null(raw_value, position),
                   arg_min_null(reason, position),
                   string_agg(concat_ws(' ', column_name || ':', reason,
                                        '''' || coalesce(raw_value, '') || '''', '(' || note || ')'),
                              '; ' ORDER BY position),
                   any_value(raw_record), 'validation', ?::TIMESTAMPTZ
            FROM found
            GROUP BY source_file, source_row
            ORDER BY source_file, source_row""", [checked_at])
        moved = con.execute(f"""
            DELETE FROM staging.{table.name} AS t
            USING (SELECT DISTINCT source_file, source_row FROM validation_problems) AS p
            WHERE t.source_file = p.source_file AND t.source_row = p.source_row""").fetchall()[0][0]
    finally:
        con.unregister("validation_problems")
        con.unregister("validation_rules")
    return int(moved)


@dataclass
class ValidationRun:
    """Everything one validation of the staging tables found and did."""

    run_id: str
    checked_at: dt.datetime
    tables: dict[str, TableValidation]
    quarantined: dict[str, int]  # rows moved to quarantine per table (0 when the run blocked)
    seconds: dict[str, float]
    data_docs: Path | None = None
    # Why references do not resolve, when the rows they name were quarantined at ingest.
    causes: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return any(v.blocked for v in self.tables.values())

    @property
    def blocking_reasons(self) -> list[str]:
        return [*(reason for v in self.tables.values() for reason in v.blocking_reasons), *self.causes]

    def data_quality(self) -> pd.DataFrame:
        """One row per expectation per table, as appended to results.data_quality."""
        rows = []
        for name, validation in self.tables.items():
            moved = self.quarantined.get(name, 0) > 0
            for o in validation.outcomes:
                if o.severity == WARNING:
                    status = "passed" if o.success else "failed"
                elif not o.unexpected_count:
                    status = "passed"
                else:
                    status = "quarantined" if moved else "failed"
                rows.append((o.column_name, o.expectation, o.severity, status, o.element_count,
                             o.unexpected_count, ", ".join(o.sample) or None, name))
            share_failed = validation.failing_row_share > validation.max_failing_row_share
            rows.append((None, "max_failing_row_share", CRITICAL, "failed" if share_failed else "passed",
                         validation.rows_read, validation.failing_row_count,
                         f"{validation.failing_row_share:.4f} of rows (maximum "
                         f"{validation.max_failing_row_share})", name))
        frame = pd.DataFrame(rows, columns=["column_name", "expectation", "severity", "status",
                                            "element_count", "unexpected_count",
                                            "unexpected_sample", "table_name"])
        frame.insert(0, "run_id", self.run_id)
        frame.insert(1, "checked_at", pd.Timestamp(self.checked_at))
        return frame[["run_id", "checked_at", "table_name", "column_name", "expectation", "severity",
                      "status", "element_count", "unexpected_count", "unexpected_sample"]]


def ingest_causes(con: duckdb.DuckDBPyConnection, run: ValidationRun, tables: Mapping[str, Table]) -> list[str]:
    """For each blocking reference, the rows of the table it names that ingest quarantined, and why.

    A code outside the allowed values can quarantine a whole people file; the references to it
    then fail too, but the cause is the code, so the run says so.
    """
    targets = {tables[name].references[o.column_name][0]
               for name, v in run.tables.items() for o in v.outcomes
               if o.rule == "reference" and not o.success and o.severity == CRITICAL}
    causes = []
    for target in sorted(targets):
        found = con.execute(
            "SELECT column_name, reason, count(*) AS n, min(raw_value) FROM quarantine.rows "
            "WHERE stage = 'ingest' AND table_name = ? GROUP BY ALL ORDER BY n DESC LIMIT 3", [target]).fetchall()
        if found:
            what = ", ".join(f"{column} {reason} {n} (e.g. {value!r})" for column, reason, n, value in found)
            causes.append(f"{target}: rows quarantined at ingest, so references to them cannot resolve: {what}; "
                          "`desist check` suggests value maps")
    return causes


def suite_parameters(settings: Settings) -> dict[str, object]:
    return {
        "data_cutoff": dt.datetime.combine(settings.data_cutoff, dt.time()),
        "min_reference_rate": settings.validation.min_reference_rate,
        "min_valid_row_share": 1 - settings.validation.max_failing_row_share,
    }


def ingest_failures(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, int]:
    """Rows of a table that ingest kept out of staging: quarantined (by reason) or in rejected files."""
    found = {}
    if table_exists(con, "quarantine", "rows"):
        found = dict(con.execute(
            "SELECT reason, count(*) FROM quarantine.rows WHERE stage = 'ingest' AND table_name = ? GROUP BY reason",
            [name]).fetchall())
    if table_exists(con, "raw", "files"):
        rejected = con.execute("SELECT coalesce(sum(rows_rejected), 0) FROM raw.files "
                               "WHERE table_name = ? AND status = 'rejected'", [name]).fetchone()[0]
        if rejected:
            found["rejected_file"] = int(rejected)
    return found


def validate_table(con: duckdb.DuckDBPyConnection, runner: SuiteRunner, name: str, settings: Settings,
                   suites_dir: Path = EXPECTATIONS_DIR) -> tuple[TableValidation, pd.DataFrame]:
    """Run one table's suite on its staging rows; returns the outcomes and the rows' sources."""
    rows = read_rows(con, name, settings, suites_dir)
    data, failures = _completed(con, rows, settings)
    return _checked(runner, rows, data, failures, settings), rows.sources


def _completed(con: duckdb.DuckDBPyConnection, rows: StagedRows, settings: Settings,
               rows_moved: bool = False) -> tuple[pa.Table, dict[str, int]]:
    """The rows with their derived columns, and the table's rows that ingest kept out of staging.

    Derived columns that came with the rows were computed on another connection, which sees staging
    without this transaction's quarantine moves: they serve only while no rows have been moved."""
    data = rows.with_derived
    if data is None or rows_moved:
        data = with_derived(con, rows)
        _hand_back_duckdb_memory(con, settings)  # what the joins of the derived columns took
    return data, ingest_failures(con, rows.table.name)


def _checked(runner: SuiteRunner, rows: StagedRows, data: pa.Table, failures: dict[str, int],
             settings: Settings) -> TableValidation:
    """The suite's outcomes on the rows. The share of failing rows counts every stage: rows
    quarantined at ingest and rows of rejected files fail as surely as rows failing an expectation."""
    outcomes = runner.validate(rows.suite, data, rows.sources, distinct=rows.distinct)
    return TableValidation(rows.table.name, data.num_rows, outcomes, settings.validation.max_failing_row_share,
                           failures)


# Rows of the tables read ahead, beyond the next one, while a table is checked.
READ_AHEAD_ROWS = 600_000
HAND_BACK_LIMIT = "64MB"


def _hand_back_duckdb_memory(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Make DuckDB give back the memory a query left it holding (about 600 MB after reading
    offences at 1,000,000 people), before the next step comes on top: lowering its memory limit
    makes it let go; the limit of evaluation.yaml is then set again.

    DuckDB refuses the low limit when it holds more than that it cannot let go of (such as the
    rows this validation's transaction has already moved to quarantine); it has then let go of
    what it could, and the run goes on. The limit is set on a connection of its own: a refused
    statement aborts its connection's transaction, which must not be validation's."""
    with con.cursor() as other:
        try:
            other.execute(f"SET memory_limit = '{HAND_BACK_LIMIT}'")
        except duckdb.OutOfMemoryException:
            pass
        limit_resources(other, settings)


# From this many rows, a key is counted in DuckDB first: when no key repeats, Great Expectations
# checks its uniqueness on row numbers instead of hashing the key's text (SuiteRunner.validate).
DISTINCT_KEY_ROWS = 50_000


def _distinct_key(con: duckdb.DuckDBPyConnection, table: Table) -> tuple[str, ...]:
    """The table's key columns when no key occurs twice in staging (nulls equal), else ()."""
    if con.execute(f"SELECT count(*) FROM staging.{table.name}").fetchall()[0][0] < DISTINCT_KEY_ROWS:
        return ()
    key = ", ".join(table.key)
    # Equal keys have equal hashes: when no hash repeats, no key does. Sorting the 8-byte hashes
    # in NumPy costs less than grouping them in DuckDB (let alone the key's text). A repeated hash
    # is counted again on the keys themselves.
    hashes = con.execute(f"SELECT hash({key}) AS key_hash FROM staging.{table.name}").fetchnumpy()["key_hash"]
    hashes.sort()
    repeated = bool((hashes[1:] == hashes[:-1]).any())
    del hashes
    if repeated:
        repeated = con.execute(f"SELECT count(*) FROM (SELECT {key} FROM staging.{table.name} "
                               "GROUP BY ALL HAVING count(*) > 1)").fetchall()[0][0]
    return () if repeated else table.key


def validate_warehouse(con: duckdb.DuckDBPyConnection, settings: Settings, run_id: str | None = None,
                       data_docs: Path | None = None, suites_dir: Path = EXPECTATIONS_DIR) -> ValidationRun:
    """Validate every staging table, quarantine failing rows and record the outcomes.

    Tables are checked parents first (``validation_order``). All quarantine moves happen in
    one transaction, committed only if no table blocks the run: after a blocking failure the
    staging tables are left exactly as ingest wrote them. The outcomes are appended to
    ``results.data_quality`` either way, and the Data Docs site is written to ``data_docs``
    when given.
    """
    run_id = run_id or uuid.uuid4().hex
    checked_at = dt.datetime.now(dt.timezone.utc)
    ensure_tables(con)
    freeze_great_expectations()
    runner = SuiteRunner(suite_parameters(settings), run_name=run_id)
    tables: dict[str, TableValidation] = {}
    quarantined: dict[str, int] = {}
    seconds: dict[str, float] = {}
    names = validation_order()
    # DuckDB reads the next table on another thread while Great Expectations (Python, one core)
    # checks the current one. One DuckDB statement runs at a time (``duckdb_turn``): handing memory
    # back lowers the database's memory limit under any query running then. The reading cursor
    # sees staging as committed, without this transaction's quarantine moves: the same rows for
    # the table it reads, as only tables already checked lose rows. Derived columns read other
    # tables, so those it computes serve only while no rows have moved (``_completed``).
    duckdb_turn = threading.Lock()
    rows_moved = threading.Event()  # set once a table's quarantine has moved rows
    con.begin()
    try:
        counts = {name: con.execute(f"SELECT count(*) FROM staging.{name}").fetchall()[0][0] for name in names}
        with con.cursor() as reading, ThreadPoolExecutor(1, thread_name_prefix="validation-read") as ahead:
            pending: dict[str, Future] = {}

            def read_ahead(start: int) -> None:
                """Start reading the table at ``start``, and the ones after it while their rows
                together stay under READ_AHEAD_ROWS (small tables, read while a large one is checked)."""
                waiting = 0
                for name in names[start:]:
                    waiting += counts[name]
                    if name != names[start] and waiting > READ_AHEAD_ROWS:
                        break
                    if name not in pending:
                        pending[name] = ahead.submit(read_rows, reading, name, settings, suites_dir, duckdb_turn,
                                                     derive=lambda: not rows_moved.is_set())

            try:
                read_ahead(0)
                for position, name in enumerate(names):
                    started = time.perf_counter()
                    rows = pending.pop(name).result()
                    if position + 1 < len(names):  # read while this one is checked
                        read_ahead(position + 1)
                    with duckdb_turn:
                        data, failures = _completed(con, rows, settings, rows_moved.is_set())
                    tables[name] = _checked(runner, rows, data, failures, settings)
                    sources, table = rows.sources, rows.table
                    del data, rows  # Great Expectations is done with them
                    with duckdb_turn:
                        quarantined[name] = quarantine(con, tables[name], sources, checked_at, table)
                    if quarantined[name]:
                        rows_moved.set()
                    seconds[name] = time.perf_counter() - started
                    del sources
            except BaseException:
                ahead.shutdown(cancel_futures=True)  # no more reads for a validation that has stopped
                raise
        blocked = any(v.blocked for v in tables.values())
        if blocked:
            con.rollback()
            quarantined = dict.fromkeys(quarantined, 0)
        else:
            con.commit()
    except BaseException:
        con.rollback()
        raise
    run = ValidationRun(run_id, checked_at, tables, quarantined, seconds)
    if run.blocked:
        run.causes = ingest_causes(con, run, settings.tables)
    con.register("validation_data_quality", run.data_quality())
    try:
        con.execute("INSERT INTO results.data_quality SELECT * FROM validation_data_quality")
    finally:
        con.unregister("validation_data_quality")
    if data_docs is not None:
        run.data_docs = runner.build_data_docs(data_docs, quarantined, contract_notes(settings.tables))
    runner.close()
    return run


if __name__ == "__main__":
    for written in write_suites():
        print(f"wrote {written.relative_to(PROJECT_ROOT)}")
