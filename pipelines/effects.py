"""Matched comparison, effects and survival, one programme partition at a time: read the analysis
tables (read-only), call models/, write the programme's result frames (see pipelines/partitions.py)."""
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from desist import warehouse as wh
from desist.analysis import ANALYSED_PEOPLE, unanalysed_reason
from desist.config import Settings
from models.evaluation import MEASURES, MatchingSpec, evaluate_effects, evaluate_survival
from pipelines.partitions import (ANALYSED_PEOPLE_FILE, FINGERPRINT_TAG, PROGRAMME_EFFECTS, PROGRAMME_GROUP,
                                 PROGRAMME_SURVIVAL, PROGRAMMES, analysed_people_file, programme_fingerprints,
                                 read_partition, write_partition)
from pipelines.resources import Warehouse, release_free_memory

EFFECT_TABLES = ("programmes_analysed", "propensity_model", "matched_sets", "balance", "sample_sizes",
                 "unmatched", "effects")
SURVIVAL_TABLES = ("km_curves", "km_horizons", "logrank", "cox", "ph_tests", "rmst")
# The survival analysis takes its people from the effects step's file of everyone it analysed
# (:func:`analysed_people`: weight 0 where unmatched), in one read: everyone with the treatment,
# weight, matched set, the configured covariates (for the adjusted model on the whole cohort) and
# the survival pair, numbered by their row in the file (`row`), with the person id only where the
# person is in the matched sample (the matched analyses' clusters after matching with
# replacement). The survival pair is read from its table stored once per person and index date: the
# people's ids and dates find it. Unordered: :func:`read_survival_cohort` orders the rows in NumPy by
# time and row number, far cheaper than sorting in DuckDB.
ANALYSED_SURVIVAL = """
    SELECT people.file_row_number AS row, CASE WHEN people.weight > 0 THEN people.person_id END AS person_id,
           people.treated, people.weight, people.subclass,
           COLUMNS(lambda c: list_contains(getvariable('covariates'), c)), survival.time_days, survival.event
    FROM (SELECT * REPLACE (index_date::DATE AS index_date)
          FROM read_parquet($people, file_row_number = true)) AS people
    JOIN analysis.survival_by_index AS survival USING (person_id, index_date)
"""


# The people analysed (desist.analysis.ANALYSED_PEOPLE, in its order) with only the columns the
# models read: person_id, treated and the configured covariates (and the `{extra}` columns asked for),
# then their index date as `measured_from` (the key of their measures). Read from the tables stored
# once per person and index date, not through the views that give them to every programme.
ANALYSED_COVARIATES = """
    SELECT cohort.person_id, cohort.treated,
           COLUMNS(lambda c: list_contains(getvariable('covariates'), c)){extra},
           cohort.index_date AS measured_from
    FROM (SELECT person_id, treated, index_date FROM analysis.cohort WHERE programme_id = $programme_id) AS cohort
    JOIN analysis.covariates_by_index AS covariates USING (person_id, index_date)
    SEMI JOIN (SELECT person_id, index_date FROM analysis.measures_by_index
               WHERE window_months = getvariable('headline_months') AND complete) AS headline
      USING (person_id, index_date)
    WHERE covariates.covariates_complete
    ORDER BY cohort.person_id
"""
# Every measure row of the people analysed (registered as `analysed`: person_id, index_date and their
# row number) in the follow-up windows, by row number: one hash join, streamed.
ANALYSED_MEASURES = f"""
    SELECT analysed.row, measures.window_months,
           {", ".join(f"CAST(measures.{measure} AS DOUBLE) AS {measure}" for measure, _ in MEASURES)}
    FROM analysis.measures_by_index AS measures
    JOIN analysed USING (person_id, index_date)
    WHERE list_contains(getvariable('windows_months'), measures.window_months)
"""


