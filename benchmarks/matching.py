"""Benchmark: propensity fit and 1:1 nearest-neighbour matching at scale, beside pysmatch and R MatchIt.

Simulates 10,000 treated and 1,000,000 comparison people with 10 covariates (six numeric,
three binary, one categorical with five levels) and times desist's fit_propensity and
match_nearest (1:1, caliper 0.2 SD of the logit) — median (min) of ``--repeat`` runs — then
assess_balance, and reports peak memory (maximum resident set size of the process after
desist's runs, before any comparison). It then
- checks the fitted linear predictor against statsmodels' GLM binomial fitted to the same
  data with its own design matrix (largest absolute difference at most 1e-8);
- times pysmatch 2.1.2 doing the same work: one unbalanced logistic model, then 1:1
  nearest matching without replacement on the logit of its scores within 0.2 SD
  (``Matcher.fit_scores(balance=False, nmodels=1)``, ``predict_scores()``, ``match()``);
- times R MatchIt: ``matchit(distance = "glm", link = "linear.logit", caliper = 0.2)`` and
  ``summary()``, timed inside R (reading the CSV excluded), when ``Rscript`` has MatchIt;
and judges every figure against its target: desist's fit + match under 0.7 s (wall, median),
at least 30 times faster than pysmatch and at least 80 times faster than MatchIt on the same
data. The exit status is 1 when a target is missed.

pysmatch is a benchmark-only dependency (``pip install pysmatch==2.1.2``); without it the
comparison is skipped with a note. pysmatch finds candidates with scikit-learn's
``radius_neighbors``, which holds every control within the caliper of every treated person
in memory: about 740 million pairs (12 GB) at 10,000 x 1,000,000. Before running it the
benchmark counts those pairs on desist's scores; when they would need more than
``--pysmatch-memory-gb`` it compares on the largest slice that fits — all treated and the
first N comparison people — and says so. ``--pysmatch-controls N`` (and likewise
``--r-controls N``) chooses the slice; desist is re-timed on the same slice, so every ratio is
between runs on identical data.

Usage::

    python benchmarks/matching.py [--treated 10000] [--controls 1000000] [--repeat 3]
                                  [--no-r] [--r-controls N] [--no-pysmatch]
                                  [--pysmatch-controls N] [--pysmatch-memory-gb 4]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
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
CALIPER = 0.2

TARGET_SECONDS = 0.7
TARGET_PYSMATCH_RATIO = 30.0
TARGET_MATCHIT_RATIO = 80.0
TARGET_LP_DIFFERENCE = 1e-8
# pysmatch's radius_neighbors keeps a float64 distance and an int64 index per pair within the
# caliper (measured: about 14 bytes a pair over the baseline).
PAIR_BYTES = 16


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


def first_controls(data: pd.DataFrame, n_controls: int | None) -> pd.DataFrame:
    """All treated people and the first ``n_controls`` comparison people (all when None)."""
    control = (data["treat"] == 0).to_numpy()
    if n_controls is None or n_controls >= control.sum():
        return data
    keep = ~control | (np.cumsum(control) <= n_controls)
    return data.loc[keep].reset_index(drop=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timings:
    """Wall-clock and CPU seconds per stage over repeated runs (CPU time sums all threads;
    on a busy shared machine it shows what a stage would take with the cores to itself)."""

    def __init__(self):
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    def record(self, stage: str, wall: float, cpu: float) -> None:
        self.wall.setdefault(stage, []).append(wall)
        self.cpu.setdefault(stage, []).append(cpu)

    def median(self, stage: str) -> float:
        return float(np.median(self.wall[stage]))

    def line(self, stage: str) -> str:
        wall, cpu = self.wall[stage], self.cpu[stage]
        return (
            f"  {stage:<18} {np.median(wall):7.3f}s ({min(wall):.3f}s)  cpu {np.median(cpu):7.3f}s ({min(cpu):.3f}s)"
        )


def timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def run_desist(data: pd.DataFrame, repeat: int, with_balance: bool = True):
    """Time fit and match ``repeat`` times (and balance once); returns timings and the last fit."""
    timings = Timings()
    treat = data["treat"].to_numpy()
    for _ in range(repeat):
        fit, wall, cpu = timed(lambda: fit_propensity(data, "treat", COVARIATES, categorical=CATEGORICAL))
        timings.record("propensity fit", wall, cpu)
        match, wall_m, cpu_m = timed(lambda: match_nearest(treat, fit.linear_predictor, ratio=1, caliper=CALIPER))
        timings.record("matching", wall_m, cpu_m)
        timings.record("fit + match", wall + wall_m, cpu + cpu_m)
    if with_balance:
        balance, wall, cpu = timed(
            lambda: assess_balance(
                data, treat, COVARIATES, weights=match.weights, categorical=CATEGORICAL, distance=fit.linear_predictor
            )
        )
        timings.record("balance", wall, cpu)
        print(f"  {balance.summary()}".replace("\n", "\n  "))
    print(f"  desist: {fit.iterations} Newton passes; {match.summary()}".replace("\n", "\n  "))
    return timings, fit


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def check_against_statsmodels(data: pd.DataFrame, linear_predictor: np.ndarray) -> tuple[float, float]:
    """Largest |difference| between desist's linear predictor and statsmodels' GLM binomial
    fitted to a design built here with pandas (R treatment contrasts); and its seconds."""
    import statsmodels.api as sm

    start = time.perf_counter()
    exog = pd.concat(
        [
            pd.Series(1.0, index=data.index, name="(Intercept)"),
            data[NUMERIC + BINARY].astype(float),
            pd.get_dummies(data["region"], prefix="region", drop_first=True, dtype=float),
        ],
        axis=1,
    )
    reference = sm.GLM(data["treat"].astype(float), exog, family=sm.families.Binomial()).fit(tol=1e-14, maxiter=100)
    expected = exog.to_numpy() @ reference.params.to_numpy()
    return float(np.abs(expected - linear_predictor).max()), time.perf_counter() - start


def pysmatch_pairs(data: pd.DataFrame, linear_predictor: np.ndarray) -> int:
    """Treated-control pairs within the caliper: what radius_neighbors keeps in memory."""
    treated = (data["treat"] == 1).to_numpy()
    radius = CALIPER * linear_predictor.std(ddof=1)
    controls = np.sort(linear_predictor[~treated])
    upper = np.searchsorted(controls, linear_predictor[treated] + radius, side="right")
    lower = np.searchsorted(controls, linear_predictor[treated] - radius, side="left")
    return int((upper - lower).sum())


def run_pysmatch(data: pd.DataFrame) -> dict[str, float]:
    """pysmatch 2.1.2 doing desist's work: one logistic model, 1:1 nearest on the logit, caliper 0.2 SD."""
    from pysmatch.Matcher import Matcher

    logging.getLogger().setLevel(logging.ERROR)  # pysmatch logs every step
    test = data.loc[data["treat"] == 1].drop(columns="treat")
    control = data.loc[data["treat"] == 0].drop(columns="treat")

    def fit():
        matcher = Matcher(test, control, yvar="treat")
        matcher.fit_scores(balance=False, nmodels=1, model_type="linear")
        matcher.predict_scores()
        return matcher

    def match(matcher):
        scores = matcher.data["scores"].clip(1e-15, 1 - 1e-15)
        matcher.data["scores"] = np.log(scores / (1 - scores))
        matcher.match(threshold=CALIPER * matcher.data["scores"].std(), nmatches=1, method="min", replacement=False)
        return matcher

    matcher, fit_wall, fit_cpu = timed(fit)
    matcher, match_wall, match_cpu = timed(lambda: match(matcher))
    print(f"  pysmatch matched {matcher.matched_data['match_id'].nunique()} treated")
    return {"fit": fit_wall, "match": match_wall, "fit + match": fit_wall + match_wall, "fit + match cpu": fit_cpu + match_cpu}


