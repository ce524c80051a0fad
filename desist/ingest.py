"""Ingest: landing files -> raw (every row, as text) -> staging (typed) or quarantine.

Every data row of every landing file ends in exactly one place:

- ``staging.<table>``: the row typed by the data contract (``desist.contract``), or
- ``quarantine.rows`` (stage ``'ingest'``): the row with its file, row number, raw values
  and a reason code from :data:`REASONS`, or
- nowhere, because its whole file was rejected (a direct-identifier column, a missing
  required column, not UTF-8, unreadable); the file's rows are counted as rejected.

So for every file in ``raw.ingest_summary``:
``rows_loaded + rows_quarantined + rows_rejected = rows_read``, and for a CSV file the rows
read are reconciled with its physical lines (``desist.lines``):
``lines = header_lines + blank_lines + continued_lines + rows_read``. A line with a stray quote
or too long to read is one malformed row of its own; a file whose records still disagree with
its lines is rejected whole.

Row numbers (``source_row``) count data records from 1: the header is not counted, a quoted
value spanning several lines is one record, and blank lines are skipped. In a spreadsheet the
record is on row ``source_row + 1``.

Runs are incremental and repeatable. Files are fingerprinted (sha256) in ``raw.files``; an
unchanged file is not read again (unless its raw table no longer holds every row it read: then
it is read again, action ``'reloaded'``), a changed file replaces the rows it loaded before (in
one transaction per file), and a file gone from the landing folder has its rows removed (status
``'removed'``). A .csv/.parquet file whose name starts with no table name is reported with
status ``'ignored'``, and so is every data file in a subfolder of the landing folder (only the
folder itself is read, so an archive kept below it is not loaded twice); other files
(README.md, ground_truth.json) are skipped. Staging, the
ingest-stage quarantine rows and the summary are rebuilt from raw in one transaction on every
run, so a second run over the same files changes no row of any table, and rows that data
validation put in quarantine (stage ``'validation'``) are left alone until their file changes
or goes.

The per-table SQL in sql/raw/<table>.sql and sql/staging/<table>.sql is generated from the
contract by ``python -m desist.ingest``; edit the contract, then regenerate. When evaluation.yaml
adjusts the contract (``contract:``: column names, value maps, allowed values, extra columns),
the same statements are generated from the adjusted tables at run time.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import itertools
import json
import re
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from desist import lines
from desist.contract import DIRECT_IDENTIFIERS, NAME_ALLOWED, TABLES, Column, Table
from desist.warehouse import SQL_DIR, literal, quoted, run_sql

# Why a row was quarantined. The first problem of a row is its reason; all are in its detail.
REASONS: dict[str, str] = {
    "malformed_row": "the row has a different number of fields from the header",
    "missing_key": "a key column is empty",
    "missing_value": "a required column is empty",
    "bad_date": "not a date written yyyy-mm-dd",
    "bad_integer": "not a whole number",
    "bad_number": "not a finite number",
    "bad_boolean": "not one of true/false, yes/no, 1/0",
    "out_of_domain": "not one of the values the contract allows",
    "out_of_range": "outside the range the contract allows",
    "duplicate_key": "the same key was loaded before (by file name, then row); the first is kept",
}

# Status of a landing file in raw.files and raw.ingest_summary.
STATUSES = ("loaded", "rejected", "ignored", "removed")

DATA_FORMATS = {".csv": "csv", ".parquet": "parquet"}
_SENTINEL_NULL = "\x01"  # no CSV field holds it: empty fields stay '', padding stays NULL
_EXTRA_FIELD = "c_extra"  # catches the first field beyond the header


# ---------------------------------------------------------------- landing files

def normalise_column(name: str) -> str:
    """A header name as the contract spells it: lower case, runs of other characters -> '_'."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def match_table(file_name: str) -> str | None:
    """The table a landing file feeds: the longest table name its name starts with."""
    name = file_name.lower()
    matches = [table for table in TABLES if name.startswith(table)]
    return max(matches, key=len) if matches else None


def fingerprint(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass(frozen=True)
class LandingFile:
    path: Path
    table: str | None  # None: the name starts with no table name
    format: str | None  # "csv" / "parquet"; None: not a data file type
    sha256: str
    size_bytes: int
    name: str  # relative to the landing folder: "people.csv", "2023/people.csv"

    @property
    def in_subfolder(self) -> bool:
        return "/" in self.name


def _candidates(landing: Path) -> Iterator[tuple[Path, str, str | None, str | None]]:
    """(path, name relative to the landing folder, table, format) of every file that is data or named like data."""
    landing = Path(landing)
    if not landing.is_dir():
        raise FileNotFoundError(f"landing folder not found: {landing}")
    for path in sorted(landing.rglob("*")):
        relative = path.relative_to(landing)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        table = match_table(path.name)
        fmt = DATA_FORMATS.get(path.suffix.lower())
        if table is not None or fmt is not None:
            yield path, relative.as_posix(), table, fmt


def discover(landing: Path) -> list[LandingFile]:
    """Files in the landing folder and its subfolders that are data or are named like data.

    Hidden files and folders are skipped, and so are files that neither end in .csv/.parquet
    nor start with a table name (README.md, ground_truth.json). Everything else gets a summary
    row; files in subfolders are listed there as ignored.
    """
    found = list(_candidates(landing))
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="desist-sha256") as pool:  # hashlib frees the GIL
        digests = list(pool.map(fingerprint, [path for path, *_ in found]))
    return [LandingFile(path, table, fmt, digest, path.stat().st_size, name)
            for (path, name, table, fmt), digest in zip(found, digests, strict=True)]


