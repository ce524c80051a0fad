"""`desist check`: what an extract would produce, before any model runs.

Reads the landing folder into a throw-away database (never the warehouse) with the run's own
ingest and analysis SQL, and reports:

- per file: the contract columns found (and the extract's name for them), those missing, the
  declared extra columns found and the unknown columns a run would ignore;
- per table: the share of rows ingest would quarantine, values outside the allowed sets with
  counts and a suggested value map, and references that do not resolve;
- per programme: the participants and comparison people with complete follow-up and every
  complete-case covariate, whether the minimum of 60 participants is met, the covariates the
  design checks would drop, and, when nobody can be analysed, the reason a run would give.

It exits non-zero when a run would estimate nothing. Great Expectations' row rules (dates,
order, plausibility) run only in a real run, so a few more rows may be quarantined there.
"""
from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from desist import analysis, ingest, warehouse
from desist.config import Paths, Settings
from desist.contract import Table
from models.evaluation import MatchingSpec, model_frame, prepare_covariates

# The Justice Data Lab minimum of participants for any estimate (models.effects applies it).
MIN_PARTICIPANTS = 60


@dataclass
class CheckReport:
    lines: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # one line per programme that cannot be estimated
    estimable: list[str] = field(default_factory=list)  # programmes that meet the minimum

    @property
    def ok(self) -> bool:
        return bool(self.estimable)

    def text(self) -> str:
        return "\n".join(self.lines)


def check(settings: Settings) -> CheckReport:
    """Run the pre-flight checks of ``settings`` in a temporary database."""
    report = CheckReport()
    with tempfile.TemporaryDirectory(prefix="desist-check-") as folder:
        paths = Paths(**{**settings.paths.model_dump(), "warehouse": Path(folder) / "check.duckdb"})
        scratch = settings.model_copy(update={"paths": paths})
        con = warehouse.connect(scratch)
        try:
            tables = settings.tables
            _files(report, settings.paths.landing, tables, con)
            ingest.ingest(con, settings.paths.landing, tables)
            _tables(report, con, tables)
            _out_of_domain(report, con, tables)
            _references(report, con, tables)
            _programmes(report, con, settings)
        finally:
            con.close()
    return report


def _header(con: duckdb.DuckDBPyConnection, file: ingest.LandingFile) -> list[str]:
    if file.format == "parquet":
        return [row[0] for row in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(file.path)]).fetchall()]
    with file.path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        return next(csv.reader(handle), [])


def _files(report: CheckReport, landing: Path, tables: dict[str, Table], con: duckdb.DuckDBPyConnection) -> None:
    report.lines.append(f"Files in {landing}:")
    files = ingest.discover(landing)
    for file in files:
        if file.table is None or file.format is None:
            report.lines.append(f"  {file.name}: ignored (not a .csv/.parquet file named after a table)")
            continue
        table = tables[file.table]
        header = _header(con, file)
        by_header = {ingest.normalise_column(c.header_name): c for c in table.columns}
        present = {by_header[ingest.normalise_column(h)].name: h for h in header
                   if ingest.normalise_column(h) in by_header}
        found = [name if present[name] == name else f"{name} (from {present[name]})"
                 for name in table.column_names if name in present and not table.column(name).extra]
        extra = [name for name in table.column_names if name in present and table.column(name).extra]
        missing_required = [c.header_name for c in table.columns if c.name not in present and c.required]
        missing_optional = [c.header_name for c in table.columns if c.name not in present and not c.required]
        unknown = [h for h in header if ingest.normalise_column(h) not in by_header]
        report.lines.append(f"  {file.name} -> {file.table}")
        report.lines.append(f"    found: {', '.join(found) or '(none)'}")
        if extra:
            report.lines.append(f"    extra (declared in settings): {', '.join(extra)}")
        if missing_required:
            report.lines.append(f"    MISSING required: {', '.join(missing_required)} (the file would be rejected; "
                                "map the extract's name with contract: columns: <column>: {from: <name>})")
        if missing_optional:
            report.lines.append(f"    missing optional (loaded as empty): {', '.join(missing_optional)}")
        if unknown:
            report.lines.append(f"    unknown (ignored; declare them as extra_columns to use them): "
                                f"{', '.join(unknown)}")
    absent = [name for name in tables if not any(f.table == name for f in files)]
    if absent:
        report.lines.append(f"  no file for: {', '.join(absent)}")


def _tables(report: CheckReport, con: duckdb.DuckDBPyConnection, tables: dict[str, Table]) -> None:
    report.lines.append("Tables (ingest checks: types, allowed values, ranges, keys):")
    summary = con.execute(
        "SELECT table_name, sum(rows_read), sum(rows_loaded), sum(rows_quarantined), sum(rows_rejected) "
        "FROM raw.ingest_summary WHERE table_name IS NOT NULL GROUP BY table_name").fetchall()
    counts = {row[0]: row[1:] for row in summary}
    reasons = dict(con.execute(
        "SELECT table_name, string_agg(reason || ' ' || n, ', ' ORDER BY n DESC) FROM ("
        "SELECT table_name, reason, count(*) AS n FROM quarantine.rows GROUP BY ALL) GROUP BY table_name"
    ).fetchall())
    for name in tables:
        read, loaded, quarantined, rejected = counts.get(name, (0, 0, 0, 0))
        if not read:
            report.lines.append(f"  {name}: no rows")
            continue
        share = (quarantined + rejected) / read
        detail = f" ({reasons[name]})" if name in reasons else ""
        rejected_text = f", {rejected} in rejected files" if rejected else ""
        report.lines.append(f"  {name}: {read} rows read, {loaded} loaded, {quarantined} quarantined{detail}"
                            f"{rejected_text}: {share:.1%} would be quarantined or rejected")


