"""Study diagnostics per programme: read the matched comparison's results, call models/, write
results.diagnostics, and report balance, minimum sample and overall status as asset checks.

The checks have warning severity and never block: a programme whose design fails keeps its
numbers in the warehouse and the researcher database; only its headline is withheld.
"""
import dagster as dg
import pandas as pd

from models.diagnostics import FAIL, WARNING, DesignDiagnostics, Thresholds, too_few_participants
from models.evaluation import STATUS_TOO_FEW_PARTICIPANTS, evaluate_diagnostics
from pipelines.effects import ANALYSED_PEOPLE, matching_spec, write_results
from pipelines.resources import WAREHOUSE_POOL, Warehouse

DIAGNOSTICS = dg.AssetKey(["results", "diagnostics"])
TABLES = ("diagnostics", "diagnostic_estimates")
CHECKS = {
    "balance": "Largest |standardised mean difference| after matching within the diagnostics thresholds.",
    "minimum_sample": "Enough participants analysed for an estimate (diagnostics.min_participants).",
    "diagnostics_status": "No study diagnostic failed, so every programme's headline effect is shown.",
}

# The people analysed, with the headline measure, the negative controls and the matching.
PEOPLE = f"""
    SELECT people.*, headline.reoffended, controls.pre_offences_12, controls.pre_offended_24_12
    FROM ({ANALYSED_PEOPLE}) AS people
    JOIN analysis.measures AS headline USING (programme_id, person_id, index_date)
    JOIN analysis.negative_controls AS controls USING (programme_id, person_id, index_date)
    WHERE headline.window_months = getvariable('headline_months')
    ORDER BY people.person_id
"""


def programme_diagnostics(con, programme_id: str, status: str, message: str, n_treated: int, settings,
                          thresholds: Thresholds) -> DesignDiagnostics:
    if status == STATUS_TOO_FEW_PARTICIPANTS:
        return too_few_participants(n_treated, thresholds)
    if status != "ok":
        return DesignDiagnostics(pd.DataFrame([{
            "diagnostic": "estimation", "value": float("nan"), "threshold": float("nan"), "status": FAIL,
            "explanation": f"no estimate could be made: {message}"}]), pd.DataFrame())
    where = {"programme_id": programme_id}
    read = {table: con.execute(f"SELECT * FROM results.{table} WHERE programme_id = $programme_id", where).df()
            for table in ("matched_sets", "balance", "effects")}
    return evaluate_diagnostics(con.execute(PEOPLE, where).df(), read["matched_sets"], read["balance"],
                                read["effects"], matching_spec(settings), settings.follow_up.headline_months,
                                thresholds)


def _status_table(frame: pd.DataFrame) -> dg.MetadataValue:
    lines = ["| programme | value | threshold | status | explanation |", "|---|---|---|---|---|"]
    lines += [f"| {r.programme_id} | {r.value:.3g} | {r.threshold:.3g} | {r.status} | {r.explanation} |"
              for r in frame.itertuples(index=False)]
    return dg.MetadataValue.md("\n".join(lines))


def check_results(diagnostics: pd.DataFrame) -> list[dg.AssetCheckResult]:
    """The three checks, each listing every programme; a failed or warned programme fails the check (WARN)."""
    results = []
    for name in ("balance", "minimum_sample"):
        rows = diagnostics[diagnostics["diagnostic"] == name]
        off = rows[rows["status"].isin([FAIL, WARNING])]
        results.append(dg.AssetCheckResult(
            asset_key=DIAGNOSTICS, check_name=name, passed=off.empty, severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(f"{r.programme_id}: {r.explanation}" for r in off.itertuples()) or None,
            metadata={"programmes": _status_table(rows)}))
    failed = diagnostics[diagnostics["status"] == FAIL]
    overall = diagnostics.groupby("programme_id")["status"].apply(
        lambda s: "headline withheld" if (s == FAIL).any() else "headline shown")
    results.append(dg.AssetCheckResult(
        asset_key=DIAGNOSTICS, check_name="diagnostics_status", passed=failed.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(f"{r.programme_id}: {r.explanation}" for r in failed.itertuples()) or None,
        metadata={"programmes": dg.MetadataValue.md("\n".join(
            ["| programme | outcome |", "|---|---|", *(f"| {p} | {o} |" for p, o in overall.items())]))}))
    return results


@dg.asset(
    key=DIAGNOSTICS,
    deps=[dg.AssetKey(["results", "effects"]), dg.AssetKey(["analysis", "negative_controls"])],
    group_name="effects",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "python"},
    check_specs=[dg.AssetCheckSpec(name, asset=DIAGNOSTICS, description=text) for name, text in CHECKS.items()],
    description="Study diagnostics per programme (balance, overlap, power, negative controls, sensitivity, doubly "
                "robust estimate): a failed diagnostic withholds the programme's headline effect.",
)
def study_diagnostics(context: dg.AssetExecutionContext, warehouse: Warehouse):
    settings = warehouse.settings
    thresholds = Thresholds(**settings.diagnostics.model_dump())
    frames: dict[str, list[pd.DataFrame]] = {table: [] for table in TABLES}
    with warehouse.connect() as con:
        analysed = con.execute("SELECT programme_id, status, message, n_treated_analysed FROM results.programmes_analysed "
                               "ORDER BY programme_id").fetchall()
        for programme_id, status, message, n_treated in analysed:
            result = programme_diagnostics(con, programme_id, status, message, n_treated, settings, thresholds)
            context.log.info(f"{programme_id}: headline {'withheld' if result.withheld else 'shown'}"
                             + (f" ({'; '.join(result.failed)})" if result.withheld else ""))
            for table, frame in (("diagnostics", result.table), ("diagnostic_estimates", result.estimates)):
                if not frame.empty:
                    frames[table].append(frame.assign(programme_id=programme_id)[["programme_id", *frame.columns]])
        write_results(con, "results/programme_diagnostics.sql", frames)
        diagnostics = con.execute("SELECT * FROM results.diagnostics ORDER BY programme_id").df()
    return dg.MaterializeResult(
        metadata={"programmes": len(analysed),
                  "withheld": int(diagnostics.loc[diagnostics["status"] == FAIL, "programme_id"].nunique())},
        check_results=check_results(diagnostics))