def check_landing(landing: Path) -> None:
    """Stop before a run when the landing folder is missing or holds no file for any table."""
    found = list(_candidates(landing))
    if not any(table and fmt and "/" not in name for _, name, table, fmt in found):
        names = f" (only: {', '.join(name for _, name, _, _ in found[:5])})" if found else ""
        raise ValueError(f"{landing}: the landing folder holds no data file{names}; expected files named "
                         f"<table>*.csv or <table>*.parquet for the tables {', '.join(TABLES)}")


# ---------------------------------------------------------------- reading one file

def map_columns(table: Table, header: list[str], file_name: str) -> tuple[dict[str, int], list[str], list[str]]:
    """Match a file header to the contract: (contract column -> header position, notes, problems)."""
    positions: dict[str, int] = {}
    notes: list[str] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    extras: list[str] = []
    # evaluation.yaml may give a column the extract's own name (contract: ... from:)
    by_header = {normalise_column(c.header_name): c.name for c in table.columns}
    for position, original in enumerate(header):
        name = normalise_column(original)
        if not name:
            extras.append(f"unnamed column {position + 1}")
            continue
        if name in seen:
            problems.append(f"columns {seen[name]!r} and {original!r} are both read as {name!r}")
            continue
        seen[name] = original
        if name in DIRECT_IDENTIFIERS and not (name == "name" and table.name in NAME_ALLOWED):
            problems.append(
                f"column {original!r} is a direct identifier; only pseudonymous data is accepted, "
                "so the whole file is rejected (remove the column and send the file again)"
            )
        elif name in by_header:
            positions[by_header[name]] = position
        else:
            extras.append(repr(original))
    missing = [c for c in table.columns if c.name not in positions]
    required_missing = [c.header_name for c in missing if c.required]
    optional_missing = [c.header_name for c in missing if not c.required]
    if required_missing:
        hint = " (is the file comma-separated?)" if len(header) == 1 else ""
        problems.append(f"required column(s) missing: {', '.join(required_missing)}{hint}")
    if extras:
        notes.append(f"extra column(s) ignored: {', '.join(extras)}")
    if optional_missing:
        notes.append(f"optional column(s) absent, loaded as empty: {', '.join(optional_missing)}")
    return positions, notes, [f"{file_name}: {problem}" for problem in problems]


def _csv_header(path: Path) -> list[str] | None:
    """The header's fields; a header that is not UTF-8 is refused before this is read for loading."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        return next(csv.reader(handle), None)


def _csv_source(field_count: int) -> str:
    """read_csv over a file whose header has `field_count` fields, every value as text.

    Fields are read by position (c1, c2, ...) plus one more: a row with too many fields fills
    it, a row with too few is padded with NULL (empty fields read as ''), so every row is
    read and a wrong field count is visible. One thread keeps file order for row numbers.
    """
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(1, field_count + 1))
    return (
        f"read_csv($path, columns={{{columns}, '{_EXTRA_FIELD}': 'VARCHAR'}}, auto_detect=false, "
        "header=true, delim=',', quote='\"', escape='\"', null_padding=true, strict_mode=false, "
        f"nullstr=$null, parallel=false, encoding='utf-8', max_line_size={lines.MAX_LINE_BYTES + 2})"
    )


@dataclass(frozen=True)
class FileLoad:
    status: str  # "loaded" or "rejected"
    rows_read: int
    reason: str
    line_plan: lines.LinePlan | None = None  # a CSV file's physical lines


def _csv_lines(path: Path) -> tuple[list[str] | None, lines.LinePlan]:
    """The header and how the file's physical lines become records (a UTF-16 file's lines are counted decoded)."""
    header = _csv_header(path)
    if lines.is_utf16(path):
        return header, lines.utf16_plan(path)
    return header, lines.plan(path, lines.scan(path), len(header or []))


def _load_csv(con, file: LandingFile, table: Table, loaded_at: dt.datetime,
              line_plan: Future | None = None) -> FileLoad:
    header, plan = line_plan.result() if line_plan is not None else _csv_lines(file.path)
    if header is None:
        return FileLoad("rejected", 0, f"{file.name}: the file is empty (no header row)", plan)
    encoding = lines.encoding_problem(file.path)
    if encoding:
        return FileLoad("rejected", plan.records, f"{file.name}: {encoding}; save it as UTF-8 and send it again", plan)
    positions, notes, problems = map_columns(table, header, file.name)
    if problems:
        return FileLoad("rejected", plan.records, "; ".join(problems), plan)
    if not plan.bad:
        rows = _insert_csv(con, file, file.path, table, header, positions, loaded_at)
    else:
        with tempfile.TemporaryDirectory(prefix="desist-") as folder:
            copy = Path(folder) / "reader.csv"
            lines.write_reader_copy(file.path, plan.bad, copy)
            rows = _insert_csv(con, file, copy, table, header, positions, loaded_at)
        _record_bad_lines(con, file, table, positions, plan)
        notes.append(f"{len(plan.bad)} line(s) read alone as malformed rows: "
                     + ", ".join(f"line {bad.line} {bad.reason}" for bad in plan.bad[:3])
                     + (", ..." if len(plan.bad) > 3 else ""))
    if rows != plan.records:
        con.execute(f"DELETE FROM raw.{table.name} WHERE source_file = ?", [file.name])
        return FileLoad("rejected", plan.records, (
            f"{file.name}: {rows:,} records were read but its {plan.lines:,} lines hold {plan.records:,} "
            f"(after {plan.header_lines} header, {plan.blank:,} blank and {plan.continued:,} continued lines); "
            "check its quotes and line endings"), plan)
    return FileLoad("loaded", rows, "; ".join(notes), plan)


def _insert_csv(con, file: LandingFile, path: Path, table: Table, header: list[str], positions: dict[str, int],
                loaded_at: dt.datetime) -> int:
    params = {"path": str(path), "null": _SENTINEL_NULL}
    last, n = f"c{len(header)}", len(header)
    values = [f"c{positions[c.name] + 1}" if c.name in positions else "NULL" for c in table.columns]
    statement = (
        f"INSERT INTO raw.{table.name} SELECT {', '.join(values)}, $file AS source_file, "
        "row_number() OVER () AS source_row, "
        f"CASE WHEN {last} IS NULL THEN 'the row has fewer fields than the header ({n})' "
        f"WHEN {_EXTRA_FIELD} IS NOT NULL THEN 'the row has more fields than the header ({n})' "
        f"END AS row_error, $loaded_at AS loaded_at FROM {_csv_source(n)}"
    )
    return con.execute(statement, {**params, "file": file.name, "loaded_at": loaded_at}).fetchone()[0]


def _record_bad_lines(con, file: LandingFile, table: Table, positions: dict[str, int], plan: lines.LinePlan) -> None:
    """The rows read from the placeholders of bad lines get the line's values and why it is malformed."""
    records = []
    for bad in plan.bad:
        fields = lines.bad_line_fields(file.path, bad)
        values = {name: (fields[p] if fields and p < len(fields) else None) for name, p in positions.items()}
        records.append({"source_row": plan.source_row(bad.line),
                        "row_error": f"line {bad.line} {bad.reason}; read alone as one malformed row", **values})
    frame = pd.DataFrame(records, columns=["source_row", "row_error", *positions]).astype(object)
    assignments = ", ".join(f"{quoted(c)} = bad.{quoted(c)}" for c in ["row_error", *positions])
    con.register("bad_lines", frame)
    try:
        con.execute(f"UPDATE raw.{table.name} AS r SET {assignments} FROM bad_lines AS bad "
                    "WHERE r.source_file = ? AND r.source_row = bad.source_row", [file.name])
    finally:
        con.unregister("bad_lines")


