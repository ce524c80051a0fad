"""The funders' HTML reports: one self-contained page per programme and a portfolio index.

``load_report_data(con, settings)`` reads the results tables from the warehouse into plain
DataFrames; ``build_reports(data, out_dir)`` turns them into pages. The builder never touches
the database, so it can be exercised with hand-built frames.

Every page carries plotly.js once, inline: the basic bundle (scatter and bar charts) vendored
in ``reports/vendor`` with its licence and pinned version, which keeps each page small. Nothing
else comes from outside: no CDN, fonts, images or MathJax. Before anything is rendered or drawn,
all frames pass :func:`reports.disclosure.disclose`. A table that does not exist yet in the
warehouse leaves its section reading "not available".

>>> data = load_report_data(con, settings)          # doctest: +SKIP
>>> build_reports(data, settings.paths.reports)     # doctest: +SKIP
[PosixPath('.../index.html'), PosixPath('.../P01.html'), ...]
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import hashlib
import json
import math
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import jinja2
import numpy as np
import pandas as pd
import plotly.io as pio
from markupsafe import Markup

from desist.config import Settings
from models.indicators import CRITERION_INDICATORS
from reports import figures
from reports.disclosure import (
    PERCENTILE_COLUMNS, PROPORTION, SUPPRESSED, disclose, hide_differences, numeric, numeric_cell,
)

TEMPLATES = Path(__file__).parent / "templates"
# plotly.js basic bundle (npm package plotly.js-basic-dist-min, same version as the plotly package
# draws for); licence in reports/vendor/plotly.js-LICENSE.
PLOTLY_JS = Path(__file__).parent / "vendor" / "plotly-basic-4.1.1.min.js"
DATA_QUALITY_INDEX = "data-quality/index.html"  # where the Data Docs stand beside the pages

# Report table name -> where the pipeline writes it.
TABLE_SOURCES = {
    "programmes": "staging.programmes",
    "programmes_analysed": "results.programmes_analysed",
    "sample_sizes": "results.sample_sizes",
    "matched_sets": "results.matched_sets",
    "unmatched": "results.unmatched",
    "balance": "results.balance",
    "effects": "results.effects",
    "km_curves": "results.km_curves",
    "km_horizons": "results.km_horizons",
    "logrank": "results.logrank",
    "cox": "results.cox",
    "ph_tests": "results.ph_tests",
    "rmst": "results.rmst",
    "indicators": "results.indicators",
    "diagnostics": "results.diagnostics",
    "attrition": "analysis.attrition",
    "run_info": "results.run_info",
    "subgroup_effects": "results.subgroup_effects",
    "subgroup_heterogeneity": "results.subgroup_heterogeneity",
    "risk_model_card": "results.risk_model_card",
    "risk_performance": "results.risk_performance",
    "risk_calibration": "results.risk_calibration",
    "risk_fairness": "results.risk_fairness",
}

NOT_AVAILABLE = "not available"
MISSING = "—"
MINUS = "\u2212"

STATUS = {  # symbol and words, so status never rests on colour alone
    "met": ("✓", "Met"),
    "not_met": ("✗", "Not met"),
    "inconclusive": ("?", "Inconclusive"),
    "not_enough_data": ("–", "Not enough data"),
    "suppressed": ("", "No status: too few people to publish the estimate"),
}
# What a criterion's indicator compares (models.indicators IndicatorSpec.source), beside its status.
CRITERION_SCOPE = {
    "assessments": "change among participants — not compared with people who did not take part",
    "feedback": "views of people involved in the programme — not compared with people who did not take part",
}
GATE_NOTES = {  # the Justice Data Lab gates, as results.effects.gate_status names them
    # {min_participants}: the gate the effects were estimated with (diagnostics.min_participants)
    "too_few_treated": "not published: fewer than {min_participants} participants",
    "too_few_treated_reoffenders": "not published: fewer than 30 participants reoffended",
}
PROGRAMME_STATUS = {  # results.programmes_analysed.status other than ok, in words
    "not_estimated": "No estimate could be made: the programme had no analysable participants or no comparison pool.",
    "too_few_participants": "No reoffending estimate is published: too few participants could be analysed (see "
                            "How much can we trust this?).",
    "propensity_model_failed": "No estimate could be made: the model of who takes part could not be fitted to "
                               "these data.",
}
ESTIMATORS = {
    "matched": "Matched comparison",
    "naive": "Before matching (naive)",
    "adjusted": "Covariate-adjusted (full cohort)",
}
CHART_ESTIMATORS = {"matched": "matched", "naive": "before matching", "adjusted": "adjusted"}  # axis labels


@dataclass(frozen=True)
class Measure:
    label: str
    value_format: str       # how a group's value is shown: percent | number2 | days
    difference_format: str  # how the difference is shown: pp | number2 | days


MEASURES = {
    "reoffended": Measure("Proven reoffending rate", "percent", "pp"),
    "frequency": Measure("Proven reoffences per person", "number2", "number2"),
    "days_to_first": Measure("Days to first proven reoffence (reoffenders only)", "days", "days"),
    "custodial_reoffence": Measure("Reoffending that led to custody", "percent", "pp"),
}


@dataclass
class ReportData:
    """Everything a report shows: the settings and the results tables by name (see TABLE_SOURCES).

    A table missing from `tables` has not been produced; its sections read "not available".
    """

    settings: Settings
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Chart:
    id: str
    title: str
    alt: str            # the chart's message in words: aria-label and caption
    spec: Markup        # plotly figure JSON, safe inside <script>
    table: Table        # the numbers behind the chart


def load_report_data(con: duckdb.DuckDBPyConnection, settings: Settings) -> ReportData:
    """Read every table in TABLE_SOURCES that exists in the warehouse."""
    existing = {
        f"{schema}.{name}"
        for schema, name in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
        ).fetchall()
    }
    tables = {
        name: con.sql(f"SELECT * FROM {source}").df()
        for name, source in TABLE_SOURCES.items()
        if source in existing and name != "matched_sets"
    }
    if TABLE_SOURCES["matched_sets"] in existing:
        # The pages show the person-level matched sets only as score percentiles: worked out in
        # DuckDB rather than by reading millions of people into pandas.
        tables["propensity_overlap"] = propensity_percentiles(con.table(TABLE_SOURCES["matched_sets"]))
    return ReportData(settings=settings, tables=tables)


def missing_tables(data: ReportData) -> list[str]:
    """The tables of TABLE_SOURCES the warehouse did not hold (the matched sets are read as their percentiles)."""
    held = set(data.tables) | ({"matched_sets"} if "propensity_overlap" in data.tables else set())
    return sorted(set(TABLE_SOURCES) - held)


def build_reports(data: ReportData, out_dir: Path, folders: Mapping[str, Path] | None = None) -> list[Path]:
    """Write index.html and <programme>.html for every programme into `out_dir`; return their paths.

    Pages are written to a fresh folder that then replaces `out_dir`, so a failure leaves the
    previous reports whole and a programme that is no longer analysed leaves no stale page.
    `folders` (name -> source folder) are published beside the pages, replacing their old copy.
    """
    out_dir = Path(out_dir)
    with collection_paused():
        pages = render_pages(data, out_dir, folders)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the reports are meant to be read
    try:
        for name, page in pages.items():
            (staging / name).write_text(page, encoding="utf-8")
        # Folders other steps write here (the validation check's Data Docs) survive the swap, unless
        # a new copy of them is published now.
        replaced = {name: Path(source) for name, source in (folders or {}).items() if Path(source).is_dir()}
        for folder in (p for p in out_dir.iterdir() if p.is_dir()) if out_dir.exists() else ():
            if folder.name not in replaced:
                shutil.copytree(folder, staging / folder.name)
        for name, source in replaced.items():
            shutil.copytree(source, staging / name)
        replace_folder(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out_dir / name for name in pages]


def render_pages(data: ReportData, out_dir: Path, folders: Mapping[str, Path] | None) -> dict[str, str]:
    """Every page's HTML by file name."""
    min_count = data.settings.disclosure.min_count
    shown = disclose(display_tables(data.tables), min_count, data.settings.follow_up.headline_months)
    programmes = programme_list(shown)
    environment = template_environment()
    # The data-quality pages as they will stand beside these pages: published with them, or already there.
    quality_folder, quality_page = DATA_QUALITY_INDEX.split("/", 1)
    quality = Path((folders or {}).get(quality_folder, out_dir / quality_folder))
    common = {
        "plotlyjs": Markup(PLOTLY_JS.read_text(encoding="utf-8")),
        "plotly_template": plotly_template(),
        "min_count": min_count,
        "synthetic": is_synthetic(data.settings),
        "data_quality": DATA_QUALITY_INDEX if (quality / quality_page).exists() else None,
        "provenance": provenance(shown.get("run_info")),
        "built_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    pages = {"index.html": environment.get_template("index.html.j2").render(
        **common, **portfolio_context(programmes, shown, data.settings))}
    for programme in programmes.itertuples(index=False):
        pages[programme.file_name] = environment.get_template("programme.html.j2").render(
            **common, **programme_context(programme, shown, data.settings))
    if "risk_model_card" in shown:
        pages[for_whom.MODEL_CARD_PAGE] = environment.get_template("risk_model.html.j2").render(
            **common, **for_whom.model_card_context(shown))
    return pages


