"""Publish the researcher database: a new DuckDB file built beside the old one and swapped in atomically.

Researchers may hold the published file open read-only at any time. The run never writes
to that file: it builds ``<name>.building`` from the warehouse, documents every table, view
and column with ``COMMENT ON``, and renames it over the published path. A reader keeps
the old file (the inode it opened) until it reconnects, then sees the new data.

With ``publish: {person_level: false}`` the file holds aggregates only: the catalogue's
person-level tables (and the views that read them) are left out, and every aggregate table
passes the reports' disclosure control (``reports.disclosure.disclose_research_tables``):
suppressed cells are NULL. ``run_info.person_level`` records which kind of file it is.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from desist.config import PROJECT_ROOT
from desist.contract import COVARIATE_TABLES
from desist.warehouse import by_index_view, literal

CATALOGUE = PROJECT_ROOT / "sql" / "published" / "catalogue.yaml"
DATA_DICTIONARY = PROJECT_ROOT / "docs" / "data-dictionary.md"
BUILD_ALIAS = "research_build"


@dataclass(frozen=True)
class PublishedObject:
    name: str
    kind: str  # "table" or "view"
    description: str
    columns: dict[str, str]
    sql: str  # a SELECT: tables read the warehouse, views read published tables
    person_level: bool = False  # one row per person, or built from such rows: only in person-level files


def load_catalogue(path: Path = CATALOGUE) -> list[PublishedObject]:
    """Every published table and view in publishing order, with its documentation and query."""
    entries = yaml.safe_load(path.read_text())
    objects = []
    for name, entry in entries.items():
        kind = entry.get("kind", "table")
        if "by_index" in entry:
            sql = by_index_view("cohort", entry["by_index"])
        else:
            sql = (path.parent / ("views" if kind == "view" else "tables") / f"{name}.sql").read_text()
        objects.append(PublishedObject(
            name=name, kind=kind, description=entry["description"].strip(),
            columns={col: text.strip() for col, text in entry["columns"].items()},
            sql=sql.strip().rstrip(";"),
            person_level=bool(entry.get("person_level", False)),
        ))
    return objects


# The published characteristics: the table stored once per person and index date, and the view giving
# it to every programme (its ``by_index.*`` carries whatever columns the table has).
CHARACTERISTICS = ("covariates_by_index", "covariates")


def with_extra_columns(obj: PublishedObject, columns: dict[str, str]) -> PublishedObject:
    """A published table of analysis.covariates_by_index, or the view on it, with more of its columns, documented.

    The table reads the extra columns in the same scan as its own (its query ends with ``FROM
    analysis.covariates_by_index``): joining the table back to itself would hash every person a second time.
    """
    if obj.kind == "view":
        return dataclasses.replace(obj, columns={**obj.columns, **columns})
    source = "FROM analysis.covariates_by_index"
    if not obj.sql.endswith(source):
        raise ValueError(f"published table '{obj.name}' must end with '{source}' to take the extract's own columns")
    extra = ", ".join(columns)
    return dataclasses.replace(
        obj, columns={**obj.columns, **columns}, sql=f"{obj.sql.removesuffix(source)}, {extra}\n{source}")


def extra_covariate_columns(tables) -> dict[str, str]:
    """The extract's own index_events and people columns (evaluation.yaml contract), with their meaning."""
    return {
        column.name: column.description or (
            f"{column.type} column of the extract's {name} file"
            + (f" ({column.source})" if column.source else "")
            + f", declared in evaluation.yaml contract.{name}.extra_columns")
        for name in COVARIATE_TABLES for column in tables[name].columns if column.extra
    }