def _unreadable(con, file: LandingFile, error: duckdb.Error) -> FileLoad:
    """A file DuckDB could not read, rejected whole; its rows are counted when they can be."""
    message = str(error)
    first_line = message.strip().splitlines()[0]
    if file.format != "csv":
        return FileLoad("rejected", 0, f"{file.name}: the file could not be read ({first_line})")
    _, plan = _csv_lines(file.path)
    bad = lines.first_non_utf8(file.path) if "unicode" in message.lower() else None
    if bad:
        line, value = bad
        return FileLoad("rejected", plan.records,
                        f"{file.name}: the file is not UTF-8: line {line} has {lines.byte_words(value)}, so it "
                        "looks Latin-1 encoded; save it as UTF-8 and send it again", plan)
    return FileLoad("rejected", plan.records, f"{file.name}: the file could not be read ({first_line})", plan)


def _load_parquet(con, file: LandingFile, table: Table, loaded_at: dt.datetime) -> FileLoad:
    schema = con.execute("DESCRIBE SELECT * FROM read_parquet($path)", {"path": str(file.path)}).fetchall()
    header = [row[0] for row in schema]
    types = {row[0]: row[1] for row in schema}
    positions, notes, problems = map_columns(table, header, file.name)
    source = "read_parquet($path, file_row_number=true)"
    if problems:
        rows = con.execute(f"SELECT count(*) FROM {source}", {"path": str(file.path)}).fetchone()[0]
        return FileLoad("rejected", rows, "; ".join(problems))
    values = []
    for column in table.columns:
        if column.name not in positions:
            values.append("NULL")
            continue
        original = header[positions[column.name]]
        values.append(_parquet_text(quoted(original), types[original], column))
    statement = (
        f"INSERT INTO raw.{table.name} SELECT {', '.join(values)}, $file AS source_file, "
        f"file_row_number + 1 AS source_row, NULL AS row_error, $loaded_at AS loaded_at FROM {source}"
    )
    rows = con.execute(statement, {"path": str(file.path), "file": file.name, "loaded_at": loaded_at}).fetchone()[0]
    return FileLoad("loaded", rows, "; ".join(notes))


def _parquet_text(column_sql: str, parquet_type: str, column: Column) -> str:
    """A Parquet column as the text a CSV would carry.

    Timestamps at midnight in a date column become the date (pandas writes dates that way);
    any other time of day stays visible and is quarantined as bad_date.
    """
    if column.type == "date" and parquet_type.startswith("TIMESTAMP"):
        return (f"CASE WHEN {column_sql} = date_trunc('day', {column_sql}) "
                f"THEN CAST({column_sql} AS DATE)::VARCHAR ELSE {column_sql}::VARCHAR END")
    return f"{column_sql}::VARCHAR"


# ---------------------------------------------------------------- raw layer

@dataclass(frozen=True)
class FileOutcome:
    """What one run did with one landing file."""

    file_name: str
    table_name: str | None
    action: str  # "new", "changed", "unchanged", "reloaded" (unchanged, but raw had lost its rows) or "removed"
    status: str  # one of STATUSES
    rows_read: int
    reason: str


@dataclass(frozen=True)
class RawLoad:
    files: list[FileOutcome]

    def count(self, attribute: str) -> dict[str, int]:
        return dict(Counter(getattr(outcome, attribute) for outcome in self.files))