@contextlib.contextmanager
def collection_paused():
    """Python's cyclic garbage collector paused while pages are built. Building them allocates
    hundreds of thousands of short-lived containers, which set off collections, among them full
    ones that walk every object the process holds (~130,000 with pandas and plotly loaded, more
    under Dagster) for ~20 ms each. What the build leaves behind is freed by reference counting,
    or by the next collection after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def is_synthetic(settings: Settings) -> bool:
    """True when the landing folder holds an extract written by ``desist generate`` (it leaves its ground truth)."""
    return (Path(settings.paths.landing) / "ground_truth.json").exists()


def replace_folder(new: Path, target: Path) -> None:
    """Swap `new` in for `target` with two renames, removing the old folder afterwards."""
    old = target.with_name(f".{target.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def template_environment() -> jinja2.Environment:
    """The pages' Jinja environment. Compiled templates are kept in Jinja's cache folder for this
    user (keyed by each template's path and source), so a run after the first does not compile
    them again (~50 ms)."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=bytecode_cache(),
    )
    environment.globals["STATUS"] = STATUS
    environment.globals["DIAGNOSTIC_STATUS"] = DIAGNOSTIC_STATUS
    return environment


@functools.cache
def bytecode_cache() -> jinja2.BytecodeCache | None:
    """Jinja's per-user cache folder in the system temp folder; none when it cannot be made safely."""
    try:
        return jinja2.FileSystemBytecodeCache()
    except (RuntimeError, OSError):  # a temp folder Jinja does not own, or cannot create
        return None


# ---------------------------------------------------------------------------------------------
# From warehouse tables to the tables a report shows