def read_cohort(con: duckdb.DuckDBPyConnection, settings: Settings, programme_id: str,
                extra: Sequence[str] = ()) -> pd.DataFrame:
    """One programme's people analysed with each measure of each follow-up window as a float32 column
    ``<measure>_<window>`` (missing where the person has no row for the window), as
    models.evaluation._measures_wide lays them out; ``extra``: columns of analysis.covariates read
    besides the configured covariates (after them).

    Read through Arrow so no Python object is made per person and value: text covariates arrive
    as pandas categoricals (levels sorted, as pandas orders text), person ids as Arrow strings,
    numbers and booleans as NumPy arrays (pandas' nullable types where values are missing, as
    DuckDB's ``.df()`` gives them). The measures are streamed into their columns by row number,
    so the long measure rows are never held whole."""
    where = {"programme_id": programme_id}
    table = con.sql(ANALYSED_COVARIATES.format(extra="".join(f", covariates.{wh.quoted(name)}" for name in extra)),
                    params=where).to_arrow_table()
    person_ids, index_dates = table.column("person_id"), table.column("measured_from")
    table = table.drop_columns("measured_from")
    if len(person_ids) > 1 and pc.any(pc.equal(person_ids[1:], person_ids[:-1])).as_py():
        raise dg.Failure(description=f"programme {programme_id}: analysis.covariates holds more than one "
                                     "analysed row for a person")
    people = pandas_columns(table)
    del table
    windows = list(settings.follow_up.windows_months)
    window_index = pd.Index(windows)
    names = [measure for measure, _ in MEASURES]
    # float32: the measures are counts, days and 0/1 flags, exact in float32 below 2**24 (a value
    # that is not stops the read); the models read each outcome as float64.
    wide = np.full((len(person_ids), len(windows), len(names)), np.nan, dtype=np.float32)
    cells = wide.reshape(len(person_ids) * len(windows), len(names))  # a row per person and window
    # A person and window given twice fills fewer cells than rows came.
    filled, n_rows = np.zeros(len(cells), dtype=bool), 0
    con.register("analysed", pa.table({"person_id": person_ids, "index_date": index_dates,
                                       "row": np.arange(len(person_ids))}))
    try:
        for batch in con.sql(ANALYSED_MEASURES).to_arrow_reader():
            cell = (batch.column("row").to_numpy() * len(windows)
                    + window_index.get_indexer(batch.column("window_months").to_numpy()))
            filled[cell] = True
            n_rows += len(cell)
            for j, name in enumerate(names):
                values = batch.column(name).to_numpy(zero_copy_only=False)
                if np.nanmax(np.abs(values), initial=0) >= _FLOAT32_EXACT:
                    raise dg.Failure(description=f"programme {programme_id}: analysis.measures.{name} holds a "
                                                 f"value of {_FLOAT32_EXACT:,} or more, out of the measures' range")
                cells[:, j][cell] = values
    finally:
        con.unregister("analysed")
    if n_rows > np.count_nonzero(filled):
        raise dg.Failure(description=f"programme {programme_id}: analysis.measures holds more than one row for a "
                                     "person and follow-up window")
    # The outcome block framed as it is and the people's columns put before it: nothing is copied.
    cohort = pd.DataFrame(wide.reshape(len(person_ids), len(windows) * len(names)), copy=False,
                          columns=[f"{name}_{window}" for window in windows for name in names])
    for position, (name, values) in enumerate(people.items()):
        cohort.insert(position, name, values)
    return cohort


# Integers up to this are exact in float32.
_FLOAT32_EXACT = 2**24


def pandas_columns(table: pa.Table) -> dict[str, np.ndarray | pd.api.extensions.ExtensionArray]:
    """The table's columns as NumPy or pandas arrays (see :func:`read_cohort`), not yet framed."""
    columns = {}
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            if name == "person_id":
                columns[name] = pd.arrays.ArrowExtensionArray(column)
                continue
            encoded = column.dictionary_encode().combine_chunks()
            levels = encoded.dictionary.to_pylist()
            codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            columns[name] = pd.Categorical.from_codes(codes, categories=levels).reorder_categories(sorted(levels))
        elif column.null_count == 0:
            columns[name] = column.to_numpy()
        else:
            columns[name] = column.to_pandas(types_mapper=NULLABLE_TYPES.get).array
    return columns


# Arrow types with missing values as pandas' nullable types (DuckDB's .df() gives these too).
NULLABLE_TYPES = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype(), pa.int16(): pd.Int16Dtype(),
                  pa.int8(): pd.Int8Dtype(), pa.bool_(): pd.BooleanDtype()}


