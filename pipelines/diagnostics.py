"""Study diagnostics, one programme partition at a time: read the programme's matched comparison,
call models/, write its diagnostics frames; the assembled results.diagnostics carries the balance,
minimum sample and overall status asset checks (see pipelines/assembly.py).

The checks have warning severity and never block: a programme whose design fails keeps its
numbers in the warehouse and the researcher database; only its headline is withheld.
"""
import dagster as dg
import pandas as pd
import pyarrow as pa

from models.diagnostics import FAIL, WARNING, DesignDiagnostics, Thresholds, too_few_participants
from models.evaluation import STATUS_TOO_FEW_PARTICIPANTS, evaluate_diagnostics
from pipelines.effects import fingerprint, matching_spec, partition_writer, programme_connection, with_programme
from pipelines.partitions import (PROGRAMME_DIAGNOSTICS, PROGRAMME_EFFECTS, PROGRAMME_GROUP, PROGRAMMES,
                                 analysed_people_file, existing_partition_file, read_partition, write_partition)
from pipelines.resources import Warehouse

DIAGNOSTICS = dg.AssetKey(["results", "diagnostics"])
TABLES = ("diagnostics", "diagnostic_estimates")
CHECKS = {
    "balance": "Largest |standardised mean difference| after matching within the diagnostics thresholds.",
    "minimum_sample": "Enough participants analysed for an estimate (diagnostics.min_participants).",
    "diagnostics_status": "No study diagnostic failed, so every programme's headline effect is shown.",
}

# The people of the matched sample (weight above zero) from the effects step's analysed_people file,
# with their covariates, the headline measure and the negative controls: no diagnostic reads the
# covariates or outcomes of the people left out of the matched sample, whose participation and
# propensity scores come from the matched sets. In no order (the diagnostics find each person by
# id). The controls are read from their table stored once per person and index date: the people's ids
# and dates find them.
MATCHED_SAMPLE = """
    SELECT people.*, controls.pre_offences_12, controls.pre_offended_24_12
    FROM (SELECT person_id, index_date::DATE AS index_date,
                 COLUMNS(lambda c: list_contains(getvariable('covariates'), c)), reoffended
          FROM read_parquet($people) WHERE weight > 0) AS people
    JOIN analysis.negative_controls_by_index AS controls USING (person_id, index_date)
"""


def read_matched_sets(con, settings, programme_id: str) -> pd.DataFrame:
    """The programme's matched sets, person ids as Arrow strings (no Python object per person)."""
    path = existing_partition_file(settings, "matched_sets", programme_id)
    table = con.sql("SELECT person_id, treated, weight, subclass, propensity FROM read_parquet($path)",
                    params={"path": str(path)}).to_arrow_table()
    return table.to_pandas(types_mapper={pa.string(): pd.ArrowDtype(pa.string())}.get)


def read_diagnostic_inputs(con, settings, programme_id: str, inputs: str) -> dict[str, pd.DataFrame]:
    """What the diagnostics of an estimated programme read: its matched sets, the matched sample
    (MATCHED_SAMPLE) and its partition's balance and effects; stops if the effects step's analysed_people
    file is missing or not from ``inputs`` (analysed_people_file)."""
    sample = con.execute(MATCHED_SAMPLE, {"people": str(analysed_people_file(settings, programme_id, inputs))}).df()
    return {"matched_sets": read_matched_sets(con, settings, programme_id), "sample": sample,
            **{table: read_partition(con, settings, table, programme_id) for table in ("balance", "effects")}}


def programme_diagnostics(programme_id: str, status: str, message: str, n_treated: int, read: dict | None,
                          settings, thresholds: Thresholds) -> DesignDiagnostics:
    """The diagnostics of one programme from what :func:`read_diagnostic_inputs` read (None unless estimated)."""
    if status == STATUS_TOO_FEW_PARTICIPANTS:
        return too_few_participants(n_treated, thresholds)
    if status != "ok":
        return DesignDiagnostics(pd.DataFrame([{
            "diagnostic": "estimation", "value": float("nan"), "threshold": float("nan"), "status": FAIL,
            "explanation": f"no estimate could be made: {message}"}]), pd.DataFrame())
    try:
        return evaluate_diagnostics(read["sample"], read["matched_sets"], read["balance"], read["effects"],
                                    matching_spec(settings), settings.follow_up.headline_months, thresholds)
    except ValueError as error:
        raise dg.Failure(description=f"programme {programme_id}: {error}") from error


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
    key=PROGRAMME_DIAGNOSTICS,
    deps=[PROGRAMME_EFFECTS, dg.AssetKey(["analysis", "negative_controls"])],
    partitions_def=PROGRAMMES,
    group_name=PROGRAMME_GROUP,
    kinds={"duckdb", "python"},
    description="One programme's study diagnostics (balance, overlap, power, negative controls, sensitivity, "
                "doubly robust estimate): a failed diagnostic withholds the programme's headline effect.",
)
def programme_study_diagnostics(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    settings = warehouse.settings
    programme_id = context.partition_key
    thresholds = Thresholds(**settings.diagnostics.model_dump())
    # The reads' connection is closed before the models run, so DuckDB's memory is given back first.
    with programme_connection(warehouse) as con:
        inputs = fingerprint(context, con, settings)
        analysed = read_partition(con, settings, "programmes_analysed", programme_id).iloc[0]
        read = read_diagnostic_inputs(con, settings, programme_id, inputs) if analysed["status"] == "ok" else None
    result = programme_diagnostics(programme_id, analysed["status"], analysed["message"],
                                   int(analysed["n_treated_analysed"]), read, settings, thresholds)
    del read
    context.log.info(f"{programme_id}: headline {'withheld' if result.withheld else 'shown'}"
                     + (f" ({'; '.join(result.failed)})" if result.withheld else ""))
    frames = {table: with_programme(frame, programme_id)
              for table, frame in (("diagnostics", result.table), ("diagnostic_estimates", result.estimates))
              if not frame.empty}
    with partition_writer(settings) as con:
        write_partition(con, settings, programme_id, TABLES, frames)
    return dg.MaterializeResult(metadata={"headline": "withheld" if result.withheld else "shown",
                                          "input_fingerprint": inputs})