def display_tables(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The tables as a report uses them.

    Person-level matched sets become score percentiles. A table with no rows (written when no
    programme produced any) counts as not available, except the unmatched list, where no rows
    means nobody was left unmatched.
    """
    shown = {name: frame for name, frame in tables.items() if name != "matched_sets" and not frame.empty}
    if "unmatched" in tables and tables["unmatched"].empty:
        shown["unmatched"] = pd.DataFrame({column: pd.Series(dtype=str)
                                           for column in ("programme_id", "person_id", "reason")})
    if "matched_sets" in tables and not tables["matched_sets"].empty:
        shown["propensity_overlap"] = propensity_percentiles(tables["matched_sets"])
    return shown


PROPENSITY_PERCENTILES = """
    WITH groups AS (  -- one pass: everyone analysed, and the matched sample (weight > 0) by FILTER
        SELECT
            programme_id,
            CASE WHEN treated THEN 'treated' ELSE 'comparison' END AS grp,
            quantile_cont(propensity, [0.05, 0.25, 0.5, 0.75, 0.95]) AS all_percentiles,
            count(*) AS all_n,
            quantile_cont(propensity, [0.05, 0.25, 0.5, 0.75, 0.95]) FILTER (WHERE weight > 0) AS matched_percentiles,
            count(*) FILTER (WHERE weight > 0) AS matched_n
        FROM matched_sets
        GROUP BY ALL
    )
    SELECT programme_id, grp, all_percentiles AS percentiles, all_n AS n, 'all' AS sample FROM groups
    UNION ALL
    SELECT programme_id, grp, matched_percentiles, matched_n, 'matched' FROM groups WHERE matched_n > 0
    ORDER BY sample, programme_id, grp
"""


def propensity_percentiles(matched_sets: pd.DataFrame | duckdb.DuckDBPyRelation) -> pd.DataFrame:
    """5th, 25th, 50th, 75th and 95th percentiles of the propensity score per programme and group,
    for everyone analysed ('all') and for the matched sample ('matched': weight > 0), interpolated
    linearly between order statistics (pandas' and numpy's default); ``matched_sets`` is a frame
    or a DuckDB relation."""
    if isinstance(matched_sets, duckdb.DuckDBPyRelation):
        rows = matched_sets.query("matched_sets", PROPENSITY_PERCENTILES).df()
    else:
        with duckdb.connect() as con:
            con.register("matched_sets", matched_sets)
            rows = con.sql(PROPENSITY_PERCENTILES).df()
    percentiles = pd.DataFrame(rows.pop("percentiles").tolist(), columns=list(PERCENTILE_COLUMNS), dtype=float)
    return pd.concat([rows[["programme_id", "grp"]], percentiles, rows[["n", "sample"]]], axis=1)


def programme_list(shown: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per programme: id, name, type, provider, analysis status and file name.

    Programmes come from results.programmes_analysed when it exists, else staging.programmes;
    names, types and providers missing from the first are taken from the second.
    """
    analysed, catalogue = shown.get("programmes_analysed"), shown.get("programmes")
    source = analysed if analysed is not None else catalogue
    if source is None:
        ids = sorted(shown["effects"]["programme_id"].unique()) if "effects" in shown else []
        source = pd.DataFrame({"programme_id": ids})
    programmes = pd.DataFrame({"programme_id": source["programme_id"].astype(str)})
    lookup = (catalogue.assign(programme_id=catalogue["programme_id"].astype(str)).set_index("programme_id")
              if catalogue is not None else pd.DataFrame())
    for column in ("name", "programme_type", "provider"):
        values = source[column] if column in source else pd.Series(None, index=source.index, dtype=object)
        if column in lookup:
            values = values.where(values.notna(), programmes["programme_id"].map(lookup[column]))
        programmes[column] = values.fillna("").astype(str)
    programmes["name"] = programmes["name"].where(programmes["name"] != "", programmes["programme_id"])
    programmes["status"] = source["status"].astype(str) if "status" in source else ""
    programmes["file_name"] = [page_file_name(pid) for pid in programmes["programme_id"]]
    return programmes.sort_values("programme_id").reset_index(drop=True)


def page_file_name(programme_id: str) -> str:
    """`<programme_id>.html` when the id is a plain file name, else a stable digest of it."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", programme_id) and programme_id not in ("index", "risk-model"):
        return f"{programme_id}.html"
    return f"programme-{hashlib.sha256(programme_id.encode()).hexdigest()[:12]}.html"


def rows_of(shown: dict[str, pd.DataFrame], name: str, programme_id: str) -> pd.DataFrame | None:
    """The programme's rows of a table, or None when the table has not been produced."""
    frame = shown.get(name)
    if frame is None:
        return None
    ids = frame["programme_id"]
    if pd.api.types.infer_dtype(ids, skipna=False) != "string":  # ids read as text, as the page names them
        ids = ids.astype(str)
    return frame.take(np.flatnonzero(ids.to_numpy() == programme_id)).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Formatting: every cell is a string; suppressed cells read "suppressed"


def missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def fmt(value: object, kind: str) -> str:
    """A value as text: count | percent (share 0..1) | pp (share difference) | number2 | days | p | ratio."""
    if isinstance(value, float):  # most cells (NumPy's float64 too): only NaN is missing
        return MISSING if math.isnan(value) else FORMATS[kind](float(value)).replace("-", MINUS)
    if isinstance(value, str) and value == SUPPRESSED:
        return SUPPRESSED
    if missing(value):
        return MISSING
    return FORMATS[kind](float(value)).replace("-", MINUS)


FORMATS = {  # fmt's kinds: a number as text
    "count": lambda number: f"{round(number):,}",
    "percent": lambda number: f"{number * 100:.1f}%",
    "pp": lambda number: f"{number * 100:+.1f} pp" if round(number * 100, 1) != 0 else "0.0 pp",
    "points": lambda number: f"{number * 100:.1f} pp",
    "number2": lambda number: f"{number:.2f}",
    "days": lambda number: f"{number:,.0f}",
    "ratio": lambda number: f"{number:.2f}",
    "p": lambda number: "<0.001" if number < 0.001 else f"{number:.3f}",
}


def p_text(value: object) -> str:
    """'p < 0.001' or 'p = 0.034': a p-value inside a sentence."""
    shown = fmt(value, "p")
    return f"p < {shown[1:]}" if shown.startswith("<") else f"p = {shown}"


def term(key: str, words: str) -> Markup:
    """`words` linked to their entry in the glossary at the foot of every page (templates/glossary.html.j2)."""
    return Markup('<a class="term" href="#glossary-{}">{}</a>').format(key, words)


def fmt_ci(lower: object, upper: object, kind: str) -> str:
    if SUPPRESSED in (lower, upper):
        return SUPPRESSED
    if missing(lower) or missing(upper):
        return MISSING
    return f"{fmt(lower, kind)} to {fmt(upper, kind)}"


def indicator_kind(unit: object) -> str:
    """How an indicator reads: percent (a share), pp (a difference of shares) or number."""
    unit = "" if missing(unit) else str(unit).strip().lower()
    if unit.startswith("difference in proportions"):
        return "pp"
    if unit == PROPORTION or unit.startswith("mean proportion"):
        return "percent"
    return "number"


def fmt_indicator(value: object, unit: object) -> str:
    return fmt(value, {"percent": "percent", "pp": "pp"}.get(indicator_kind(unit), "number2"))


def indicator_scale(unit: object) -> float:
    """Factor that puts an indicator on the scale it is drawn in (shares as percent)."""
    return {"percent": 100.0, "pp": 100.0}.get(indicator_kind(unit), 1.0)


def indicator_name(indicator: object, unit: object) -> str:
    """The indicator in words, with its unit when the number alone does not say it."""
    name = text(indicator).replace("_", " ")
    name = name[:1].upper() + name[1:]
    return f"{name} ({unit})" if indicator_kind(unit) == "number" and not missing(unit) else name


def covariate_label(term: str) -> str:
    """A balance term in words: 'distance' is MatchIt's name for the propensity score; 'region[london]' a level."""
    if term == "distance":
        return "Propensity score (logit)"
    words = re.sub(r"\[(.*)\]$", r": \1", term).replace("_", " ")
    return words[:1].upper() + words[1:]


def text(value: object) -> str:
    return MISSING if missing(value) else str(value)


# ---------------------------------------------------------------------------------------------
# Charts


def chart(chart_id: str, title: str, figure: figures.Figure, alt: str, table: Table) -> Chart:
    """A figure for a page. Its layout leaves out the plotly template, which the page carries once
    (`plotly_template`, see charts.js), so each chart does not repeat it."""
    return Chart(id=chart_id, title=title, alt=alt, spec=script_json(figures.to_json(figure)), table=table)


@functools.cache
def plotly_template() -> Markup:
    """The house plotly template (figures.TEMPLATE) as JSON for the page's one copy of it."""
    return script_json(json.dumps(pio.templates[figures.TEMPLATE].to_plotly_json(), separators=(",", ":")))


def script_json(json_text: str) -> Markup:
    """JSON that can sit inside a <script> element: <, > and & as \\u escapes, so no text in it
    (a programme named '</script>...') can close the element. Those characters occur in JSON only
    inside strings, where the escapes mean the same thing."""
    escaped = (json_text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
               .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return Markup(escaped)


# ---------------------------------------------------------------------------------------------
# The programme page


def programme_context(programme, shown: dict[str, pd.DataFrame], settings: Settings) -> dict:
    pid = programme.programme_id
    trust = diagnostics_section(rows_of(shown, "diagnostics", pid))
    # The hook that withholds an estimated programme's effects when a diagnostic failed.
    withheld = bool(trust and trust["withheld"]) and programme.status not in PROGRAMME_STATUS
    if withheld:
        shown = withhold_effects(shown, pid)
    effects = rows_of(shown, "effects", pid)
    card = scorecard(rows_of(shown, "indicators", pid))
    return {
        "programme": programme,
        "title": programme.name,
        "headline": WITHHELD_HEADLINE if withheld else headline(effects, settings, programme.status),
        "diagnostics": trust,
        "scorecard": card,
        "conclusions": conclusions(headline_row(effects, settings), card, settings.follow_up.headline_months),
        "reoffending": reoffending_section(effects, settings),
        "survival": survival_section(pid, shown, settings),
        "matching": matching_section(pid, shown, settings),
        "attrition": attrition_section(rows_of(shown, "attrition", pid)),
        "outcomes": outcomes_section(rows_of(shown, "indicators", pid)),
        "method": method_notes(effects, rows_of(shown, "ph_tests", pid), settings),
        "subgroups": for_whom.subgroup_section(pid, shown, settings.follow_up.headline_months),
    }


def headline_row(effects: pd.DataFrame | None, settings: Settings) -> pd.Series | None:
    if effects is None:
        return None
    row = effects[(effects["measure"] == "reoffended") & (effects["estimator"] == "matched")
                  & (effects["window_months"] == settings.follow_up.headline_months)]
    return None if row.empty else row.iloc[0]


def headline(effects: pd.DataFrame | None, settings: Settings, status: str = "") -> dict:
    """The headline in plain words, and the numbers behind it."""
    months = settings.follow_up.headline_months
    row = headline_row(effects, settings)
    if row is None:
        return {"sentence": PROGRAMME_STATUS.get(
            status, f"The {months}-month reoffending estimate is {NOT_AVAILABLE}."), "detail": "", "verdict": ""}
    if row["gate_status"] == "too_few_treated":
        return {"sentence": f"Fewer than {settings.diagnostics.min_participants} participants could be analysed, "
                            "so no reoffending estimate is published for this programme.", "detail": "", "verdict": ""}
    if row["sentence"] == SUPPRESSED:
        return {"sentence": "The reoffending estimate is suppressed because a number behind it is too small "
                            "to publish.", "detail": "", "verdict": ""}
    sentence = text(row["sentence"])
    detail = Markup(
        "Within {months} months, {treated} of participants and {comparison} of the {matched} reoffended: a "
        "difference of {difference} {pp} ({ci} {interval}; {p}). Based on {n_treated} participants and "
        "{n_comparison} comparison people.").format(
        months=months, treated=fmt(row["treated_value"], "percent"),
        comparison=fmt(row["comparison_value"], "percent"),
        matched=term("matched", "matched comparison group"),
        difference=fmt(row["difference"], "pp").removesuffix(" pp"), pp=term("pp", "percentage points"),
        ci=term("ci", "95% confidence interval"), interval=fmt_ci(row["ci_lower"], row["ci_upper"], "pp"),
        p=Markup("{} {}").format(term("p", "p"), p_text(row["p_value"]).removeprefix("p ")),
        n_treated=fmt(row["n_treated"], "count"), n_comparison=fmt(row["n_comparison"], "count"))
    return {"sentence": sentence, "detail": detail, "verdict": verdict(row)}


def verdict(row: pd.Series) -> str:
    """What the headline interval lets a reader conclude, in one sentence."""
    lower, upper = row["ci_lower"], row["ci_upper"]
    if SUPPRESSED in (lower, upper) or missing(lower) or missing(upper):
        return ""
    if float(lower) <= 0 <= float(upper):
        return ("Inconclusive: the data cannot tell this programme's effect on reoffending apart from no effect. "
                "The range of likely effects includes both fewer and more reoffending (or none).")
    if float(upper) < 0:
        return ("Participants reoffended less than similar people who did not take part, by more than chance "
                "alone would explain.")
    return ("Participants reoffended more than similar people who did not take part, by more than chance alone "
            "would explain.")


def conclusions(row: pd.Series | None, card: dict | None, months: int) -> dict:
    """The "What you can say / what you cannot say" box, as Justice Data Lab reports have."""
    can, cannot = [], []
    published = (row is not None and row["gate_status"] == "ok"
                 and SUPPRESSED not in (row["difference"], row["ci_lower"], row["ci_upper"])
                 and not missing(row["ci_lower"]) and not missing(row["ci_upper"]))
    if published:
        lower, upper = float(row["ci_lower"]), float(row["ci_upper"])
        can.append(f"Within {months} months, {fmt(row['treated_value'], 'percent')} of the participants analysed "
                   f"were proven to have reoffended, compared with {fmt(row['comparison_value'], 'percent')} of "
                   "similar people who did not take part.")
        if upper < 0:
            can.append(f"This analysis gives evidence that taking part reduced proven reoffending within {months} "
                       "months for people like the participants analysed.")
            cannot.append("That the programme would have the same effect for people unlike those analysed, "
                          "including participants who could not be matched.")
        elif lower > 0:
            can.append(f"This analysis gives evidence that participants reoffended more within {months} months "
                       "than similar people who did not take part.")
            cannot.append("Why participants reoffended more: the analysis compares groups, it does not explain "
                          "the difference.")
        else:
            can.append("This analysis does not show that the programme changed reoffending, up or down.")
            cannot.append("That the programme has no effect: with these numbers a real effect may be too small "
                          "to tell apart from chance.")
    else:
        cannot.append(f"Anything about the programme's effect on reoffending within {months} months: no "
                      "estimate is published (see the headline above).")
    if card and card["criteria"]:
        can.append(f"{card['summary'][:1].upper()}{card['summary'][1:]} over the whole period "
                   "(breakdowns by respondent type are not counted).")
        if any(row["scope"] for row in card["criteria"]):
            cannot.append("That the programme caused the changes in life skills, employment, accommodation, "
                          "community integration or satisfaction: they were measured among participants only, "
                          "with no comparison group.")
    cannot.append("That matching removed every difference between the groups: it balances only what was "
                  "recorded.")
    cannot.append("Anything about an individual person: every number describes a group.")
    return {"can": can, "cannot": cannot}


# The "How much can we trust this?" section: results.diagnostics in words. A failed diagnostic
# withholds the headline (the page shows WITHHELD_HEADLINE instead).
WITHHELD_HEADLINE = {
    "sentence": "The reoffending result is withheld: the study design behind it did not pass its checks (see "
                "How much can we trust this?).",
    "detail": "",
    "verdict": "",
}
DIAGNOSTIC_STATUS = {"pass": ("✓", "Pass"), "warning": ("!", "Warning"), "fail": ("✗", "Fail"),
                     "info": ("i", "For context")}
DIAGNOSTICS = {  # results.diagnostics.diagnostic -> (label, value format)
    "minimum_sample": ("Participants analysed", "count"),
    "balance": ("Balance: largest standardised difference after matching", "ratio"),
    "variance_ratio": ("Balance: variance ratio furthest from 1", "ratio"),
    "matched_share": ("Participants matched", "percent"),
    "overlap": ("Participants within the comparison group's range", "percent"),
    "equipoise": ("People in equipoise", "percent"),
    "power": ("Smallest reduction the study can detect", "points"),
    "participants_needed_5pp": ("Participants needed to detect a 5-point reduction", "count"),
    "participants_needed_10pp": ("Participants needed to detect a 10-point reduction", "count"),
    "negative_control": ("Negative control: offending before the programme", "ratio"),
    "rosenbaum_gamma": ("Sensitivity to hidden bias (Rosenbaum Γ)", "ratio"),
    "e_value": ("Sensitivity to hidden bias (E-value)", "ratio"),
    "doubly_robust": ("Doubly robust estimate", "pp"),
    "estimation": ("Estimation", "ratio"),
}
RESULT_DIAGNOSTICS = ("doubly_robust", "rosenbaum_gamma", "e_value")


EFFECT_TABLES = ("effects", "km_curves", "km_horizons", "logrank", "cox", "ph_tests", "rmst")


def withhold_effects(shown: dict[str, pd.DataFrame], programme_id: str) -> dict[str, pd.DataFrame]:
    """The tables without the programme's effect estimates: its effects and survival comparisons,
    and the success criterion built on the matched reoffending difference."""
    out = dict(shown)
    for name in EFFECT_TABLES:
        if name in out:
            out[name] = out[name][out[name]["programme_id"].astype(str) != programme_id]
    if "indicators" in out:
        indicators = out["indicators"]
        out["indicators"] = indicators[~((indicators["programme_id"].astype(str) == programme_id)
                                         & (indicators["indicator"] == "reoffending_rate_difference"))]
    return out


def diagnostics_section(diagnostics: pd.DataFrame | None) -> dict | None:
    """The programme's diagnostics in words, and whether its headline is withheld. A withheld
    programme's diagnostics that restate its effect (RESULT_DIAGNOSTICS) are left out."""
    if diagnostics is None or diagnostics.empty:
        return None
    withheld = bool((diagnostics["status"] == "fail").any())
    if withheld:
        diagnostics = diagnostics[~diagnostics["diagnostic"].isin(RESULT_DIAGNOSTICS)]
    order = {name: position for position, name in enumerate(DIAGNOSTICS)}
    rows = diagnostics.assign(order=diagnostics["diagnostic"].map(order).fillna(len(order))).sort_values("order")
    cells = []
    for row in rows.itertuples(index=False):
        label, kind = DIAGNOSTICS.get(row.diagnostic, (row.diagnostic.replace("_", " ").capitalize(), "ratio"))
        value = fmt(row.value, kind)
        status = row.status if row.status in DIAGNOSTIC_STATUS else "info"
        cells.append({"label": label, "status": status, "value": value,
                      "explanation": text(row.explanation)[:1].upper() + text(row.explanation)[1:] + "."})
    failed = [cell["explanation"] for cell in cells if cell["status"] == "fail"]
    return {"rows": cells, "withheld": withheld, "failed": failed}


def scorecard(indicators: pd.DataFrame | None) -> dict | None:
    """Success criteria and descriptive indicators, whole period.

    Only configured criteria are counted in "N of M criteria met"; a criterion's breakdowns
    (criterion_id "<criterion>.<respondent type>") are listed beneath it, uncounted. Criteria
    that do not compare participants with anyone say so beside their status.
    """
    if indicators is None:
        return None
    overall = indicators[indicators["period"] == "all"]

    def cells(row: dict) -> dict:
        spec = CRITERION_INDICATORS.get(row["indicator"])
        return {
            "label": text(row["label"]),
            "indicator": indicator_name(row["indicator"], row["unit"]),
            "estimate": fmt_indicator(row["estimate"], row["unit"]),
            "ci": (SUPPRESSED if SUPPRESSED in (row["ci_lower"], row["ci_upper"]) else
                   MISSING if missing(row["ci_lower"]) or missing(row["ci_upper"]) else
                   f"{fmt_indicator(row['ci_lower'], row['unit'])} to {fmt_indicator(row['ci_upper'], row['unit'])}"),
            "target": target_words(row["direction"], fmt_indicator(row["target"], row["unit"])),
            "n": fmt(row["n"], "count"),
            "status": row["status"] if row["status"] in STATUS else "not_enough_data",
            "scope": CRITERION_SCOPE.get(spec.source, "") if spec is not None else "",
            "notes": text(row["notes"]) if "notes" in row else MISSING,
        }

    rows = list(zip(overall["criterion_id"].fillna("").astype(str), overall.to_dict("records")))
    criteria = []
    for criterion, row in rows:
        if criterion and "." not in criterion:
            criteria.append({**cells(row), "breakdowns": [
                {**cells(part), "label": part["criterion_id"].split(".", 1)[1].replace("_", " ") + " responses"}
                for breakdown, part in rows if breakdown.startswith(criterion + ".")]})
    met = sum(row["status"] == "met" for row in criteria)
    return {
        "criteria": criteria,
        "met": met,
        "summary": f"{met} of {len(criteria)} criteria met" if criteria else "",
        "descriptive": [cells(row) for criterion, row in rows if criterion == ""],
    }


def criteria_met(indicators: pd.DataFrame) -> str:
    """'N of M' configured criteria met over the whole period (breakdowns are not criteria)."""
    card = scorecard(indicators)
    return f"{card['met']} of {len(card['criteria'])}" if card["criteria"] else MISSING


def target_words(direction: object, target: str) -> str:
    return {
        "increase": f"above {target}",
        "decrease": f"below {target}",
        "at_least": f"at least {target}",
        "at_most": f"at most {target}",
    }.get(direction, target)


def reoffending_section(effects: pd.DataFrame | None, settings: Settings) -> dict | None:
    if effects is None or effects.empty:
        return None
    rows, notes = [], []
    for (measure, window), group in effects.groupby(["measure", "window_months"], sort=False):
        if measure not in MEASURES:
            continue
        spec = MEASURES[measure]
        by_estimator = {row["estimator"]: row for _, row in group.iterrows()}
        matched = by_estimator.get("matched")
        if matched is None:
            continue
        gate = matched["gate_status"]
        note = GATE_NOTES.get(gate, "").format(min_participants=settings.diagnostics.min_participants) or (
            "" if "note" not in matched or missing(matched["note"]) else str(matched["note"]))
        if note and note not in notes:
            notes.append(note)
        marker = f" [{notes.index(note) + 1}]" if note else ""

        def estimate(name: str) -> str:
            row = by_estimator.get(name)
            if row is None:
                return NOT_AVAILABLE
            return (f"{fmt(row['difference'], spec.difference_format)} "
                    f"({fmt_ci(row['ci_lower'], row['ci_upper'], spec.difference_format)})")

        rows.append({
            "order": (list(MEASURES).index(measure), window),
            "cells": [
                spec.label, f"{window} months{marker}",
                fmt(matched["treated_value"], spec.value_format),
                fmt(matched["comparison_value"], spec.value_format),
                estimate("matched"), fmt(matched["p_value"], "p"),
                estimate("naive"), estimate("adjusted"),
                fmt(matched["n_treated"], "count"), fmt(matched["n_comparison"], "count"),
            ],
        })
    rows.sort(key=lambda r: r["order"])
    table = Table(
        columns=["Measure", "Window", "Participants", term("matched", "Matched comparison"),
                 Markup("Difference ({})").format(term("ci", "95% CI")), term("p", "p"),
                 "Before matching: difference (95% CI)", "Adjusted: difference (95% CI)",
                 "Participants (n)", "Comparison (n)"],
        rows=[r["cells"] for r in rows],
    )
    return {"table": table, "notes": notes, "charts": [c for c in (rates_chart(effects), estimates_chart(effects, settings.follow_up.headline_months)) if c]}


def rates_chart(effects: pd.DataFrame) -> Chart | None:
    matched = effects[(effects["measure"] == "reoffended") & (effects["estimator"] == "matched")] \
        .sort_values("window_months")
    if matched.empty:
        return None
    windows = [f"{w} months" for w in matched["window_months"]]
    rows = pd.DataFrame({
        "window": windows * 2,
        "grp": ["treated"] * len(matched) + ["comparison"] * len(matched),
        "value": pd.concat([numeric(matched["treated_value"]), numeric(matched["comparison_value"])],
                           ignore_index=True) * 100,
    })
    treated = [fmt(v, "percent") for v in matched["treated_value"]]
    comparison = [fmt(v, "percent") for v in matched["comparison_value"]]
    alt = "Share who reoffended, participants then matched comparison group: " + "; ".join(
        f"{w}: {t} and {c}" for w, t, c in zip(windows, treated, comparison)) + "."
    return chart("chart-rates", "Proven reoffending by follow-up window", figures.reoffending_rates(rows), alt,
                 Table(["Window", "Participants", "Matched comparison"],
                       [list(r) for r in zip(windows, treated, comparison)]))


def estimates_chart(effects: pd.DataFrame, months: int) -> Chart | None:
    """Each measure's difference by method over the headline window (the table above has every window)."""
    known = effects[effects["measure"].isin(list(MEASURES)) & effects["window_months"].eq(months)].copy()
    if known.empty:
        return None
    known["order"] = known["measure"].map(list(MEASURES).index)
    known["estimator_order"] = known["estimator"].map(list(ESTIMATORS).index)
    known = known.sort_values(["order", "window_months", "estimator_order"])
    scale = known["measure"].map(lambda m: 100.0 if MEASURES[m].difference_format == "pp" else 1.0)
    unit = known["measure"].map(lambda m: " (percentage points)" if MEASURES[m].difference_format == "pp"
                                else "")
    rows = pd.DataFrame({
        "panel": known["measure"].map(lambda m: MEASURES[m].label) + unit,
        "label": known["estimator"].map(CHART_ESTIMATORS).str.capitalize()
        + np.where(known["difference"].eq(SUPPRESSED), " (suppressed)", ""),
        "difference": numeric(known["difference"]) * scale,
        "ci_lower": numeric(known["ci_lower"]) * scale,
        "ci_upper": numeric(known["ci_upper"]) * scale,
    })
    cells = [
        [MEASURES[m].label, f"{w} months", ESTIMATORS.get(e, e),
         fmt(d, MEASURES[m].difference_format), fmt_ci(lo, hi, MEASURES[m].difference_format)]
        for m, w, e, d, lo, hi in known[["measure", "window_months", "estimator", "difference",
                                          "ci_lower", "ci_upper"]].itertuples(index=False)
    ]
    headline_cells = [c for c in cells if c[0] == MEASURES["reoffended"].label and c[1] == f"{months} months"]
    alt = ("Differences between participants and comparison people, with 95% confidence intervals, for each "
           f"measure and method, within {months} months. Reoffending rate: " + "; ".join(
               f"{c[2].lower()} {c[3]} ({c[4]})" for c in headline_cells) + ".")
    return chart("chart-estimates", f"Differences by measure and method, within {months} months",
                 figures.effect_estimates(rows), alt,
                 Table(["Measure", "Window", "Method", "Difference", "95% CI"], cells))


def survival_section(pid: str, shown: dict[str, pd.DataFrame], settings: Settings) -> dict | None:
    curves = rows_of(shown, "km_curves", pid)
    horizons = rows_of(shown, "km_horizons", pid)
    if (curves is None or curves.empty) and (horizons is None or horizons.empty):
        return None
    section: dict = {"chart": None, "at_risk": None, "tests": []}
    if horizons is not None and not horizons.empty:
        horizons = horizons.sort_values("horizon_days")
        by_group = {grp: part.set_index("horizon_label") for grp, part in horizons.groupby("grp")}
        labels = list(dict.fromkeys(horizons["horizon_label"]))
        rows = []
        for label in labels:
            cells = [label]
            for grp in ("treated", "comparison"):
                part = by_group.get(grp)
                if part is None or label not in part.index:
                    cells += [MISSING, MISSING]
                    continue
                row = part.loc[label]
                cells += [fmt(row["n_at_risk"], "count"),
                          f"{fmt(row['cumulative_reoffending'], 'percent')} "
                          f"({fmt_ci(row['lower'], row['upper'], 'percent')})"
                          if row["cumulative_reoffending"] != SUPPRESSED else SUPPRESSED]
            rows.append(cells)
        section["at_risk"] = Table(
            ["Time since index", "Participants at risk", "Participants reoffended so far (95% CI)",
             "Comparison at risk", "Comparison reoffended so far (95% CI)"], rows)
    if curves is not None and not curves.empty:
        table_rows = [
            [figures.GROUP_LABELS.get(g, g), fmt(t, "days"), fmt(c, "percent"), fmt_ci(lo, hi, "percent")]
            for g, t, c, lo, hi in curves[["grp", "time_days", "cumulative_reoffending", "lower", "upper"]]
            .itertuples(index=False)
        ]
        last = curves.sort_values("time_days").groupby("grp").tail(1).set_index("grp")
        alt = ("Cumulative share reoffending since the index date, with 95% confidence bands. " + " ".join(
            f"{figures.GROUP_LABELS[g]}: {fmt(last.loc[g, 'cumulative_reoffending'], 'percent')} by day "
            f"{fmt(last.loc[g, 'time_days'], 'days')}." for g in ("treated", "comparison") if g in last.index))
        section["chart"] = chart("chart-survival", "Cumulative proven reoffending over time",
                                 figures.cumulative_reoffending(curves), alt,
                                 Table(["Group", "Day", "Reoffended so far", "95% CI"], table_rows))
    section["tests"] = survival_tests(pid, shown)
    return section


def survival_tests(pid: str, shown: dict[str, pd.DataFrame]) -> list[str]:
    lines = []
    logrank = rows_of(shown, "logrank", pid)
    if logrank is not None and not logrank.empty:
        row = logrank.iloc[0]
        lines.append(Markup("{}, whether the two curves differ by more than chance: χ² = {} on {} degree(s) of "
                            "freedom, {}.").format(term("log-rank", "Log-rank test"), fmt(row["chi2"], "ratio"),
                                                   text(row["df"]), p_text(row["p"])))
    cox = rows_of(shown, "cox", pid)
    if cox is not None and not cox.empty:
        for model, words in (("matched", "on the matched sample"), ("adjusted", "adjusted for covariates, full cohort")):
            part = cox[cox["model"] == model]
            if not part.empty:
                row = part.iloc[0]
                lines.append(Markup("{} for taking part ({}): {} ({} {}, {}). Below 1 means participants "
                                    "reoffended more slowly.").format(
                    term("hazard-ratio", "Hazard ratio"), words, fmt(row["hr"], "ratio"), term("ci", "95% CI"),
                    fmt_ci(row["hr_lower"], row["hr_upper"], "ratio"), p_text(row["p"])))
    rmst = rows_of(shown, "rmst", pid)
    if rmst is not None and not rmst.empty:
        for row in rmst.sort_values("horizon_days").itertuples(index=False):
            lines.append(Markup("{} over the first {} days: participants {}, comparison {}, difference {} days "
                                "({} {}).").format(
                term("rmst", "Average time without proven reoffending"), fmt(row.horizon_days, "days"),
                fmt(row.rmst_treated, "days"), fmt(row.rmst_comparison, "days"), fmt(row.difference, "days"),
                term("ci", "95% CI"), fmt_ci(row.ci_lower, row.ci_upper, "days")))
    return lines


def matching_section(pid: str, shown: dict[str, pd.DataFrame], settings: Settings) -> dict | None:
    balance = rows_of(shown, "balance", pid)
    overlap = rows_of(shown, "propensity_overlap", pid)
    sizes = rows_of(shown, "sample_sizes", pid)
    reasons = rows_of(shown, "unmatched_reasons", pid)
    ids = rows_of(shown, "unmatched", pid)
    if all(frame is None or frame.empty for frame in (balance, sizes)):
        return None  # the programme was not matched
    section: dict = {"charts": [], "balance": None, "sizes": None, "unmatched": None}
    if balance is not None and not balance.empty:
        # Each covariate's first non-missing SMD and variance ratio per stage, and its "after" row.
        first: dict[tuple[str, str, str], object] = {}
        after: dict[str, dict] = {}
        for row in balance.to_dict("records"):
            for measure in ("smd", "variance_ratio"):
                if not missing(row[measure]):
                    first.setdefault((row["covariate"], row["stage"], measure), row[measure])
            if row["stage"] == "after":
                after.setdefault(row["covariate"], row)
        covariates = list(dict.fromkeys(balance["covariate"]))
        rows = []
        for covariate in covariates:
            ok = after.get(covariate)
            balanced = MISSING if ok is None else ("✓ yes" if bool(ok["smd_ok"]) and (
                missing(ok["vr_ok"]) or bool(ok["vr_ok"])) else "✗ no")
            rows.append([covariate_label(covariate), fmt(first.get((covariate, "before", "smd")), "ratio"),
                         fmt(first.get((covariate, "after", "smd")), "ratio"),
                         fmt(first.get((covariate, "after", "variance_ratio")), "ratio"), balanced])
        table = Table(["Covariate", term("smd", "SMD before"), term("smd", "SMD after"),
                       term("variance-ratio", "Variance ratio after"), "Balanced after"], rows)
        n_unbalanced = sum(r[4] == "✗ no" for r in rows)
        alt = (f"Standardised mean differences of {len(covariates)} covariates before and after matching, with "
               f"lines at −0.1 and +0.1. After matching, {n_unbalanced} of {len(covariates)} covariates are outside "
               "the balance thresholds.")
        section["charts"].append(chart("chart-balance", "Covariate balance before and after matching",
                                       figures.love_plot(balance.assign(covariate=balance["covariate"].map(covariate_label))),
                                       alt, table))
    if overlap is not None and not overlap.empty:
        rows = [[{"all": "Before matching", "matched": "After matching"}.get(s, s), figures.GROUP_LABELS.get(g, g),
                 fmt(n, "count"), *(fmt(v, "ratio") for v in values)]
                for s, g, n, *values in overlap[["sample", "grp", "n", *PERCENTILE_COLUMNS]].itertuples(index=False)]
        medians = "; ".join(f"{r[0].lower()}, {r[1].lower()}: median {r[5]}" for r in rows)
        alt = f"Propensity scores of participants and comparison people, 5th to 95th percentile. Medians: {medians}."
        section["charts"].append(chart(
            "chart-overlap", "Propensity score overlap", figures.propensity_overlap(overlap), alt,
            Table(["Sample", "Group", "People", "5th pct", "25th pct", "Median", "75th pct", "95th pct"], rows)))
    if sizes is not None and not sizes.empty:
        section["sizes"] = Table(
            ["Group", "Analysed", "Matched", "Unmatched", "Discarded"],
            [[figures.GROUP_LABELS.get(r.grp, r.grp), fmt(r.n_all, "count"), fmt(r.n_matched, "count"),
              fmt(r.n_unmatched, "count"), fmt(r.n_discarded, "count")] for r in sizes.itertuples(index=False)])
    if reasons is not None:
        listed = [] if ids is None else ids["person_id"].astype(str).tolist()
        # ids are listed exactly when there are enough of them to publish the number
        count = fmt(len(listed), "count") if listed else "0" if reasons.empty else SUPPRESSED
        section["unmatched"] = {
            "count": count,
            "reasons": Table(["Reason", "Participants"],
                             [[text(r.reason), fmt(r.n, "count")] for r in reasons.itertuples(index=False)]),
            "ids": listed,
        }
    return section


def attrition_section(attrition: pd.DataFrame | None) -> dict | None:
    if attrition is None or attrition.empty:
        return None
    steps = attrition.sort_values(["cohort_group", "step_number"], ascending=[False, True]).assign(
        step=lambda f: f["step"].str.replace("_", " ").str.capitalize())
    rows = [[g.capitalize(), s, fmt(p, "count"), fmt(lost, "count"), text(reason)]
            for g, s, p, lost, reason in steps[["cohort_group", "step", "people", "lost", "reason"]]
            .itertuples(index=False)]
    final = steps.groupby("cohort_group").tail(1).set_index("cohort_group")
    alt = "People remaining after each step of selection. " + " ".join(
        f"{g.capitalize()} analysed: {fmt(final.loc[g, 'people'], 'count')}." for g in final.index)
    return {"chart": chart("chart-attrition", "People remaining after each step", figures.attrition_funnel(steps), alt,
                           Table(["Group", "Step", "People remaining", "Lost at this step", "Why lost"], rows))}


def outcomes_section(indicators: pd.DataFrame | None) -> dict | None:
    """Each success criterion by cohort quarter (the breakdowns by respondent type stay in the scorecard)."""
    if indicators is None:
        return None
    criterion = indicators["criterion_id"].fillna("")
    quarterly = indicators[(indicators["period"] != "all") & (criterion != "") & ~criterion.str.contains(".",
                                                                                                     regex=False)]
    quarterly = quarterly.sort_values(["criterion_id", "period"])
    if quarterly.empty:
        return {"chart": None}
    scale = quarterly["unit"].map(indicator_scale)
    unit_words = quarterly["unit"].map(lambda u: {"percent": " (%)", "pp": " (percentage points)"}.get(
        indicator_kind(u), ""))
    titles = quarterly["criterion_id"].str.replace("_", " ").str.capitalize() + unit_words
    rows = pd.DataFrame({
        "label": titles,
        "period": quarterly["period"].astype(str),
        "estimate": numeric(quarterly["estimate"]) * scale,
        "ci_lower": numeric(quarterly["ci_lower"]) * scale,
        "ci_upper": numeric(quarterly["ci_upper"]) * scale,
        "target": numeric(quarterly["target"]) * scale,
    })
    cells = [[title, text(period), fmt_indicator(e, u), fmt_ci(lo, hi, "number2") if indicator_kind(u) == "number"
              else (SUPPRESSED if SUPPRESSED in (lo, hi) else MISSING if missing(lo) or missing(hi)
                    else f"{fmt_indicator(lo, u)} to {fmt_indicator(hi, u)}"),
              fmt(n, "count"), STATUS.get(s, STATUS["not_enough_data"])[1]]
             for title, period, e, lo, hi, u, n, s in zip(
                 titles, quarterly["period"], quarterly["estimate"], quarterly["ci_lower"], quarterly["ci_upper"],
                 quarterly["unit"], quarterly["n"], quarterly["status"])]
    alt = (f"{quarterly['criterion_id'].nunique()} success criteria by cohort quarter, from "
           f"{quarterly['period'].min()} to {quarterly['period'].max()}, with 95% confidence intervals and "
           "targets. Gaps are quarters with too few people to publish.")
    return {"chart": chart("chart-outcomes", "Each success criterion by cohort quarter",
                           figures.indicator_trends(rows), alt,
                           Table(["Criterion", "Quarter", "Estimate", "95% CI", "People", "Status"], cells))}


PH_MODELS = {"matched": "matched sample", "adjusted": "covariate-adjusted model"}  # results.ph_tests.model
PH_ALPHA = 0.05  # as models/survival.py flags a term


def proportional_hazards_notes(ph_tests: pd.DataFrame | None) -> list[str]:
    """One plain sentence per Cox model whose hazard ratio for taking part fails the PH test.

    Funders read the hazard ratio for taking part; the per-covariate tests of the adjusted
    model stay in the researcher database.
    """
    if ph_tests is None or ph_tests.empty:
        return []
    notes = []
    for model, name in PH_MODELS.items():
        rows = ph_tests[(ph_tests["model"] == model) & (ph_tests["term"] == "treated")]
        if len(rows) and not missing(rows.iloc[0]["p"]) and rows.iloc[0]["p"] < PH_ALPHA:
            notes.append(Markup(
                "In the {}, the {} for taking part appears to change over follow-up time ({}, {}), so the single "
                "hazard ratio averages an effect that varies. Read it alongside the cumulative reoffending curves "
                "and the average time without reoffending.").format(
                name, term("hazard-ratio", "hazard ratio"), term("ph-test", "proportional-hazards test"),
                p_text(rows.iloc[0]["p"])))
    return notes


def method_notes(effects: pd.DataFrame | None, ph_tests: pd.DataFrame | None, settings: Settings) -> dict:
    row = headline_row(effects, settings)
    e_value = None
    if row is not None and not missing(row["e_value"]) and row["e_value"] != SUPPRESSED:
        e_value = {"point": fmt(row["e_value"], "ratio"), "ci": fmt(row["e_value_ci"], "ratio")}
    caliper = settings.matching.caliper
    return {
        "windows": ", ".join(str(m) for m in settings.follow_up.windows_months),
        "headline_months": settings.follow_up.headline_months,
        "waiting_months": settings.follow_up.waiting_period_months,
        "ratio": settings.matching.ratio,
        "replace": settings.matching.replace,
        "caliper": "no caliper" if caliper is None else f"a caliper of {caliper} standard deviations of the logit "
                                                         "propensity score",
        "covariates": ", ".join(settings.covariates.all).replace("_", " "),
        "exact": ", ".join(settings.matching.exact).replace("_", " "),
        "enrolment_before": settings.cohort.enrolment_days_before,
        "enrolment_after": settings.cohort.enrolment_days_after,
        "cohort_from": settings.cohort.index_from.isoformat(),
        "cohort_to": settings.cohort.index_to.isoformat(),
        "data_cutoff": settings.data_cutoff.isoformat(),
        "e_value": e_value,
        "ph_warnings": proportional_hazards_notes(ph_tests),
        "min_participants": settings.diagnostics.min_participants,
    }


def provenance(run_info: pd.DataFrame | None) -> dict:
    if run_info is None or run_info.empty:
        return {key: NOT_AVAILABLE for key in ("run_id", "started_at", "code_version", "input_fingerprint",
                                               "settings_hash", "data_cutoff")}
    row = run_info.iloc[0]
    values = {key: text(row[key]) for key in ("run_id", "started_at", "code_version", "input_fingerprint",
                                              "settings_hash")}
    return {**values, "data_cutoff": pd.Timestamp(row["data_cutoff"]).date().isoformat()}  # a DATE, read as a timestamp


# ---------------------------------------------------------------------------------------------
# The portfolio page


def portfolio_context(programmes: pd.DataFrame, shown: dict[str, pd.DataFrame], settings: Settings) -> dict:
    months = settings.follow_up.headline_months
    effects = shown.get("effects")
    indicators = shown.get("indicators")
    rows, forest = [], []
    trusts = {pid: diagnostics_section(rows_of(shown, "diagnostics", pid)) for pid in programmes["programme_id"]}
    withheld_ids = {pid for pid, trust in trusts.items() if trust and trust["withheld"]}
    visible = {pid: withhold_effects(shown, pid) if pid in withheld_ids else shown for pid in trusts}
    headlines = [headline_row(rows_of(visible[pid], "effects", pid), settings) for pid in programmes["programme_id"]]
    # The summary table lists every programme's participants: no two may differ by a small number.
    counts = pd.Series([SUPPRESSED if row is None else row["n_treated"] for row in headlines], dtype=object)
    hidden = hide_differences(counts, pd.Series("", index=counts.index), settings.disclosure.min_count)
    for programme, row, hide in zip(programmes.itertuples(index=False), headlines, hidden):
        withheld = programme.programme_id in withheld_ids
        if row is not None and hide:
            row = row.copy()
            row["n_treated"] = SUPPRESSED
        status_counts = ""
        if indicators is not None:
            status_counts = criteria_met(rows_of(visible[programme.programme_id], "indicators",
                                                 programme.programme_id))
        published = row is not None and row["gate_status"] == "ok" and row["difference"] != SUPPRESSED
        reason = ("" if published else "withheld: design checks failed" if withheld else NOT_AVAILABLE if row is None
                  else "not enough data" if row["gate_status"] != "ok" else SUPPRESSED)
        rows.append({
            "programme": programme,
            "cells": [
                text(programme.programme_type).replace("_", " "), text(programme.provider),
                reason or fmt(row["n_treated"], "count"),
                reason or fmt(row["treated_value"], "percent"),
                reason or fmt(row["comparison_value"], "percent"),
                reason or f"{fmt(row['difference'], 'pp')} ({fmt_ci(row['ci_lower'], row['ci_upper'], 'pp')})",
                status_counts if indicators is not None else NOT_AVAILABLE,
            ],
        })
        forest.append({
            "label": programme.name,
            "difference": numeric_cell(row["difference"] if published else None) * 100,
            "ci_lower": numeric_cell(row["ci_lower"] if published else None) * 100,
            "ci_upper": numeric_cell(row["ci_upper"] if published else None) * 100,
            "cell": rows[-1]["cells"][5],
        })
    forest_chart = None
    if effects is not None and forest:
        frame = pd.DataFrame(forest)
        shown_rows = frame.dropna(subset=["difference"])
        alt = (f"Difference in the share reoffending within {months} months between participants and matched "
               "comparison people, in percentage points with 95% confidence intervals. " + " ".join(
                   f"{r.label}: {r.cell}." for r in shown_rows.itertuples(index=False)))
        forest_chart = chart("chart-forest", f"Effect on {months}-month reoffending, by programme",
                             figures.forest_plot(frame), alt,
                             Table(["Programme", "Difference (95% CI)"], [[r.label, r.cell] for r in frame.itertuples()]))
    return {
        "title": "Programme portfolio",
        "months": months,
        "programmes": rows,
        "columns": ["Programme", "Type", "Provider", "Participants (n)", "Participants reoffended",
                    "Comparison reoffended", "Difference (95% CI)", "Success criteria met"],
        "forest": forest_chart,
        "effects_available": effects is not None,
        "model_card": for_whom.MODEL_CARD_PAGE if "risk_model_card" in shown else None,
    }


from reports import for_whom  # noqa: E402  (its sections use the formatting helpers above)
