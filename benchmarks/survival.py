"""Timing and peak memory of the survival models on a large matched sample.

Run:  .venv/bin/python benchmarks/survival.py [--rows 200000]

Builds a synthetic matched sample (1:1 and 2:1 matched sets with MatchIt-style weights,
follow-up in whole days so event times tie, administrative censoring), then times the
treatment-only Cox model with the matched-set cluster-robust SE, Kaplan–Meier curves
(Greenwood and clustered robust variance) with the horizon table, the log-rank test and
the RMST difference. Peak memory is the Python heap peak from tracemalloc (NumPy buffers
included) during each call.
"""

import argparse
import time
import tracemalloc

import numpy as np

from models.survival import cox_matched, kaplan_meier, log_rank_test, restricted_mean_survival_time


def matched_sample(n_rows: int, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # About 60% of sets 1:1 (2 rows) and 40% 2:1 (3 rows), with 2 * n_one + 3 * n_two = n_rows.
    n_two = n_rows // 6
    n_two -= (n_rows - 3 * n_two) % 2
    n_one = (n_rows - 3 * n_two) // 2
    set_size = np.r_[np.full(n_one, 2), np.full(n_two, 3)]
    subclass = np.repeat(np.arange(len(set_size)), set_size)
    position = np.arange(len(subclass)) - np.repeat(np.cumsum(set_size) - set_size, set_size)
    treat = (position == 0).astype(float)
    weight = np.where(treat == 1, 1.0, 1.0 / (set_size[subclass] - 1))
    comparison = treat == 0
    weight[comparison] *= comparison.sum() / weight[comparison].sum()
    set_risk = rng.normal(0, 0.6, len(set_size))[subclass]
    event_day = rng.exponential(1 / (0.0014 * np.exp(set_risk + np.log(0.75) * treat)))
    follow_up = rng.uniform(150, 800, len(subclass))
    return {
        "time": np.ceil(np.minimum(event_day, follow_up)),
        "event": (event_day <= follow_up).astype(float),
        "treat": treat,
        "weight": weight,
        "subclass": subclass,
    }


def measure(label: str, function, repeats: int = 3):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{label:<58} {best:7.3f} s   peak {peak / 2**20:7.1f} MiB")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    data = matched_sample(args.rows)
    n = len(data["time"])
    print(
        f"{n:,} rows, {data['subclass'].max() + 1:,} matched sets, {int(data['event'].sum()):,} events, "
        f"{len(np.unique(data['time'][data['event'] == 1])):,} distinct event days (best of 3)"
    )
    fit = measure(
        "Cox treatment-only, weights, cluster-robust SE, cox.zph",
        lambda: cox_matched(data["time"], data["event"], data["treat"], data["weight"], data["subclass"]),
    )
    print(f"  HR {fit.hazard_ratio:.3f}, robust SE {fit.robust_se:.4f}, {fit.iterations} Newton iterations")
    measure(
        "Kaplan–Meier per group, Greenwood, horizons",
        lambda: kaplan_meier(data["time"], data["event"], data["treat"], data["weight"]),
    )
    measure(
        "Kaplan–Meier per group, robust clustered, horizons",
        lambda: kaplan_meier(
            data["time"], data["event"], data["treat"], data["weight"], variance="robust", cluster=data["subclass"]
        ),
    )
    measure("Log-rank test", lambda: log_rank_test(data["time"], data["event"], data["treat"]))
    rmst = measure(
        "RMST to 365 days per group and difference",
        lambda: restricted_mean_survival_time(data["time"], data["event"], data["treat"], 365, data["weight"]),
    )
    print(f"  RMST difference {rmst.difference:.2f} days (SE {rmst.se:.2f})")


if __name__ == "__main__":
    main()