@dataclass(frozen=True)
class _Recorded:
    """A landing file as raw.files last saw it."""

    table_name: str | None
    sha256: str
    status: str
    rows_read: int
    reason: str | None


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """All or nothing: a failure leaves the warehouse as it was before."""
    con.begin()
    try:
        yield
    except BaseException:
        con.rollback()
        raise
    con.commit()


def create_tables(con: duckdb.DuckDBPyConnection, tables: Mapping[str, Table] = TABLES) -> None:
    """raw.files, raw.<table> and quarantine.rows, when they do not exist yet.

    A raw table read under other column mappings (evaluation.yaml ``contract:`` changed) is
    dropped with its files' records, so the next load reads those files again.
    """
    run_sql(con, "raw/files.sql")
    run_sql(con, "staging/quarantine_rows.sql")
    con.execute("CREATE TABLE IF NOT EXISTS raw.column_mappings (table_name VARCHAR PRIMARY KEY, "
                "columns VARCHAR NOT NULL)")
    for table in tables.values():
        mapping = _column_mapping(table)
        recorded = con.execute("SELECT columns FROM raw.column_mappings WHERE table_name = ?",
                               [table.name]).fetchone()
        if (recorded[0] if recorded else _column_mapping(TABLES[table.name])) != mapping:
            with _transaction(con):
                con.execute(f"DROP TABLE IF EXISTS raw.{table.name}")
                con.execute("DELETE FROM quarantine.rows WHERE table_name = ?", [table.name])
                con.execute("DELETE FROM raw.files WHERE table_name = ?", [table.name])
        _run_table_sql(con, "raw", table)
        con.execute("INSERT OR REPLACE INTO raw.column_mappings VALUES (?, ?)", [table.name, mapping])


def _column_mapping(table: Table) -> str:
    """What a raw table's rows depend on: its columns and the header names they are read from."""
    return json.dumps([[c.name, c.header_name] for c in table.columns])


def _run_table_sql(con, layer: str, table: Table) -> None:
    """Run sql/<layer>/<table>.sql, or the same statement generated for an adjusted contract."""
    if table == TABLES[table.name]:
        run_sql(con, f"{layer}/{table.name}.sql")
    else:
        con.execute(raw_table_sql(table) if layer == "raw" else staging_sql(table))


def load_raw(con: duckdb.DuckDBPyConnection, landing: Path, tables: Mapping[str, Table] = TABLES) -> RawLoad:
    """Bring raw up to date with the landing folder.

    Each file is replaced in its own transaction (its old rows, its new rows and its raw.files
    row together), so a run that stops half-way leaves every file either done or as it was,
    and the next run carries on from there. The CSV reader runs on one thread (to keep row
    numbers), so the files are read on two connections at once: the files of one table on the
    same connection, one after another in name order, so every raw table holds its rows in the
    order it did when files were read one by one.
    """
    create_tables(con, tables)
    loaded_at = dt.datetime.now(dt.timezone.utc)
    previous = {
        row[0]: _Recorded(*row[1:])
        for row in con.execute(
            "SELECT file_name, table_name, sha256, status, rows_read, reason FROM raw.files"
        ).fetchall()
    }
    held = _rows_held(con, tables)
    current = discover(Path(landing))
    to_read = [file for file in current if not _unchanged(file, previous.get(file.name), held)]
    queues = _queues(to_read, READERS)
    loads: dict[str, FileLoad] = {}
    # A CSV file's physical lines are counted (NumPy, on another core) while DuckDB reads the one before;
    # they are counted in the order the readers need them.
    lines_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="desist-lines")
    readers = ThreadPoolExecutor(max_workers=len(queues) or 1, thread_name_prefix="desist-read")
    try:
        in_need_order = [file for step in itertools.zip_longest(*queues) for file in step if file is not None]
        line_plans = {file.name: lines_pool.submit(_csv_lines, file.path) for file in in_need_order
                      if _read_as_csv(file)}

        def read(queue: list[LandingFile]) -> None:
            with con.cursor() as reader:
                reader.execute("SET enable_progress_bar = false")  # a new connection starts with DuckDB's defaults
                for file in queue:
                    loads[file.name] = _replace_file(reader, file, previous.get(file.name), loaded_at, tables,
                                                     line_plans.get(file.name))

        for done in [readers.submit(read, queue) for queue in queues]:
            done.result()
    finally:
        readers.shutdown(cancel_futures=True)
        lines_pool.shutdown(cancel_futures=True)
    outcomes = []
    for file in current:
        before = previous.get(file.name)
        if file.name not in loads:
            outcomes.append(FileOutcome(file.name, file.table, "unchanged", before.status, before.rows_read,
                                        before.reason or ""))
            continue
        outcome = loads[file.name]
        known = before is not None and before.status != "removed"
        action = "reloaded" if known and before.sha256 == file.sha256 else "changed" if known else "new"
        outcomes.append(FileOutcome(file.name, file.table, action, outcome.status, outcome.rows_read, outcome.reason))
    present = {file.name for file in current}
    for name, before in previous.items():
        if name not in present and before.status != "removed":
            outcomes.append(_remove_file(con, name, before, loaded_at))
    return RawLoad(outcomes)


READERS = 2  # connections reading landing files at once: the machine's two cores