def publish(
    con: duckdb.DuckDBPyConnection,
    research_path: Path,
    parquet_dir: Path | None = None,
    catalogue: Path = CATALOGUE,
    extra_covariates: dict[str, str] | None = None,
    person_level: bool = True,
    min_count: int = 10,
) -> dict[str, int]:
    """Build the researcher database from the warehouse open on `con`, then swap it in (``build``, ``swap_in``).

    Returns the row count of every published table.
    """
    counts = build(con, research_path, parquet_dir, catalogue, extra_covariates, person_level, min_count)
    swap_in(research_path, parquet_dir)
    return counts


def building_path(path: Path) -> Path:
    """Where the next researcher database (or its Parquet folder) is built before it is swapped in."""
    path = Path(path)
    return path.with_name(path.name + ".building")


def build(
    con: duckdb.DuckDBPyConnection,
    research_path: Path,
    parquet_dir: Path | None = None,
    catalogue: Path = CATALOGUE,
    extra_covariates: dict[str, str] | None = None,
    person_level: bool = True,
    min_count: int = 10,
    being_written: Sequence[str] = (),
    written: Callable[[str], None] = lambda name: None,
) -> dict[str, int]:
    """Build the researcher database beside the published one (``building_path``) from the warehouse open on
    `con`, which may be read-only, and its Parquet copies beside `parquet_dir`. Nothing published changes.

    ``extra_covariates`` (column -> meaning) are the extract's own columns declared in
    evaluation.yaml: they are published and documented in ``covariates_by_index`` and the ``covariates``
    view after their own columns.
    `person_level` False publishes aggregates only, with counts and estimates under disclosure
    control at `min_count`. Returns the row count of every published table.

    ``being_written``: what steps running meanwhile still write, warehouse schemas or tables (``results``,
    ``results.indicators``), in the order those steps finish; ``written(name)`` returns once the step writing
    `name` is done. A table is copied, and written as Parquet, once nothing it reads is still being written:
    first the person-level tables (most of the rows to copy), then the others as the steps finish.
    Aggregates under disclosure control are copied together, once every step is done.
    """
    research_path = Path(research_path)
    research_path.parent.mkdir(parents=True, exist_ok=True)
    discard_build(research_path, parquet_dir)
    objects = [with_extra_columns(obj, extra_covariates) if obj.name in CHARACTERISTICS and extra_covariates else obj
               for obj in load_catalogue(catalogue) if person_level or not obj.person_level]
    tables = [obj for obj in objects if obj.kind == "table"]
    pending = list(being_written)
    first = [obj for obj in tables if obj.person_level and not reads_any(obj, pending)]
    rest = [obj for obj in tables if obj not in first]
    parquet = None
    if parquet_dir is not None:
        parquet = building_path(parquet_dir)
        parquet.mkdir(parents=True)  # empty: discard_build removed what an earlier build left there
    con.execute("SET VARIABLE publish_person_level = ?", [person_level])
    con.execute(f"ATTACH {literal(str(building_path(research_path)))} AS {BUILD_ALIAS} (READ_WRITE)")
    try:
        _copy(con, first, parquet)
        if person_level:
            while pending:  # what no step still running writes, then wait for the next step
                ready = [obj for obj in rest if not reads_any(obj, pending)]
                _copy(con, ready, parquet)
                rest = [obj for obj in rest if obj not in ready]
                written(pending.pop(0))
            _copy(con, rest, parquet)
        else:
            for name in pending:
                written(name)
            _copy(con, rest, parquet, disclosed=min_count)
        home = con.execute("SELECT current_database()").fetchone()[0]
        con.execute(f"USE {BUILD_ALIAS}")
        try:
            # Views are created from inside the new file so their table references stay
            # unqualified and resolve in whatever file name the researcher opens.
            for obj in objects:
                if obj.kind == "view":
                    con.execute(f"CREATE VIEW {obj.name} AS {obj.sql}")
        finally:
            con.execute(f"USE {home}")
        _document(con, objects)
        # Tables only: counting a view would run it (the person-level views join millions of rows).
        counts = dict(con.execute(" UNION ALL ".join(
            f"SELECT {literal(obj.name)}, count(*) FROM {BUILD_ALIAS}.main.{obj.name}" for obj in tables)).fetchall())
    finally:
        con.execute(f"DETACH {BUILD_ALIAS}")
    return counts


