"""Recovery: does the whole pipeline find the effects the generator planted?

For each seed, generates an extract, runs every asset of the pipeline on it (as `desist run`
does) and prints, per programme, the matched 12-month proven-reoffending effect and its 95% CI
next to the true effect on the participants (from both potential outcomes, in
ground_truth.json), and the matched hazard ratio next to the marginal hazard ratio the
generator computed. Ends with the coverage of both 95% CIs and the mean error, over all seeds
and programmes.

Usage::

    python benchmarks/recovery.py [--seeds 10] [--first-seed 1] [--people 20000]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from desist.config import Settings, load_settings, write_settings  # noqa: E402
from desist.generate import write_extract  # noqa: E402


def run_pipeline_on_extract(folder: Path, seed: int, people: int, **generate_options) -> Settings:
    """Generate an extract in folder/landing and run every asset and check on it, as `desist run` does."""
    import dagster as dg

    from pipelines.stages import run_evaluation

    landing = folder / "landing"
    write_extract(landing, people=people, seed=seed, **generate_options)
    config_file = write_settings(folder, landing)
    with dg.DagsterInstance.local_temp(str(folder / "dagster_home")) as instance:
        result = run_evaluation(str(config_file), instance)
    if not result.success:
        raise SystemExit(f"seed {seed}: the run failed: {result.reason}")
    return load_settings(config_file)


def run_seed(folder: Path, seed: int, people: int) -> pd.DataFrame:
    settings = run_pipeline_on_extract(folder, seed, people)
    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        effects = con.sql("""
            SELECT programme_id, difference, ci_lower, ci_upper FROM results.effects
            WHERE measure = 'reoffended' AND window_months = 12 AND estimator = 'matched'""").df()
        hazard = con.sql("""
            SELECT programme_id, hr AS hazard_ratio, hr_lower, hr_upper FROM results.cox
            WHERE model = 'matched'""").df()
    truth = json.loads((settings.paths.landing / "ground_truth.json").read_text())["programmes"]
    table = effects.merge(hazard, on="programme_id", how="left")
    table["true_effect"] = table["programme_id"].map(lambda p: truth[p]["reoffending_rate_12m"]["effect"])
    table["true_hr"] = table["programme_id"].map(lambda p: truth[p]["marginal_hazard_ratio"])
    table.insert(0, "seed", seed)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--people", type=int, default=20_000)
    args = parser.parse_args()

    tables = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            table = run_seed(Path(folder), seed, args.people)
        tables.append(table)
        print(f"seed {seed} ({time.perf_counter() - started:.1f} s)")
        print(table.drop(columns="seed").to_string(index=False, float_format=lambda v: f"{v:+.3f}"))
    every = pd.concat(tables, ignore_index=True)
    effect_covered = (every["ci_lower"] <= every["true_effect"]) & (every["true_effect"] <= every["ci_upper"])
    hr_covered = (every["hr_lower"] <= every["true_hr"]) & (every["true_hr"] <= every["hr_upper"])
    print(f"\n{len(every)} programme estimates over {args.seeds} extracts of {args.people:,} people")
    print(f"12-month rate effect: 95% CI coverage {effect_covered.mean():.1%}, "
          f"mean error {(every['difference'] - every['true_effect']).mean():+.4f}")
    log_error = np.log(every["hazard_ratio"]) - np.log(every["true_hr"])
    print(f"matched hazard ratio: 95% CI coverage {hr_covered.mean():.1%}, mean log error {log_error.mean():+.4f}")
    by_programme = every.assign(error=every["difference"] - every["true_effect"], covered=effect_covered)
    summary = by_programme.groupby("programme_id").agg(mean_error=("error", "mean"), coverage=("covered", "mean"))
    print(summary.to_string(formatters={"mean_error": "{:+.4f}".format, "coverage": "{:.0%}".format}))


if __name__ == "__main__":
    main()