def suggest(value: str, allowed: tuple[str, ...]) -> str | None:
    """The allowed value a code most likely stands for: equal but for case, or the only one it begins."""
    text = value.strip().lower()
    if not text:
        return None
    same = [a for a in allowed if a.lower() == text]
    starts = [a for a in allowed if a.lower().startswith(text)]
    matches = same or starts
    return matches[0] if len(matches) == 1 else None


def _out_of_domain(report: CheckReport, con: duckdb.DuckDBPyConnection, tables: dict[str, Table]) -> None:
    """Every value outside a column's allowed set (after the value map), counted in raw: a row
    quarantined for another column first is still counted here."""
    lines = []
    for name, table in tables.items():
        typed = ingest._typed_ctes(table, f"raw.{name}")
        for column in table.columns:
            if not column.domain:
                continue
            allowed = ", ".join(warehouse.literal(v) for v in column.domain)
            rows = con.execute(
                f"WITH {typed} SELECT {column.name}, count(*) AS n FROM typed WHERE row_error IS NULL "
                f"AND v_{column.name} IS NOT NULL AND t_{column.name} NOT IN ({allowed}) "
                f"GROUP BY ALL ORDER BY n DESC, 1").fetchall()
            if not rows:
                continue
            values = ", ".join(f"{v!r} ({n})" for v, n in rows)
            lines.append(f"  {name}.{column.name}: {values}; allowed: {', '.join(column.domain)}")
            pairs = ", ".join(f"{v}: {suggest(v, column.domain) or '?'}" for v, _ in rows)
            lines.append(f"    suggested value map: contract: {{{name}: {{columns: {{{column.name}: "
                         f"{{values: {{{pairs}}}}}}}}}}}  (or replace the allowed values: {{allowed: [...]}})")
    if lines:
        report.lines.append("Values outside the allowed sets:")
        report.lines.extend(lines)


def _references(report: CheckReport, con: duckdb.DuckDBPyConnection, tables: dict[str, Table]) -> None:
    problems = []
    for name, table in tables.items():
        for column, (target, key) in table.references.items():
            unresolved, total = con.execute(
                f"SELECT count(*) FILTER (WHERE t.{column} IS NOT NULL AND r.{key} IS NULL), "
                f"count(t.{column}) FROM staging.{name} AS t "
                f"LEFT JOIN (SELECT DISTINCT {key} FROM staging.{target}) AS r ON r.{key} = t.{column}").fetchone()
            if unresolved:
                problems.append(f"  {name}.{column} not found in {target}.{key} for {unresolved} of {total} rows")
    if problems:
        report.lines.append("References that do not resolve (a run quarantines these rows, or stops):")
        report.lines.extend(problems)


def _programmes(report: CheckReport, con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    try:
        analysis.build_analysis(con)
    except ValueError as error:
        report.reasons.append(f"every programme: {error}")
        report.lines.append(f"Programmes: not analysable: {error}")
        return
    covariates = settings.covariates
    spec = MatchingSpec(covariates=covariates.all, categorical=covariates.categorical,
                        missing_indicator=covariates.missing_indicator)
    report.lines.append(f"Programmes (complete {settings.follow_up.headline_months}-month follow-up and every "
                        "complete-case covariate):")
    analysed = con.execute(
        "SELECT p.programme_id, "
        "coalesce(max(a.people) FILTER (WHERE a.cohort_group = 'participants' AND a.step = 'analysed'), 0), "
        "coalesce(max(a.people) FILTER (WHERE a.cohort_group = 'comparison' AND a.step = 'analysed'), 0) "
        "FROM staging.programmes AS p LEFT JOIN analysis.attrition AS a USING (programme_id) "
        "GROUP BY p.programme_id ORDER BY p.programme_id").fetchall()
    for programme_id, participants, comparison in analysed:
        met = participants >= MIN_PARTICIPANTS and comparison > 0
        verdict = "meets" if met else "does not meet"
        report.lines.append(f"  {programme_id}: {participants} participants, {comparison} comparison people; "
                            f"{verdict} the minimum of {MIN_PARTICIPANTS} participants")
        reason = analysis.unanalysed_reason(con, programme_id)
        if met:
            report.estimable.append(programme_id)
            people = con.execute(analysis.ANALYSED_PEOPLE, {"programme_id": programme_id}).df()
            _, _, notes = prepare_covariates(model_frame(people, spec), spec)
            report.lines.extend(f"    {note}" for note in notes)
        elif reason:
            report.reasons.append(reason)
        else:
            report.reasons.append(f"{programme_id}: {participants} participants analysed, fewer than the "
                                  f"{MIN_PARTICIPANTS} an estimate needs")
    if not analysed:
        report.reasons.append("no programme: the programmes file has no rows")