R_SCRIPT = r"""
suppressPackageStartupMessages(library(MatchIt))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = TRUE)
f <- treat ~ age + prior_offences + prior_custody + years_since_first + risk_score +
  sentence_months + female + employed + housed + region
p0 <- proc.time()
t0 <- p0[["elapsed"]]
m <- matchit(f, data = d, method = "nearest", distance = "glm", link = "linear.logit",
             ratio = 1L, caliper = 0.2)
p1 <- proc.time()
t1 <- p1[["elapsed"]]
s <- summary(m, pair.dist = FALSE)
t2 <- proc.time()[["elapsed"]]
treated_rows <- as.integer(rownames(m$match.matrix))
control_rows <- as.integer(m$match.matrix[, 1])
gap <- abs(m$distance[treated_rows] - m$distance[control_rows])
cpu <- (p1[["user.self"]] + p1[["sys.self"]]) - (p0[["user.self"]] + p0[["sys.self"]])
cat(sprintf("matchit %.3f\nmatchit_cpu %.3f\nsummary %.3f\nmatched %d\nover_caliper %d\n", t1 - t0, cpu, t2 - t1,
            sum(m$weights > 0 & d$treat == 1), sum(gap > m$caliper, na.rm = TRUE)))
"""


def r_has_matchit() -> bool:
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(["Rscript", "-e", "library(MatchIt)"], capture_output=True)
    return probe.returncode == 0


