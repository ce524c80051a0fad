"""Subgroup recovery: do the "Who benefits?" estimates find effects that differ by subgroup?

For each seed, generates an extract with effects planted to differ by risk-score band and sex
(``generate(..., subgroup_effects=True)``), runs the whole pipeline on it and sets every
subgroup estimate beside the exact effect on that subgroup's participants (both potential
outcomes of the same people, from the generator). Ends with the coverage of the 95% intervals
and the mean error per subgroup over all extracts and programmes, and the share of
heterogeneity tests below 0.05 per subgrouping variable.

Usage::

    python benchmarks/subgroups.py [--seeds 5] [--first-seed 1] [--people 20000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from desist.generate import generate, subgroup_truth  # noqa: E402
from recovery import run_pipeline_on_extract  # noqa: E402  (beside this script)


def run_seed(folder: Path, seed: int, people: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from pipelines.for_whom import participant_subgroups

    settings = run_pipeline_on_extract(folder, seed, people, subgroup_effects=True)
    participants = generate(people, seed, subgroup_effects=True).participants
    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        estimates = con.sql("SELECT * FROM results.subgroup_effects WHERE gate_status = 'ok'").df()
        tests = con.sql("SELECT * FROM results.subgroup_heterogeneity").df()
        truth = subgroup_truth(participants, participant_subgroups(con, settings))
    table = estimates.merge(truth, on=["programme_id", "variable", "level"], validate="one_to_one")
    return table.assign(seed=seed), tests.assign(seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--people", type=int, default=20_000)
    args = parser.parse_args()

    tables, tests = [], []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            table, test = run_seed(Path(folder), seed, args.people)
        tables.append(table)
        tests.append(test)
        covered = ((table["ci_lower"] <= table["effect"]) & (table["effect"] <= table["ci_upper"])).mean()
        print(f"seed {seed}: {len(table)} subgroup estimates, 95% CI coverage {covered:.0%} "
              f"({time.perf_counter() - started:.1f} s)")
    every = pd.concat(tables, ignore_index=True)
    every = every.assign(error=every["difference"] - every["effect"],
                         covered=(every["ci_lower"] <= every["effect"]) & (every["effect"] <= every["ci_upper"]))
    print(f"\n{len(every)} subgroup estimates over {args.seeds} extracts of {args.people:,} people "
          f"(effects planted by risk-score band and sex); 95% CI coverage {every['covered'].mean():.1%}")
    summary = every.groupby(["variable", "level"], sort=False).agg(
        estimates=("covered", "size"), coverage=("covered", "mean"), mean_error=("error", "mean"),
        mean_true_effect=("effect", "mean"), mean_estimate=("difference", "mean"))
    print(summary.to_string(formatters={"coverage": "{:.0%}".format, "mean_error": "{:+.4f}".format,
                                        "mean_true_effect": "{:+.4f}".format, "mean_estimate": "{:+.4f}".format}))
    heterogeneity = pd.concat(tests, ignore_index=True)
    print("\nheterogeneity tests with p < 0.05, by subgrouping variable:")
    print(heterogeneity.assign(significant=heterogeneity["p_value"] < 0.05).groupby("variable")["significant"]
          .agg(["size", "mean"]).to_string(formatters={"mean": "{:.0%}".format}))


if __name__ == "__main__":
    main()
