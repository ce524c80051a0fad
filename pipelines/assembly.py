"""The results tables assembled from every programme's partition, all or nothing.

Downstream readers (indicators, reports, the researcher database) read results.* as before; they
see either the previous complete set or the new complete set, never a mix.
"""
import dagster as dg
import pandas as pd

from desist import warehouse as wh
from desist.analysis import not_estimated_reasons
from pipelines import diagnostics
from pipelines.effects import EFFECT_TABLES, SURVIVAL_TABLES
from pipelines.for_whom import SUBGROUP_TABLES
from pipelines.partitions import (PROGRAMME_DIAGNOSTICS, PROGRAMME_EFFECTS, PROGRAMME_SUBGROUP_EFFECTS,
                                 PROGRAMME_SURVIVAL, partition_files, planned_fingerprints, programme_fingerprints,
                                 stale_programmes)
from pipelines.resources import WAREHOUSE_POOL, Warehouse

EFFECTS = dg.AssetKey(["results", "effects"])
SURVIVAL = dg.AssetKey(["results", "survival"])
SUBGROUP_EFFECTS = dg.AssetKey(["results", "subgroup_effects"])

# Assembled asset: (the partitioned asset it gathers, the statement declaring its tables, the tables, description).
FAMILIES = {
    EFFECTS: (PROGRAMME_EFFECTS, "results/programme_effects.sql", EFFECT_TABLES,
              "Propensity model, matched sets, balance and effects (matched, naive, adjusted) of every programme."),
    SURVIVAL: (PROGRAMME_SURVIVAL, "results/programme_survival.sql", SURVIVAL_TABLES,
               "Kaplan–Meier curves, log-rank, Cox models, PH tests and RMST of every programme."),
    diagnostics.DIAGNOSTICS: (PROGRAMME_DIAGNOSTICS, "results/programme_diagnostics.sql", diagnostics.TABLES,
                              "Study diagnostics of every programme: a failed diagnostic withholds the "
                              "programme's headline effect."),
    SUBGROUP_EFFECTS: (PROGRAMME_SUBGROUP_EFFECTS, "results/subgroup_effects.sql", SUBGROUP_TABLES,
                       "Matched effects within pre-declared subgroups, heterogeneity tests and Holm-adjusted "
                       "p-values, of every programme."),
}


@dg.multi_asset(
    specs=[dg.AssetSpec(key, deps=[partitioned], group_name="effects", description=description,
                        kinds={"duckdb"})
           for key, (partitioned, _, _, description) in FAMILIES.items()],
    check_specs=[dg.AssetCheckSpec(name, asset=diagnostics.DIAGNOSTICS, description=text)
                 for name, text in diagnostics.CHECKS.items()],
    pool=WAREHOUSE_POOL,
    name="assembled_results",
)
def assembled_results(context: dg.AssetExecutionContext, warehouse: Warehouse):
    settings = warehouse.settings
    planned = planned_fingerprints(settings, context.run.tags)  # before this step's connection writes anything
    with warehouse.connect() as con:
        fingerprints = planned or programme_fingerprints(con, settings)
        stale = stale_programmes(context.instance, fingerprints)
        if stale:
            raise dg.Failure(description="\n".join([
                f"the results of {len(stale)} programme(s) are missing or not from the current data, so the results "
                "tables, the published database and the reports were kept as they were",
                *(f"programme {programme_id}: no successful partition run on the current data"
                  for programme_id in stale)]))
        programme_ids = sorted(fingerprints)
        con.begin()
        try:
            for _, schema_sql, tables, _ in FAMILIES.values():
                wh.run_sql(con, schema_sql)
                for table in tables:
                    for path in partition_files(settings, table, programme_ids):
                        con.execute(f"INSERT INTO results.{table} BY NAME SELECT * FROM read_parquet($path)",
                                    {"path": str(path)})
            con.commit()
        except BaseException:
            con.rollback()
            raise
        estimated = con.execute("SELECT count(*) FILTER (status = 'ok') FROM results.programmes_analysed").fetchone()[0]
        if not estimated:
            # Publishing now would replace good outputs with empty ones: stop, one line per programme.
            reasons = not_estimated_reasons(con)
            raise dg.Failure(description="\n".join([
                "no programme could be estimated, so the published database and reports were kept as they were",
                *reasons.values(),
            ] if reasons else ["there is no programme to estimate (staging.programmes is empty)"]))
        summary = con.execute("""
            SELECT (SELECT string_agg(programme_id || ': ' || status, '; ' ORDER BY programme_id)
                      FROM results.programmes_analysed WHERE status <> 'ok'),
                   (SELECT max(abs(smd)) FROM results.balance WHERE stage = 'after'),
                   (SELECT count(*) FROM results.matched_sets WHERE treated AND weight > 0)
        """).fetchone()
        table: pd.DataFrame = con.execute("SELECT * FROM results.diagnostics ORDER BY programme_id").df()
    yield dg.MaterializeResult(asset_key=EFFECTS, metadata={
        "programmes": len(programme_ids),
        "programmes estimated": estimated,
        "programmes not estimated": summary[0] or "none",
        "max |SMD| after matching": dg.MetadataValue.float(summary[1]) if summary[1] is not None else "none",
        "participants matched": summary[2],
    })
    yield dg.MaterializeResult(asset_key=SURVIVAL, metadata={"programmes": estimated})
    yield dg.MaterializeResult(
        asset_key=diagnostics.DIAGNOSTICS,
        metadata={"programmes": len(programme_ids),
                  "withheld": int(table.loc[table["status"] == diagnostics.FAIL, "programme_id"].nunique())},
        check_results=diagnostics.check_results(table))
    yield dg.MaterializeResult(asset_key=SUBGROUP_EFFECTS, metadata={"programmes": estimated})