def _queues(files: list[LandingFile], readers: int) -> list[list[LandingFile]]:
    """The files split between `readers` connections: each table's files on one, largest tables first to
    the least loaded, so the largest table is read while the others are."""
    by_table: dict[str | None, list[LandingFile]] = {}
    for file in files:
        by_table.setdefault(file.table, []).append(file)
    queues: list[list[LandingFile]] = [[] for _ in range(min(readers, len(by_table)))]
    sizes = [0] * len(queues)
    for group in sorted(by_table.values(), key=lambda group: -sum(file.size_bytes for file in group)):
        least = sizes.index(min(sizes))
        queues[least].extend(group)
        sizes[least] += sum(file.size_bytes for file in group)
    return queues


def _unchanged(file: LandingFile, before: _Recorded | None, held: Mapping[str, int]) -> bool:
    """The file is as raw.files last recorded it, and raw still holds every row it loaded."""
    return (before is not None and before.status != "removed" and before.sha256 == file.sha256
            and held.get(file.name, 0) == (before.rows_read if before.status == "loaded" else 0))


def _read_as_csv(file: LandingFile) -> bool:
    return file.format == "csv" and file.table is not None and not file.in_subfolder


def _rows_held(con, tables: Mapping[str, Table]) -> dict[str, int]:
    """Rows each file has in its raw table: a file is skipped as unchanged only if they are all still there."""
    held: dict[str, int] = {}
    for table in tables.values():
        held.update(con.execute(f"SELECT source_file, count(*) FROM raw.{table.name} GROUP BY source_file").fetchall())
    return held


def _replace_file(con, file: LandingFile, before: _Recorded | None, loaded_at: dt.datetime,
                  tables: Mapping[str, Table], line_plan: Future | None = None) -> FileLoad:
    try:
        with _transaction(con):
            _forget_rows(con, file.name, before)
            outcome = _load_file(con, file, loaded_at, tables, line_plan)
            _record_file(con, file, outcome, loaded_at)
    except duckdb.Error as error:  # rolled back: nothing of the file was kept
        outcome = _unreadable(con, file, error)
        with _transaction(con):
            _forget_rows(con, file.name, before)
            _record_file(con, file, outcome, loaded_at)
    return outcome


def _remove_file(con, name: str, before: _Recorded, loaded_at: dt.datetime) -> FileOutcome:
    with _transaction(con):
        removed = _forget_rows(con, name, before)
        reason = f"{name} is no longer in the landing folder"
        if before.status == "loaded":
            reason += f": its {removed} rows were removed from raw.{before.table_name}, staging and quarantine"
        con.execute(
            "UPDATE raw.files SET status = 'removed', reason = ?, rows_read = 0, rows_rejected = 0, "
            "loaded_at = ? WHERE file_name = ?",
            [reason, loaded_at, name],
        )
    return FileOutcome(name, before.table_name, "removed", "removed", 0, reason)


def _forget_rows(con, name: str, before: _Recorded | None) -> int:
    """Delete the raw rows a file loaded before, and their quarantine entries; how many raw rows there were.

    Ingest-stage entries are rebuilt from raw anyway; validation-stage ones would otherwise
    outlive the file.
    """
    if before is None or before.table_name is None:
        return 0
    con.execute("DELETE FROM quarantine.rows WHERE source_file = ?", [name])
    return con.execute(f"DELETE FROM raw.{before.table_name} WHERE source_file = ?", [name]).fetchone()[0]


def _load_file(con, file: LandingFile, loaded_at: dt.datetime, tables: Mapping[str, Table],
               line_plan: Future | None = None) -> FileLoad:
    if file.in_subfolder:
        return FileLoad("ignored", 0, f"{file.name}: in a subfolder of the landing folder, which is not read "
                                      "(move the file up into the landing folder to load it)")
    if file.table is None:
        names = ", ".join(TABLES)
        return FileLoad("ignored", 0, f"{file.name}: the name starts with no table name ({names})")
    if file.format is None:
        return FileLoad("ignored", 0, f"{file.name}: not a .csv or .parquet file")
    if file.format == "csv":
        return _load_csv(con, file, tables[file.table], loaded_at, line_plan)
    return _load_parquet(con, file, tables[file.table], loaded_at)


def _record_file(con, file: LandingFile, outcome: FileLoad, loaded_at: dt.datetime) -> None:
    rejected = outcome.rows_read if outcome.status == "rejected" else 0
    plan = outcome.line_plan
    counts = [plan.lines, plan.header_lines, plan.blank, plan.continued] if plan else [None] * 4
    con.execute("DELETE FROM raw.files WHERE file_name = ?", [file.name])
    con.execute(
        "INSERT INTO raw.files (file_name, file_path, table_name, file_format, sha256, size_bytes, status, reason, "
        "rows_read, rows_rejected, loaded_at, lines, header_lines, blank_lines, continued_lines) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [file.name, str(file.path), file.table, file.format, file.sha256, file.size_bytes, outcome.status,
         outcome.reason or None, outcome.rows_read, rejected, loaded_at, *counts],
    )


# ---------------------------------------------------------------- staging and quarantine

@dataclass(frozen=True)
class TableCounts:
    rows_read: int
    rows_loaded: int
    rows_quarantined: int


def build_staging(con: duckdb.DuckDBPyConnection, tables: Mapping[str, Table] = TABLES) -> dict[str, TableCounts]:
    """Rebuild staging.<table>, the ingest-stage quarantine rows and raw.ingest_summary, in one transaction."""
    create_tables(con, tables)
    with _transaction(con):
        return _build_staging(con, tables)


