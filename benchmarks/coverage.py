"""Coverage check: does the matched 95% CI cover the true effect 95% of the time?

Simulates many small cohorts with confounded selection into a programme and a binary
12-month reoffending outcome. Every simulated person has both potential outcomes — Y0
(reoffends without the programme) and Y1 (with it) — drawn from known probabilities, so
the true effect on the matched treated people is known exactly:

* SATT: mean of Y1 - Y0 over the matched treated people (realised potential outcomes);
* CATT: mean of P(Y1) - P(Y0) over the same people (expected potential outcomes).

Each cohort goes through fit_propensity -> match_nearest (1:1, caliper 0.2 SD) ->
estimate_effect, and the script prints how often the 95% CI covers each truth, the mean
bias and the mean SE against the spread of the estimates.

Usage::

    python benchmarks/coverage.py [--cohorts 200] [--treated 300] [--controls 3000] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.effects import estimate_effect  # noqa: E402
from models.matching import match_propensity  # noqa: E402
from models.propensity import fit_propensity  # noqa: E402

COVARIATES = ["age", "prior_offences", "risk_score", "employed", "region"]


def simulate_cohort(rng: np.random.Generator, n_treated: int, n_controls: int) -> pd.DataFrame:
    """People with covariates, programme participation and both potential outcomes."""
    n = n_treated + n_controls
    data = pd.DataFrame(
        {
            "age": rng.normal(32, 9, n),
            "prior_offences": rng.poisson(3, n).astype(float),
            "risk_score": rng.normal(0, 1, n),
            "employed": rng.binomial(1, 0.35, n),
            "region": rng.choice(["North", "South", "Wales"], n),
        }
    )
    # Selection: younger, more prior offences, higher risk and unemployed people join more.
    selection = (
        -0.04 * (data.age - 32) + 0.25 * (data.prior_offences - 3) + 0.6 * data.risk_score
        - 0.5 * data.employed + 0.3 * (data.region == "North")
    )
    # Exactly n_treated participants, drawn with probability rising in `selection`
    # (Gumbel top-k sampling without replacement).
    keys = selection + rng.gumbel(size=n)
    treated = np.zeros(n, dtype=bool)
    treated[np.argsort(-keys)[:n_treated]] = True
    data["treat"] = treated.astype(int)
    # Outcome model shares the confounders; the programme lowers the log-odds of
    # reoffending, more so for higher-risk people (a heterogeneous effect).
    base = -0.9 - 0.03 * (data.age - 32) + 0.2 * (data.prior_offences - 3) + 0.5 * data.risk_score - 0.4 * data.employed
    effect = -0.45 - 0.15 * data.risk_score
    data["p0"] = 1 / (1 + np.exp(-base))
    data["p1"] = 1 / (1 + np.exp(-(base + effect)))
    data["y0"] = rng.binomial(1, data.p0)
    data["y1"] = rng.binomial(1, data.p1)
    data["reoffended"] = np.where(treated, data.y1, data.y0)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cohorts", type=int, default=200)
    parser.add_argument("--treated", type=int, default=300)
    parser.add_argument("--controls", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    rows = []
    for _ in range(args.cohorts):
        data = simulate_cohort(rng, args.treated, args.controls)
        fit = fit_propensity(data, "treat", COVARIATES)
        match = match_propensity(data, fit.linear_predictor, "treat", caliper=0.2)
        result = estimate_effect(data, "reoffended", match, treatment="treat", covariates=COVARIATES)
        matched_treated = match.matched & match.treated
        estimate = result.matched
        rows.append(
            {
                "estimate": estimate.difference,
                "se": estimate.se,
                "ci_low": estimate.ci_low,
                "ci_high": estimate.ci_high,
                "satt": float((data.y1 - data.y0)[matched_treated].mean()),
                "catt": float((data.p1 - data.p0)[matched_treated].mean()),
                "naive": result.naive.difference,
                "matched_treated": int(matched_treated.sum()),
            }
        )
    runs = pd.DataFrame(rows)
    elapsed = time.perf_counter() - start

    print(f"{args.cohorts} cohorts of {args.treated} treated and {args.controls} comparison people "
          f"(1:1 matching, caliper 0.2 SD), {elapsed:.1f} s")
    print(f"  matched treated per cohort: mean {runs.matched_treated.mean():.0f}, min {runs.matched_treated.min()}")
    for truth in ("satt", "catt"):
        covered = (runs.ci_low <= runs[truth]) & (runs[truth] <= runs.ci_high)
        bias = runs.estimate - runs[truth]
        mc_se = np.sqrt(covered.mean() * (1 - covered.mean()) / len(runs))
        print(f"  {truth.upper()}: true effect mean {runs[truth].mean():+.4f}; 95% CI coverage {covered.mean():.1%} "
              f"(Monte Carlo SE {mc_se:.1%}); mean bias {bias.mean():+.4f} (SE {bias.std(ddof=1) / np.sqrt(len(runs)):.4f})")
    print(f"  naive difference mean bias against SATT: {(runs.naive - runs.satt).mean():+.4f}")
    print(f"  mean cluster-robust SE {runs.se.mean():.4f}; SD of estimates around SATT {(runs.estimate - runs.satt).std(ddof=1):.4f}")


if __name__ == "__main__":
    main()