# Stage 2 runs one worker per core, each with its models beside its queries: a programme step's
# DuckDB connection may use this share of evaluation.yaml warehouse.memory_limit, so the workers'
# DuckDB memory together stays within the limit with room left for the models. DuckDB fills its
# share with the table blocks it scanned, so the share is what a step's read adds to its peak: at
# 1,000,000 people a fifth (200 MB of 1 GB) reads the cohort in the same CPU time as a third, an
# eighth costs a fifth more CPU.
PROGRAMME_MEMORY_SHARE = 5
_BYTES_PER_UNIT = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
                   "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def programme_memory_limit(settings: Settings) -> str:
    """DuckDB's memory limit in a programme step: its share (PROGRAMME_MEMORY_SHARE) of the warehouse's."""
    amount, unit = re.fullmatch(r"\s*([\d.]+)\s*(\w+)\s*", settings.warehouse.memory_limit).groups()
    return f"{int(float(amount) * _BYTES_PER_UNIT[unit]) // PROGRAMME_MEMORY_SHARE // 2**10}KiB"


@contextmanager
def programme_connection(warehouse: Warehouse) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only warehouse connection for one programme step, with DuckDB's memory limited to its
    share (programme_memory_limit). Closing it gives DuckDB's memory back (and the memory Arrow kept
    from converting results), so a step holds one open while it queries and none while its models run."""
    try:
        with warehouse.connect(read_only=True) as con:
            con.execute(f"SET memory_limit = '{programme_memory_limit(warehouse.settings)}'")
            yield con
    finally:
        # Arrow's pages of the query results converted (about 90 MB after a programme's read at
        # 1,000,000 people) and glibc's freed heap pages given back.
        release_free_memory(collect=False)  # the programme steps leave no cycles to collect


@contextmanager
def partition_writer(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection, with a programme step's memory limit, that writes the step's Parquet
    files (write_partition) from its frames: they need nothing of the warehouse, whose every opening reads
    its whole catalogue (four openings a programme)."""
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SET memory_limit = '{programme_memory_limit(settings)}'")
        yield con


def matching_spec(settings: Settings) -> MatchingSpec:
    covariates = settings.covariates
    return MatchingSpec(
        covariates=covariates.all,
        categorical=covariates.categorical,
        ratio=settings.matching.ratio,
        replace=settings.matching.replace,
        caliper=settings.matching.caliper,
        exact=settings.matching.exact,
        missing_indicator=covariates.missing_indicator,
    )


def read_everyone_analysed(con: duckdb.DuckDBPyConnection, query: str, programme_id: str, people: Path,
                           tables: str) -> tuple[pa.Table, np.ndarray]:
    """The rows of ``query``, which gives everyone of the programme's analysed_people file (``$people``:
    :func:`analysed_people`) numbered by their row in the file (``row``), and those row numbers, read
    through Arrow (no sorting of text in DuckDB, no Python object per person). Stops, naming the
    programme and ``tables``, unless every person of the file has exactly one row."""
    params = {"people": str(people)} | ({"programme_id": programme_id} if "$programme_id" in query else {})
    table = con.sql(query, params=params).to_arrow_table()
    n_analysed = pq.ParquetFile(people).metadata.num_rows
    rows = table.column("row").to_numpy()
    per_row = np.bincount(rows, minlength=n_analysed)
    missing, doubled = int((per_row == 0).sum()), int((per_row > 1).sum())
    if missing or doubled:
        faults = [*([f"lacks {missing}"] if missing else []),
                  *([f"holds more than one row for {doubled}"] if doubled else [])]
        raise dg.Failure(description=f"programme {programme_id}: {tables} {' and '.join(faults)} of the "
                                     f"{n_analysed} people analysed for its effects")
    return table.drop_columns("row"), rows


def read_survival_cohort(con: duckdb.DuckDBPyConnection, programme_id: str, people: Path) -> pd.DataFrame:
    """Everyone analysed (ANALYSED_SURVIVAL) in time order, text covariates as categoricals (see
    :func:`read_cohort`)."""
    table, rows = read_everyone_analysed(con, ANALYSED_SURVIVAL, programme_id, people, "analysis.survival")
    # In time order, ties in file order: the Cox fits sum over risk sets in time order (their design
    # needs no reordering copy), and the order does not depend on how DuckDB's threads met.
    in_time_order = np.lexsort((rows, table.column("time_days").to_numpy()))
    # copy=False: the columns stay apart, as they are (copying same-typed columns into one block
    # would cost more than the models read of them).
    return pd.DataFrame({name: values[in_time_order] for name, values in pandas_columns(table).items()},
                        copy=False)