def _build_staging(con, tables: Mapping[str, Table]) -> dict[str, TableCounts]:
    for table in tables.values():
        _run_table_sql(con, "staging", table)
    run_sql(con, "raw/ingest_summary.sql")
    rows = con.execute(
        "SELECT table_name, sum(rows_read), sum(rows_loaded), sum(rows_quarantined) "
        "FROM raw.ingest_summary WHERE status = 'loaded' GROUP BY table_name"
    ).fetchall()
    counts = {name: TableCounts(int(read), int(loaded), int(quarantined)) for name, read, loaded, quarantined in rows}
    return {table: counts.get(table, TableCounts(0, 0, 0)) for table in TABLES}


@dataclass(frozen=True)
class IngestReport:
    raw: RawLoad
    tables: dict[str, TableCounts]


def ingest(con: duckdb.DuckDBPyConnection, landing: Path, tables: Mapping[str, Table] = TABLES) -> IngestReport:
    """Landing folder -> raw -> staging and quarantine -> summary."""
    return IngestReport(load_raw(con, landing, tables), build_staging(con, tables))


# ---------------------------------------------------------------- SQL generated from the contract

_GENERATED = "-- Generated from desist/contract.py by `python -m desist.ingest`: edit the contract, not this file.\n"
_BAD_TYPE = {"date": "bad_date", "integer": "bad_integer", "number": "bad_number", "boolean": "bad_boolean"}
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")
_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"


def _in_list(values) -> str:
    return ", ".join(literal(v) for v in values)


def _one_of(expression: str, values) -> str:
    """SQL true when the non-NULL `expression` is one of `values` (false for NULL: callers test NULL first).

    Not `IN (...)` or list_contains: DuckDB plans those, for more than a few values, as a join
    that gives up the rows' order, so staging was not stored in raw's (file and row) order and
    validation had to sort every column back into it."""
    return f"list_position([{_in_list(values)}], {expression}) IS NOT NULL"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _storage(table: Table, column: Column) -> str:
    """How DuckDB stores the column: a key of its own holds a different value in (nearly) every row, which
    its dictionary compression shrinks for more CPU than any other column (at a million people, writing
    offence_id uncompressed takes 1.3 s less CPU in raw and 1.1 s less in staging, for 50 MB more each)."""
    return " USING COMPRESSION uncompressed" if table.key == (column.name,) else ""


def raw_table_sql(table: Table) -> str:
    columns = "".join(f"    {c.name} VARCHAR{_storage(table, c)},\n" for c in table.columns)
    return (
        f"-- raw.{table.name}: every row of every {table.name} landing file, as text.\n"
        "-- source_row counts data records from 1 (the header is not counted); row_error says why a\n"
        "-- row's field count differs from its header's (such rows are quarantined as malformed_row).\n"
        + _GENERATED
        + f"CREATE TABLE IF NOT EXISTS raw.{table.name} (\n{columns}"
        "    source_file VARCHAR NOT NULL,\n    source_row BIGINT NOT NULL,\n    row_error VARCHAR,\n"
        "    loaded_at TIMESTAMPTZ NOT NULL\n);\n"
    )


def _typed(column: Column) -> str:
    """SQL turning the trimmed text v_<column> into the contract type; NULL when it cannot."""
    v = f"v_{column.name}"
    if column.type in ("id", "text"):
        if not column.domain:
            return v
        if all(value == value.lower() for value in column.domain):
            return f"lower({v})"
        # allowed values set in evaluation.yaml keep their spelling; matched regardless of case
        whens = " ".join(f"WHEN {literal(value.lower())} THEN {literal(value)}" for value in column.domain)
        return f"coalesce(CASE lower({v}) {whens} END, {v})"
    if column.type == "date":
        # yyyy-mm-dd in ASCII digits; GLOB's character classes test it for less than a regular expression
        return f"CASE WHEN {v} GLOB '{_DATE_GLOB}' THEN TRY_CAST({v} AS DATE) END"
    if column.type == "integer":
        # TRY_CAST alone would round '3.5' to 4; a whole number may be written 3 or 3.0. Plain digits (nearly
        # every value) are told apart by GLOB, for a quarter of what the regular expression costs.
        return (f"CASE WHEN NOT {v} GLOB '*[!0-9]*' THEN TRY_CAST({v} AS BIGINT) "
                f"WHEN regexp_full_match({v}, '[+-]?[0-9]+(\\.0*)?') "
                f"THEN TRY_CAST(regexp_replace({v}, '\\.0*$', '') AS BIGINT) END")
    if column.type == "number":
        # TRY_CAST alone would accept '1_000' and 'nan'.
        return (f"CASE WHEN regexp_full_match({v}, '[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?') "
                f"AND isfinite(TRY_CAST({v} AS DOUBLE)) THEN TRY_CAST({v} AS DOUBLE) END")
    if column.type == "boolean":
        return (f"CASE WHEN lower({v}) IN ({_in_list(_TRUE)}) THEN true "
                f"WHEN lower({v}) IN ({_in_list(_FALSE)}) THEN false END")
    raise ValueError(f"contract column {column.name!r} has unknown type {column.type!r}")


def _problem(column: str | None, reason: str, raw_value: str, note: str) -> str:
    name = literal(column) if column else "NULL::VARCHAR"
    return f"{{'column_name': {name}, 'reason': '{reason}', 'raw_value': {raw_value}, 'note': {note}}}"