def run_r(data: pd.DataFrame) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        csv, script = Path(folder) / "data.csv", Path(folder) / "bench.R"
        data.to_csv(csv, index=False)
        script.write_text(R_SCRIPT)
        out = subprocess.run(["Rscript", str(script), str(csv)], capture_output=True, text=True, check=True)
    values = dict(line.split() for line in out.stdout.strip().splitlines())
    print(f"  R matched {values['matched']} treated")
    if int(values["over_caliper"]):
        print(f"  note: {values['over_caliper']} of R's pairs lie farther apart than the caliper (MatchIt 4.5.1 does not "
              "always enforce it: kosukeimai/MatchIt#163), so R may match treated people desist leaves unmatched")
    return {"fit + match": float(values["matchit"]), "fit + match cpu": float(values["matchit_cpu"]),
            "balance": float(values["summary"])}


def slice_label(data: pd.DataFrame) -> str:
    n_treated = int((data["treat"] == 1).sum())
    return f"{n_treated:,} treated x {len(data) - n_treated:,} comparison"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--treated", type=int, default=10_000)
    parser.add_argument("--controls", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="desist runs to time (median and min reported)")
    parser.add_argument("--no-r", action="store_true", help="skip the R MatchIt comparison")
    parser.add_argument("--r-controls", type=int, default=None, help="comparison people in the R slice")
    parser.add_argument("--no-pysmatch", action="store_true", help="skip the pysmatch comparison")
    parser.add_argument("--pysmatch-controls", type=int, default=None, help="comparison people in the pysmatch slice")
    parser.add_argument("--pysmatch-memory-gb", type=float, default=4.0,
                        help="memory pysmatch's neighbour lists may take; over it, compare on a slice")
    args = parser.parse_args()

    data = simulate(args.treated, args.controls)
    print(f"{slice_label(data)}, {len(COVARIATES)} covariates, 1:1 nearest, caliper {CALIPER} SD of the logit")
    print(f"desist, {args.repeat} runs: median (min)")
    timings, fit = run_desist(data, args.repeat)
    for stage in ["propensity fit", "matching", "fit + match", "balance"]:
        print(timings.line(stage))
    print(f"  peak memory        {peak_rss_mb():7.0f} MB (max resident set size, data included)")
    print(f"  load average over the last minute: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    results: list[tuple[str, bool]] = []
    seconds = timings.median("fit + match")
    cpu = float(np.median(timings.cpu["fit + match"]))
    results.append((f"desist fit + match {seconds:.3f} s < {TARGET_SECONDS} s (wall, median; cpu {cpu:.3f} s)",
                    seconds < TARGET_SECONDS))

    print("statsmodels GLM binomial on the same data (design built with pandas):")
    difference, took = check_against_statsmodels(data, fit.linear_predictor)
    print(f"  largest |linear predictor difference| {difference:.2e} ({took:.1f} s)")
    results.append(
        (f"linear predictor equals statsmodels' to {difference:.1e} <= {TARGET_LP_DIFFERENCE:g}", difference <= TARGET_LP_DIFFERENCE)
    )

    desist_on: dict[int, tuple[float, float]] = {len(data): (seconds, cpu)}

    def desist_seconds(part: pd.DataFrame) -> tuple[float, float]:
        """desist's fit + match on ``part``: median wall and CPU seconds."""
        if len(part) not in desist_on:
            print(f"desist on the slice ({slice_label(part)}), {args.repeat} runs:")
            part_timings, _ = run_desist(part, args.repeat, with_balance=False)
            print(part_timings.line("fit + match"))
            desist_on[len(part)] = (part_timings.median("fit + match"), float(np.median(part_timings.cpu["fit + match"])))
        return desist_on[len(part)]

    def ratio_label(other: str, theirs: dict[str, float], part: pd.DataFrame, target: float) -> tuple[str, bool]:
        wall, cpu_seconds = desist_seconds(part)
        ratio = theirs["fit + match"] / wall
        where = "" if part is data else f" on the slice {slice_label(part)}"
        return (f"{ratio:.0f}x faster than {other}{where} (target >= {target:g}x; wall; "
                f"cpu {theirs['fit + match cpu'] / cpu_seconds:.0f}x)", ratio >= target)

    if args.no_pysmatch:
        print("pysmatch comparison skipped")
    else:
        if importlib.util.find_spec("pysmatch") is None:
            print("pysmatch comparison skipped: pysmatch is not installed (pip install pysmatch==2.1.2)")
            results.append(("at least 30x faster than pysmatch: not measured (pysmatch not installed)", False))
        else:
            part = first_controls(data, args.pysmatch_controls)
            part_fit = fit if part is data else fit_propensity(part, "treat", COVARIATES, categorical=CATEGORICAL)
            pairs = pysmatch_pairs(part, part_fit.linear_predictor)
            needed_gb = pairs * PAIR_BYTES / 1e9
            if needed_gb > args.pysmatch_memory_gb and args.pysmatch_controls is None:
                # Pairs grow in proportion to the comparison group: take the largest slice that fits.
                n_controls = int((part["treat"] == 0).sum() * 0.9 * args.pysmatch_memory_gb / needed_gb) // 10_000 * 10_000
                print(f"pysmatch at full size would hold {pairs:,} pairs (~{needed_gb:.1f} GB, over --pysmatch-memory-gb "
                      f"{args.pysmatch_memory_gb:g}): compared on a slice of {n_controls:,} comparison people instead")
                part = first_controls(data, n_controls)
                part_fit = fit_propensity(part, "treat", COVARIATES, categorical=CATEGORICAL)
                pairs = pysmatch_pairs(part, part_fit.linear_predictor)
                needed_gb = pairs * PAIR_BYTES / 1e9
            print(f"pysmatch 2.1.2 on {slice_label(part)} ({pairs:,} pairs within the caliper, ~{needed_gb:.1f} GB):")
            if needed_gb > args.pysmatch_memory_gb:
                print(f"  not run: its neighbour lists would need ~{needed_gb:.1f} GB, over --pysmatch-memory-gb "
                      f"{args.pysmatch_memory_gb:g}; pass --pysmatch-controls N to compare on a slice")
                results.append(("at least 30x faster than pysmatch: not measured (too much memory)", False))
            else:
                timed_pysmatch = run_pysmatch(part)
                for stage, value in timed_pysmatch.items():
                    print(f"  {stage:<18} {value:7.2f} s")
                results.append(ratio_label("pysmatch", timed_pysmatch, part, TARGET_PYSMATCH_RATIO))

    if args.no_r:
        print("R MatchIt comparison skipped")
    elif not r_has_matchit():
        print("R MatchIt comparison skipped: Rscript with MatchIt not found")
        results.append(("at least 80x faster than R MatchIt: not measured (no Rscript with MatchIt)", False))
    else:
        part = first_controls(data, args.r_controls)
        print(f"R MatchIt on {slice_label(part)} (timed inside R, CSV reading excluded):")
        r_timings = run_r(part)
        for stage, value in r_timings.items():
            print(f"  {stage:<18} {value:7.2f} s")
        results.append(ratio_label("R MatchIt", r_timings, part, TARGET_MATCHIT_RATIO))
        if part is data:
            print(f"  balance: R summary() / desist assess_balance = "
                  f"{r_timings['balance'] / timings.median('balance'):.1f}x")

    print("Targets:")
    for label, passed in results:
        print(f"  {verdict(passed)}  {label}")
    return 0 if all(passed for _, passed in results) else 1


if __name__ == "__main__":
    sys.exit(main())