def analysed_people_extra(settings: Settings) -> list[str]:
    """The columns of analysis.covariates the programme's later steps read besides the covariates: the
    index date (their other tables' rows are found by it), the age and the subgroups' and exact
    matching's other columns."""
    names = ["index_date", "age_at_index", *settings.subgroups.variables, *settings.matching.exact]
    return [name for name in dict.fromkeys(names)
            if name not in ("age_band", "risk_band") and name not in settings.covariates.all]


def analysed_people(programme_id: str, people: pd.DataFrame, extra: dict[str, pd.Series],
                    matched_sets: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Everyone analysed, as the programme's later steps read them (ANALYSED_PEOPLE_FILE), in the order
    of the matched_sets file: its columns, the covariates, :func:`analysed_people_extra` (from
    ``people`` or ``extra``, the columns read besides the models') and the headline measure as
    ``reoffended``. Stops unless ``people`` (read_cohort's frame) holds the matched sets' people in
    their order."""
    person_ids = pa.array(matched_sets["person_id"].array)
    if len(person_ids) != len(people) or not pc.all(pc.equal(person_ids, pa.array(people["person_id"].array))).as_py():
        raise dg.Failure(description=f"programme {programme_id}: the matched sets do not hold the people "
                                     "analysed in their order")
    columns = {name: people[name] for name in settings.covariates.all} | extra
    return pd.DataFrame(
        {**{name: matched_sets[name].array for name in matched_sets.columns},
         **{name: values.array for name, values in columns.items()},
         "reoffended": people[f"reoffended_{settings.follow_up.headline_months}"].to_numpy().astype(np.int32)},
        copy=False)


def write_results(con: duckdb.DuckDBPyConnection, schema_sql: str, frames: dict[str, list[pd.DataFrame]]) -> None:
    """Recreate the results tables declared in sql/<schema_sql>, then add the rows of every programme."""
    wh.run_sql(con, schema_sql)
    for table, parts in frames.items():
        if not parts:
            continue
        con.register("frame", pd.concat(parts, ignore_index=True))
        con.execute(f"INSERT INTO results.{table} BY NAME SELECT * FROM frame")
        con.unregister("frame")


def with_programme(frame: pd.DataFrame, programme_id: str) -> pd.DataFrame:
    return frame.assign(programme_id=programme_id)[["programme_id", *frame.columns]]


def programme_name(con: duckdb.DuckDBPyConnection, programme_id: str) -> str:
    """The programme's name; a partition whose programme left staging.programmes stops here."""
    rows = con.execute("SELECT name FROM staging.programmes WHERE programme_id = $programme_id",
                       {"programme_id": programme_id}).fetchall()
    if not rows:
        raise dg.Failure(description=f"programme {programme_id}: not in staging.programmes (removed from the "
                                     "extract); its partition is deleted by the next run")
    return rows[0][0]


def fingerprint(context: dg.AssetExecutionContext, con: duckdb.DuckDBPyConnection, settings: Settings) -> str:
    """The fingerprint of the inputs this step read, recorded so the next run can skip an unchanged programme:
    the one the plan hashed when it started this run, or (a run started by hand) hashed now."""
    programme_id = context.partition_key
    return (context.run.tags.get(FINGERPRINT_TAG)
            or programme_fingerprints(con, settings, [programme_id])[programme_id])


@dg.asset(
    key=PROGRAMME_EFFECTS,
    deps=[dg.AssetKey(["analysis", "covariates"]), dg.AssetKey(["analysis", "measures"]),
          dg.AssetKey(["staging", "programmes"])],
    partitions_def=PROGRAMMES,
    group_name=PROGRAMME_GROUP,
    kinds={"duckdb", "python"},
    description="One programme's propensity model, matched sets, balance and effects (matched, naive, adjusted).",
)
def programme_effects(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    settings = warehouse.settings
    programme_id = context.partition_key
    # The reads in one connection, closed before the models run and the writes open another: DuckDB
    # gives its memory back when its database closes, so the worker's peak is that of the reads, or of
    # the models, not their sum (the name and fingerprint are small beside the cohort, and a
    # connection of its own costs a database opening).
    with programme_connection(warehouse) as con:
        name = programme_name(con, programme_id)
        inputs = fingerprint(context, con, settings)
        extra_columns = analysed_people_extra(settings)
        people = read_cohort(con, settings, programme_id, extra=extra_columns)
    # The later steps' columns are kept aside: the models get the frame they always did.
    extra = {name: people.pop(name) for name in extra_columns}
    result = evaluate_effects(
        programme_id, people, None, matching_spec(settings),
        windows=settings.follow_up.windows_months, headline_window=settings.follow_up.headline_months,
        min_treated=settings.diagnostics.min_participants,
    )
    n_treated, n_people = int(people["treated"].sum()), len(people)
    # The people's columns the later steps read, framed without copying; the rest (the outcomes) let go.
    shared = (analysed_people(programme_id, people, extra, result.matched_sets, settings)
              if result.status == "ok" else None)
    del people, extra
    context.log.info(f"{programme_id}: {result.status}; {n_treated} participants analysed of {n_people}")
    if result.status == "not_estimated":
        with programme_connection(warehouse) as con:
            result.message = unanalysed_reason(con, programme_id) or result.message
    with partition_writer(settings) as con:
        frames = {"programmes_analysed": pd.DataFrame({
            "programme_id": [programme_id], "name": [name], "status": [result.status],
            "message": [result.message], "n_treated_analysed": [n_treated],
            "n_comparison_pool": [n_people - n_treated],
        })}
        frames |= {table: with_programme(getattr(result, table), programme_id) for table in EFFECT_TABLES[1:]}
        write_partition(con, settings, programme_id, EFFECT_TABLES, frames)
        # Written last and tied to the inputs: a later step finding it missing or from other inputs stops.
        write_partition(con, settings, programme_id, (ANALYSED_PEOPLE_FILE,), {ANALYSED_PEOPLE_FILE: shared}, inputs)
    del shared
    balance = frames["balance"]
    after = balance.loc[balance["stage"] == "after", "smd"].abs() if not balance.empty else pd.Series(dtype=float)
    return dg.MaterializeResult(metadata={
        "status": result.status,
        "participants analysed": n_treated,
        "max |SMD| after matching": dg.MetadataValue.float(float(after.max())) if after.notna().any() else "none",
        "input_fingerprint": inputs,
    })


@dg.asset(
    key=PROGRAMME_SURVIVAL,
    deps=[PROGRAMME_EFFECTS, dg.AssetKey(["analysis", "survival"])],
    partitions_def=PROGRAMMES,
    group_name=PROGRAMME_GROUP,
    kinds={"duckdb", "python"},
    description="One programme's Kaplan–Meier curves, log-rank, Cox models, PH tests and RMST.",
)
def programme_survival(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    settings = warehouse.settings
    programme_id = context.partition_key
    # The read's connection is closed before the models run, so DuckDB's memory is given back first.
    with programme_connection(warehouse) as con:
        inputs = fingerprint(context, con, settings)
        analysed = read_partition(con, settings, "programmes_analysed", programme_id)
        estimated = bool((analysed["status"] == "ok").all())
        if estimated:
            cohort = read_survival_cohort(con, programme_id, analysed_people_file(settings, programme_id, inputs))
    frames = {}
    if estimated:
        result = evaluate_survival(
            programme_id, cohort[cohort["weight"] > 0], cohort, matching_spec(settings),
            horizon_days=settings.survival.rmst_horizon_days, horizons=settings.survival.horizons_days,
        )
        del cohort
        context.log.info(f"{programme_id}: matched hazard ratio {result.cox.loc[0, 'hr']:.3f}")
        frames = {table: with_programme(getattr(result, table), programme_id) for table in SURVIVAL_TABLES}
    else:
        context.log.info(f"{programme_id}: not estimated, so no survival analysis")
    with partition_writer(settings) as con:
        write_partition(con, settings, programme_id, SURVIVAL_TABLES, frames)
    return dg.MaterializeResult(metadata={"estimated": estimated, "input_fingerprint": inputs})