def _column_check(table: Table, column: Column) -> str:
    """A CASE giving the first problem of one column, or NULL."""
    v, t, raw = f"v_{column.name}", f"t_{column.name}", column.name
    branches = []
    if column.required:
        reason = "missing_key" if column.name in table.key else "missing_value"
        branches.append((f"{v} IS NULL", _problem(column.name, reason, raw, literal("the value is empty"))))
    else:
        branches.append((f"{v} IS NULL", "NULL"))
    if column.type in _BAD_TYPE:
        expected = {"date": "a date written yyyy-mm-dd", "integer": "a whole number", "number": "a finite number",
                    "boolean": "true/false, yes/no or 1/0"}[column.type]
        branches.append((f"{t} IS NULL", _problem(column.name, _BAD_TYPE[column.type], raw,
                                                   literal(f"expected {expected}"))))
    if column.domain:
        branches.append((f"NOT ({_one_of(t, column.domain)})",
                         _problem(column.name, "out_of_domain", raw,
                                  literal(f"expected one of {', '.join(column.domain)}"))))
    if column.minimum is not None or column.maximum is not None:
        low = f"{t} < {_number(column.minimum)}" if column.minimum is not None else None
        high = f"{t} > {_number(column.maximum)}" if column.maximum is not None else None
        bounds = f"{_number(column.minimum) if column.minimum is not None else '-inf'} to " \
                 f"{_number(column.maximum) if column.maximum is not None else 'inf'}"
        branches.append((" OR ".join(b for b in (low, high) if b),
                         _problem(column.name, "out_of_range", raw, literal(f"expected {bounds}"))))
    whens = "".join(f"\n                WHEN {condition} THEN {result}" for condition, result in branches)
    return f"            CASE{whens}\n            END"


def _column_ok(column: Column) -> str:
    """SQL true when the column's value passes every check of :func:`_column_check`."""
    v, t = f"v_{column.name}", f"t_{column.name}"
    checks = [f"{t} IS NOT NULL"]
    if column.domain:
        checks.append(_one_of(t, column.domain))
    if column.minimum is not None:
        checks.append(f"{t} >= {_number(column.minimum)}")
    if column.maximum is not None:
        checks.append(f"{t} <= {_number(column.maximum)}")
    passes = " AND ".join(checks)
    return passes if column.required else f"({v} IS NULL OR ({passes}))"


def _trimmed(column: Column) -> str:
    """The trimmed text of a raw column, '' as NULL, with evaluation.yaml's value map applied (any case).

    trim() removes Unicode space separators: in ASCII only ' '. So a value that neither starts nor
    ends with a space and is all ASCII (strlen counts bytes, length characters) is its own trimmed
    text; only the others are trimmed, which spares copying nearly every value (trim() was most of
    the typing's CPU time)."""
    c = column.name
    text = (f"CASE WHEN {c} LIKE ' %' OR {c} LIKE '% ' OR strlen({c}) <> length({c}) "
            f"THEN NULLIF(trim({c}), '') ELSE NULLIF({c}, '') END")
    if not column.value_map:
        return text
    whens = " ".join(f"WHEN {literal(code.lower())} THEN {literal(value)}" for code, value in column.value_map)
    return f"coalesce(CASE lower({text}) {whens} END, {text})"


def _typed_ctes(table: Table, source: str) -> str:
    """CTEs `trimmed` (v_<column>: trimmed text, '' as NULL) and `typed` (t_<column>) over `source`."""
    trimmed = ",\n".join(f"        {_trimmed(c)} AS v_{c.name}" for c in table.columns)
    typed = ",\n".join(f"        {_typed(c)} AS t_{c.name}" for c in table.columns)
    return f"""trimmed AS (
    SELECT
        *,
{trimmed}
    FROM {source}
), typed AS (
    SELECT
        *,
{typed}
    FROM trimmed
)"""