def swap_in(research_path: Path, parquet_dir: Path | None = None) -> None:
    """Publish what ``build`` left beside the published database and Parquet folder: each is swapped in whole."""
    if parquet_dir is not None:
        parquet_dir = Path(parquet_dir)
        old = parquet_dir.with_name(parquet_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if parquet_dir.exists():
            parquet_dir.rename(old)
        building_path(parquet_dir).rename(parquet_dir)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(building_path(research_path), research_path)


def discard_build(research_path: Path, parquet_dir: Path | None = None) -> None:
    """Remove what an unfinished or unpublished build left; the published files stay as they are."""
    building = building_path(research_path)
    building.unlink(missing_ok=True)
    building.with_name(building.name + ".wal").unlink(missing_ok=True)
    if parquet_dir is not None:
        shutil.rmtree(building_path(parquet_dir), ignore_errors=True)


def _disclose_aggregates(con: duckdb.DuckDBPyConnection, names: list[str], min_count: int) -> None:
    """Rewrite the built tables under the reports' disclosure control; suppressed cells become NULL."""
    from reports.disclosure import SUPPRESSED, disclose_research_tables  # noqa: PLC0415 - reports imports desist

    frames = {name: con.sql(f"SELECT * FROM {BUILD_ALIAS}.main.{name}").df() for name in names}
    for name, shown in disclose_research_tables(frames, min_count).items():
        if shown is frames[name]:
            continue  # no counts of people: unchanged
        original = frames[name]
        shown = shown.copy()
        for column in shown.columns:
            kept = shown[column].where(shown[column].astype(str) != SUPPRESSED)
            numeric = pd.api.types.is_numeric_dtype(original[column]) or pd.api.types.is_bool_dtype(original[column])
            shown[column] = pd.to_numeric(kept, errors="coerce") if numeric and kept.dtype == object else kept
        target = f"{BUILD_ALIAS}.main.{name}"
        con.register("disclosed_rows", shown)
        try:
            con.execute(f"DELETE FROM {target}")
            con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM disclosed_rows")
        finally:
            con.unregister("disclosed_rows")


def _document(con: duckdb.DuckDBPyConnection, objects: list[PublishedObject]) -> None:
    """Check every built object's columns against its catalogue entry, then comment them all in one batch."""
    actual: dict[str, list[str]] = {}
    for name, column in con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = ? ORDER BY column_index",
        [BUILD_ALIAS],
    ).fetchall():
        actual.setdefault(name, []).append(column)
    statements = []
    for obj in objects:
        built = actual.get(obj.name, [])
        undocumented = [c for c in built if c not in obj.columns]
        missing = [c for c in obj.columns if c not in built]
        if undocumented or missing:
            raise ValueError(
                f"published {obj.kind} '{obj.name}' does not match its catalogue entry: "
                f"undocumented columns {undocumented}, documented but absent {missing}"
            )
        target = f"{BUILD_ALIAS}.main.{obj.name}"
        keyword = "VIEW" if obj.kind == "view" else "TABLE"
        statements.append(f"COMMENT ON {keyword} {target} IS {literal(obj.description)}")
        statements += [f"COMMENT ON COLUMN {target}.{column} IS {literal(text)}" for column, text in obj.columns.items()]
    # In one transaction: committed one by one, every comment would write the new file's catalogue again.
    con.begin()
    try:
        con.execute(";\n".join(statements))
    except BaseException:
        con.rollback()
        raise
    con.commit()


def reads_any(obj: PublishedObject, names: Collection[str]) -> bool:
    """Whether a published object's query reads one of ``names``: warehouse schemas or tables (``schema.table``)."""
    return any(table in names or table.split(".")[0] in names
               for table in duckdb.get_table_names(obj.sql, qualified=True) if "." in table)


