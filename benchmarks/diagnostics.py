"""Diagnostics coverage: how often does each study diagnostic fail when the design is sound, and
how often when hidden confounding is planted?

For each seed, generates a small extract twice — as the generator draws it (selection on
recorded characteristics only: matching can remove the bias) and with
``hidden_confounding`` (selection on a characteristic the extract does not hold) — runs the
analysis SQL in an in-memory DuckDB and the models (matching, effects, diagnostics) on every
programme, without Dagster. Prints, per diagnostic, the share of programme evaluations in which
it failed (or warned) in each world, the share whose headline would be withheld, and timings.

Usage::

    python benchmarks/diagnostics.py [--seeds 100] [--first-seed 1] [--people 8000] [--strength 1.5]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from desist import analysis, warehouse  # noqa: E402
from desist.config import Settings, load_settings, write_settings  # noqa: E402
from desist.contract import TABLES  # noqa: E402
from desist.generate import generate  # noqa: E402
from models.diagnostics import Thresholds  # noqa: E402
from models.evaluation import MatchingSpec, evaluate_diagnostics, evaluate_effects  # noqa: E402

ANALYSED = """
    SELECT covariates.*, headline.reoffended, controls.pre_offences_12, controls.pre_offended_24_12
    FROM analysis.covariates AS covariates
    JOIN analysis.measures AS headline USING (programme_id, person_id, index_date)
    JOIN analysis.negative_controls AS controls USING (programme_id, person_id, index_date)
    WHERE covariates.programme_id = $programme_id AND covariates.covariates_complete
      AND headline.window_months = getvariable('headline_months') AND headline.complete
    ORDER BY covariates.person_id
"""


def stage(con: duckdb.DuckDBPyConnection, tables: dict[str, pd.DataFrame]) -> None:
    """Generated tables straight into typed staging tables (no files, no ingest)."""
    for name, table in TABLES.items():
        columns = ", ".join(f"{c.name} {c.duckdb_type}" for c in table.columns)
        con.execute(f"CREATE OR REPLACE TABLE staging.{name} ({columns}, source_file VARCHAR, source_row BIGINT)")
        con.register("frame", tables[name])
        con.execute(f"INSERT INTO staging.{name} BY NAME SELECT * FROM frame")
        con.unregister("frame")


def evaluate_extract(tables: dict[str, pd.DataFrame], settings: Settings) -> pd.DataFrame:
    """One row per programme and diagnostic: ``programme_id, diagnostic, value, status``."""
    covariates = settings.covariates
    spec = MatchingSpec(covariates.all, covariates.categorical, settings.matching.ratio, settings.matching.replace,
                        settings.matching.caliper, settings.matching.exact)
    thresholds = Thresholds(**settings.diagnostics.model_dump())
    con = duckdb.connect()
    for schema in warehouse.SCHEMAS:
        con.execute(f"CREATE SCHEMA {schema}")
    warehouse.set_variables(con, settings)
    stage(con, tables)
    analysis.build_analysis(con)
    rows = []
    for (programme_id,) in con.execute("SELECT programme_id FROM staging.programmes ORDER BY 1").fetchall():
        people = con.execute(ANALYSED, {"programme_id": programme_id}).df()
        measures = con.execute(
            "SELECT person_id, window_months, reoffended, frequency, days_to_first, custodial_reoffence "
            "FROM analysis.measures WHERE programme_id = $programme_id", {"programme_id": programme_id}).df()
        result = evaluate_effects(programme_id, people.drop(columns=["reoffended"]), measures, spec,
                                  windows=settings.follow_up.windows_months,
                                  headline_window=settings.follow_up.headline_months,
                                  min_treated=thresholds.min_participants)
        if result.status != "ok":
            rows.append({"programme_id": programme_id, "diagnostic": "estimation", "value": float("nan"),
                         "status": "fail"})
            continue
        diagnostics = evaluate_diagnostics(people, result.matched_sets, result.balance, result.effects, spec,
                                           settings.follow_up.headline_months, thresholds)
        rows += diagnostics.table.assign(programme_id=programme_id)[
            ["programme_id", "diagnostic", "value", "status"]].to_dict("records")
    con.close()
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="seeds; each gives one sound and one confounded extract")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--people", type=int, default=8000)
    parser.add_argument("--strength", type=float, default=1.5, help="hidden_confounding of the confounded extracts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(write_settings(Path(folder), Path(folder)))
    parts = []
    tracemalloc.start()
    started = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for world, strength in (("sound", 0.0), ("confounded", args.strength)):
            table = evaluate_extract(generate(args.people, seed, hidden_confounding=strength).tables, settings)
            parts.append(table.assign(seed=seed, world=world))
        if (seed - args.first_seed + 1) % 10 == 0:
            print(f"  {seed - args.first_seed + 1} seeds, {time.perf_counter() - started:.0f} s", flush=True)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    results = pd.concat(parts, ignore_index=True)
    evaluations = results.groupby("world")[["seed", "programme_id"]].apply(
        lambda f: len(f.drop_duplicates()))
    print(f"\n{2 * args.seeds} extracts of {args.people:,} people ({args.seeds} sound, {args.seeds} with "
          f"hidden_confounding={args.strength}); {int(evaluations.sum())} programme evaluations; "
          f"{seconds:.0f} s, {seconds / (2 * args.seeds):.2f} s per extract; peak traced memory "
          f"{peak / 2**20:.0f} MiB\n")
    # Shares over every programme evaluation of the world (a programme that could not be
    # estimated has only its 'estimation' row).
    flagged = (results.assign(fail=results["status"] == "fail", warning=results["status"] == "warning")
               .groupby(["diagnostic", "world"])[["fail", "warning"]].sum().unstack("world").fillna(0))
    share = flagged / evaluations.reindex(flagged.columns.get_level_values("world")).to_numpy()
    share.columns = [f"{status} ({world})" for status, world in share.columns]
    print("Share of programme evaluations (%) in which each diagnostic failed or warned:")
    print((100 * share).round(1).to_string())
    withheld = results.groupby(["world", "seed", "programme_id"])["status"].apply(lambda s: (s == "fail").any())
    print("\nHeadline withheld (any diagnostic failed), share of programme evaluations:")
    print((100 * withheld.groupby("world").mean()).round(1).to_string())


if __name__ == "__main__":
    main()