def staging_sql(table: Table) -> str:
    """staging.<table> and its ingest-stage quarantine rows, rebuilt from raw.<table>.

    Staging keeps the rows that pass every check, the first of each key by (source_file,
    source_row). Quarantine takes every raw row staging did not keep (so none can be lost)
    and works out why: its problems, or the duplicate key it repeats.

    Staging is written straight from one scan of raw, in raw's row order; repeated keys are
    then found by counting keys and removed, so only the rows of a key that repeats are ever
    ranked (ranking every row sorted and spilled the whole table for keys that rarely repeat).
    """
    name = table.name
    ok = "\n    AND ".join(_column_ok(c) for c in table.columns)
    checks = ",\n".join(_column_check(table, c) for c in table.columns)
    key_join = " AND ".join(f"kept.{k} = checked.t_{k}" for k in table.key)
    key_raw = " || ',' || ".join(f"checked.{k}" for k in table.key)
    duplicate = _problem(",".join(table.key), "duplicate_key", key_raw,
                         "'key already loaded from ' || kept.source_file || ' row ' || kept.source_row")
    malformed = _problem(None, "malformed_row", "NULL::VARCHAR", "row_error")
    staged = ",\n".join(f"    t_{c.name}::{c.duckdb_type} AS {c.name}" for c in table.columns)
    columns = "".join(f"    {c.name} {c.duckdb_type}{_storage(table, c)},\n" for c in table.columns)
    key_plain = ", ".join(table.key)
    key_ranked = ", ".join(f"s.{k}" for k in table.key)
    record = ", ".join(f"'{c.name}': {c.name}" for c in table.columns)
    return f"""\
-- staging.{name}: rows of raw.{name} typed by the contract. A row that cannot be typed, or
-- repeats a key already loaded (by source_file, then source_row), goes to quarantine.rows
-- instead, with its first problem as reason and column and every problem in detail.
{_GENERATED}CREATE OR REPLACE TABLE staging.{name} (
{columns}    source_file VARCHAR,
    source_row BIGINT
);

INSERT INTO staging.{name}
WITH {_typed_ctes(table, f"raw.{name}")}
SELECT
{staged},
    source_file,
    source_row
FROM typed
WHERE row_error IS NULL
    AND {ok};

-- A key loaded again keeps its first row (by source_file, then source_row); the later ones go
-- to quarantine below. Repeats are found by sorting the keys' 64-bit hashes (grouping the keys
-- themselves builds a hash table of millions of texts); only the rows whose hash repeats are
-- then ranked by the key itself, so a hash collision ranks a few rows and changes nothing.
DELETE FROM staging.{name} AS t
USING (
    SELECT s.source_file, s.source_row
    FROM staging.{name} AS s
    SEMI JOIN (
        SELECT key_hash
        FROM (SELECT hash({key_plain}) AS key_hash FROM staging.{name})
        QUALIFY key_hash = lag(key_hash) OVER (ORDER BY key_hash)
    ) AS repeated ON hash({key_ranked}) = repeated.key_hash
    QUALIFY row_number() OVER (PARTITION BY {key_ranked} ORDER BY s.source_file, s.source_row) > 1
) AS repeats
WHERE t.source_file = repeats.source_file AND t.source_row = repeats.source_row;

DELETE FROM quarantine.rows WHERE stage = 'ingest' AND table_name = '{name}';

INSERT INTO quarantine.rows
WITH counts AS (
    -- staging is a subset of raw: as many rows in both, and no row is left to quarantine
    SELECT (SELECT count(*) FROM raw.{name}) <> (SELECT count(*) FROM staging.{name}) AS any_unstaged
), unstaged AS (
    SELECT r.*
    FROM raw.{name} AS r
    ANTI JOIN (SELECT source_file, source_row FROM staging.{name} WHERE (SELECT any_unstaged FROM counts)) AS s
        USING (source_file, source_row)
    WHERE (SELECT any_unstaged FROM counts)
), {_typed_ctes(table, "unstaged")}, checked AS (
    SELECT
        *,
        CASE WHEN row_error IS NOT NULL THEN [{malformed}]
        ELSE list_filter([
{checks}
        ], lambda p: p IS NOT NULL) END AS found
    FROM typed
), explained AS (
    SELECT
        checked.*,
        CASE WHEN len(found) > 0 THEN found ELSE [{duplicate}] END AS problems
    FROM checked
    LEFT JOIN staging.{name} AS kept ON len(checked.found) = 0 AND {key_join}
)
SELECT
    '{name}' AS table_name,
    source_file,
    source_row,
    problems[1].column_name,
    problems[1].raw_value,
    problems[1].reason,
    array_to_string(list_transform(problems, lambda p: concat_ws(' ',
        p.column_name || ':', p.reason, '''' || p.raw_value || '''', '(' || p.note || ')')), '; ') AS detail,
    to_json({{{record}, 'source_file': source_file, 'source_row': source_row}})::VARCHAR AS raw_record,
    'ingest' AS stage,
    loaded_at AS quarantined_at
FROM explained
ORDER BY source_file, source_row;
"""


def summary_sql() -> str:
    staged = "\n    UNION ALL ".join(
        f"SELECT '{t}' AS table_name, source_file, count(*) AS n FROM staging.{t} GROUP BY source_file"
        for t in TABLES
    )
    return f"""\
-- raw.ingest_summary: one row per landing file: what was read, loaded, quarantined and rejected.
-- For every file rows_loaded + rows_quarantined + rows_rejected = rows_read; a rejected file's
-- rows are all rejected, an ignored or removed file has no rows. sha256 is NULL for a removed file.
-- A CSV file's physical lines: lines = header_lines + blank_lines + continued_lines + rows_read.
{_GENERATED}CREATE OR REPLACE TABLE raw.ingest_summary AS
WITH staged AS (
    {staged}
), by_reason AS (
    SELECT table_name, source_file, reason, count(*) AS n
    FROM quarantine.rows
    WHERE stage = 'ingest'
    GROUP BY ALL
), quarantined AS (
    SELECT table_name, source_file, sum(n)::BIGINT AS n, string_agg(reason || ' ' || n, ', ' ORDER BY reason) AS reasons
    FROM by_reason
    GROUP BY ALL
)
SELECT
    f.table_name,
    f.file_name,
    CASE WHEN f.status <> 'removed' THEN f.sha256 END AS sha256,
    f.status,
    f.rows_read,
    coalesce(s.n, 0) AS rows_loaded,
    coalesce(q.n, 0) AS rows_quarantined,
    f.rows_rejected,
    f.lines,
    f.header_lines,
    f.blank_lines,
    f.continued_lines,
    NULLIF(concat_ws('; ', f.reason, 'quarantined: ' || q.reasons), '') AS reason
FROM raw.files AS f
LEFT JOIN staged AS s ON s.table_name = f.table_name AND s.source_file = f.file_name
LEFT JOIN quarantined AS q ON q.table_name = f.table_name AND q.source_file = f.file_name
ORDER BY f.table_name NULLS LAST, f.file_name;
"""


def generated_sql() -> dict[Path, str]:
    """Every generated SQL file, by path."""
    files = {SQL_DIR / "raw" / "ingest_summary.sql": summary_sql()}
    for table in TABLES.values():
        files[SQL_DIR / "raw" / f"{table.name}.sql"] = raw_table_sql(table)
        files[SQL_DIR / "staging" / f"{table.name}.sql"] = staging_sql(table)
    return files


def write_sql() -> list[Path]:
    written = []
    for path, text in generated_sql().items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


if __name__ == "__main__":
    for path in write_sql():
        print(f"wrote {path}")
