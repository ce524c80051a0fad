"""Benchmark: propensity fit, nearest-neighbour matching and balance at scale.

Simulates 10,000 treated and 1,000,000 comparison people with 10 covariates (six
numeric, three binary, one categorical with five levels), then times
fit_propensity -> match_nearest (1:1, caliper 0.2 SD) -> assess_balance and reports peak
memory (maximum resident set size of the process). When ``Rscript`` with MatchIt is on
the PATH, the same data go through ``matchit(distance = "glm", link = "linear.logit",
caliper = 0.2)`` and ``summary()`` in R (timed inside R, excluding reading the CSV) and
the ratio of times is printed.

Usage::

    python benchmarks/matching.py [--treated 10000] [--controls 1000000] [--ratio 1]
                                  [--no-r] [--r-controls N]

``--r-controls`` runs R on the first N comparison people only (all treated kept) when the
full data would take R too long; the ratio is then against Python on the same slice.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.balance import assess_balance  # noqa: E402
from models.matching import match_nearest  # noqa: E402
from models.propensity import fit_propensity  # noqa: E402

NUMERIC = ["age", "prior_offences", "prior_custody", "years_since_first", "risk_score", "sentence_months"]
BINARY = ["female", "employed", "housed"]
CATEGORICAL = ["region"]
COVARIATES = NUMERIC + BINARY + CATEGORICAL


def simulate(n_treated: int, n_controls: int, seed: int = 1) -> pd.DataFrame:
    """Treated and comparison groups whose covariate distributions differ (confounding)."""
    rng = np.random.default_rng(seed)
    n = n_treated + n_controls
    treated = np.zeros(n, dtype=bool)
    treated[rng.choice(n, n_treated, replace=False)] = True
    shift = treated.astype(float)
    data = pd.DataFrame(
        {
            "treat": treated.astype(np.int8),
            "age": rng.normal(31 - 3 * shift, 8),
            "prior_offences": rng.poisson(3 + 1.5 * shift) + rng.random(n),
            "prior_custody": rng.poisson(0.8 + 0.4 * shift) + rng.random(n),
            "years_since_first": rng.gamma(2 + 0.5 * shift, 3),
            "risk_score": rng.normal(0.5 * shift, 1),
            "sentence_months": rng.lognormal(2 + 0.2 * shift, 0.5),
            "female": rng.binomial(1, 0.18 + 0.05 * shift),
            "employed": rng.binomial(1, 0.35 - 0.1 * shift),
            "housed": rng.binomial(1, 0.8 - 0.1 * shift),
            "region": pd.Categorical(rng.choice(["East", "London", "North", "South", "Wales"], n)),
        }
    )
    return data


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Stopwatch:
    """Wall-clock and CPU seconds of each stage (CPU time sums all threads; on a busy
    shared machine it shows what the stage would take with the cores to itself)."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._start = (time.perf_counter(), time.process_time())
        self._mark = self._start

    def lap(self, stage: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.wall[stage], self.cpu[stage] = now[0] - self._mark[0], now[1] - self._mark[1]
        self._mark = now

    def finish(self) -> None:
        self.wall["total"] = self._mark[0] - self._start[0]
        self.cpu["total"] = self._mark[1] - self._start[1]


def run_python(data: pd.DataFrame, ratio: int) -> Stopwatch:
    watch = Stopwatch()
    fit = fit_propensity(data, "treat", COVARIATES, categorical=CATEGORICAL)
    watch.lap("propensity fit")
    match = match_nearest(data["treat"].to_numpy(), fit.linear_predictor, ratio=ratio, caliper=0.2)
    watch.lap("matching")
    balance = assess_balance(
        data, data["treat"].to_numpy(), COVARIATES, weights=match.weights, categorical=CATEGORICAL, distance=fit.linear_predictor
    )
    watch.lap("balance")
    watch.finish()
    print(f"  {match.summary()}".replace("\n", "\n  "))
    print(f"  {balance.summary()}".replace("\n", "\n  "))
    return watch


R_SCRIPT = r"""
suppressPackageStartupMessages(library(MatchIt))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = TRUE)
f <- treat ~ age + prior_offences + prior_custody + years_since_first + risk_score +
  sentence_months + female + employed + housed + region
t0 <- proc.time()[["elapsed"]]
m <- matchit(f, data = d, method = "nearest", distance = "glm", link = "linear.logit",
             ratio = as.integer(args[2]), caliper = 0.2)
t1 <- proc.time()[["elapsed"]]
s <- summary(m, pair.dist = FALSE)
t2 <- proc.time()[["elapsed"]]
cat(sprintf("matchit %.3f\nsummary %.3f\nmatched %d\n", t1 - t0, t2 - t1, sum(m$weights > 0 & d$treat == 1)))
"""


def r_has_matchit() -> bool:
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(["Rscript", "-e", "library(MatchIt)"], capture_output=True)
    return probe.returncode == 0


def run_r(data: pd.DataFrame, ratio: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        csv, script = Path(folder) / "data.csv", Path(folder) / "bench.R"
        data.to_csv(csv, index=False)
        script.write_text(R_SCRIPT)
        out = subprocess.run(["Rscript", str(script), str(csv), str(ratio)], capture_output=True, text=True, check=True)
    values = dict(line.split() for line in out.stdout.strip().splitlines())
    print(f"  R matched {values['matched']} treated")
    return {"matchit (fit + match)": float(values["matchit"]), "summary (balance)": float(values["summary"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--treated", type=int, default=10_000)
    parser.add_argument("--controls", type=int, default=1_000_000)
    parser.add_argument("--ratio", type=int, default=1)
    parser.add_argument("--no-r", action="store_true", help="skip the R MatchIt comparison")
    parser.add_argument("--r-controls", type=int, default=None, help="comparison people in the R slice")
    args = parser.parse_args()

    data = simulate(args.treated, args.controls)
    print(f"{args.treated:,} treated, {args.controls:,} comparison, {len(COVARIATES)} covariates, ratio {args.ratio}:1, caliper 0.2 SD")
    watch = run_python(data, args.ratio)
    print(f"  {'stage':<16} {'wall':>8} {'cpu':>8}")
    for stage in watch.wall:
        print(f"  {stage:<16} {watch.wall[stage]:7.2f}s {watch.cpu[stage]:7.2f}s")
    print(f"  peak memory      {peak_rss_mb():7.0f} MB (max resident set size)")
    print(f"  load average over the last minute: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    targets = {"matching": 2.0, "total": 15.0}
    for stage, target in targets.items():
        verdict = "within" if watch.wall[stage] < target else "OVER"
        print(f"  {stage} target < {target:g} s (wall): {verdict}")

    if args.no_r or not r_has_matchit():
        print("R MatchIt comparison skipped" + ("" if args.no_r else ": Rscript with MatchIt not found"))
        return
    r_data = data
    if args.r_controls is not None and args.r_controls < args.controls:
        keep = (data["treat"] == 1).to_numpy() | (np.cumsum(data["treat"].to_numpy() == 0) <= args.r_controls)
        r_data = data.loc[keep].reset_index(drop=True)
        print(f"R slice: all treated and the first {args.r_controls:,} comparison people; Python re-run on the same slice")
        watch = run_python(r_data, args.ratio)
    print("R MatchIt (timed inside R, CSV reading excluded):")
    r_timings = run_r(r_data, args.ratio)
    for stage, seconds in r_timings.items():
        print(f"  {stage:<22} {seconds:8.2f} s")
    python_fit_match = watch.wall["propensity fit"] + watch.wall["matching"]
    print(f"  ratio R / Python (wall), fit + match: {r_timings['matchit (fit + match)'] / python_fit_match:.1f}x")
    print(f"  ratio R / Python (wall), balance:     {r_timings['summary (balance)'] / watch.wall['balance']:.1f}x")


if __name__ == "__main__":
    main()