def _copy(con: duckdb.DuckDBPyConnection, tables: list[PublishedObject], parquet: Path | None,
          disclosed: int | None = None) -> None:
    """Copy the tables into the build, under disclosure control at `disclosed` when given, then write them as
    Parquet to `parquet` when given."""
    # Copied in the warehouse's order, the order a researcher's SELECT * shows. Measured at 1,000,000 people:
    # copied unordered (preserve_insertion_order false) the tables take as much CPU and the file is a tenth
    # larger; the copies are compression-bound and use both cores nearly all the time.
    for obj in tables:
        con.execute(f"CREATE TABLE {BUILD_ALIAS}.main.{obj.name} AS {obj.sql}")
    if disclosed is not None:
        _disclose_aggregates(con, [obj.name for obj in tables], disclosed)
    if parquet is not None:
        _export_parquet(con, parquet, [obj.name for obj in tables])


def _export_parquet(con: duckdb.DuckDBPyConnection, folder: Path, tables: list[str]) -> None:
    """The built tables as Parquet, one file per table, in `folder`."""
    # The copies hold the tables' rows, not their order: each file is written by every thread at once
    # (set for this connection only: others may be reading the warehouse meanwhile).
    # A column with more than a thousand distinct values in a row group (person ids, dates, scores) is
    # written plain early instead of after a large dictionary was built and dropped: a fifth less CPU
    # for the person-level tables, and files no larger. Written from the warehouse instead, beside the copy on
    # a second cursor, or through pyarrow, they take at least as much CPU.
    con.execute("SET SESSION preserve_insertion_order = false")
    try:
        for table in tables:
            con.execute(f"COPY {BUILD_ALIAS}.main.{table} TO {literal(str(folder / f'{table}.parquet'))} "
                        "(FORMAT parquet, DICTIONARY_SIZE_LIMIT 1000)")
    finally:
        con.execute("RESET SESSION preserve_insertion_order")


def data_dictionary(research_path: Path, catalogue: Path = CATALOGUE) -> str:
    """Markdown data dictionary generated from the comments in a published database.

    Tables and views appear in the catalogue's publishing order (anything else after them, by name).
    """
    order = {obj.name: position for position, obj in enumerate(load_catalogue(catalogue))}
    with duckdb.connect(str(research_path), read_only=True) as con:
        objects = con.execute(
            "SELECT table_name, 'table' AS kind, comment FROM duckdb_tables() WHERE NOT internal "
            "UNION ALL SELECT view_name, 'view', comment FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
        columns = con.execute(
            "SELECT table_name, column_name, data_type, comment FROM duckdb_columns() WHERE NOT internal "
            "ORDER BY table_name, column_index"
        ).fetchall()
    objects.sort(key=lambda row: (order.get(row[0], len(order)), row[0]))
    lines = [
        "# Data dictionary of the researcher database",
        "",
        "Generated from the `COMMENT ON` documentation inside the published DuckDB file: "
        "regenerate it with `desist dictionary` after a run. How to open the file: docs/research.md.",
        "",
    ]
    for name, kind, comment in objects:
        lines += [f"## `{name}` ({kind})", "", comment or "", "", "| column | type | meaning |", "|---|---|---|"]
        lines += [f"| `{col}` | {dtype} | {_cell(text)} |" for table, col, dtype, text in columns if table == name]
        lines.append("")
    return "\n".join(lines)


def _cell(text: str | None) -> str:
    """Comment text that stays inside one Markdown table cell."""
    return (text or "").replace("|", "\\|").replace("\n", " ")


def write_data_dictionary(research_path: Path, out: Path = DATA_DICTIONARY) -> Path:
    """Write the data dictionary of the published database at `research_path` to `out`."""
    research_path = Path(research_path)
    if not research_path.exists():
        raise FileNotFoundError(f"no published database at {research_path}: run the pipeline first")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(data_dictionary(research_path))
    return out
