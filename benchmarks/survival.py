"""Timing and peak memory of the survival models on a large matched sample and a programme's cohort.

Run:  .venv/bin/python benchmarks/survival.py [--rows 200000] [--cohort 800000]

Builds a synthetic matched sample (1:1 and 2:1 matched sets with MatchIt-style weights,
follow-up in whole days so event times tie, administrative censoring), then times the
treatment-only Cox model with the matched-set cluster-robust SE, Kaplan–Meier curves
(Greenwood and clustered robust variance) with the horizon table, the log-rank test and
the RMST difference. Then the covariate-adjusted Cox model (with its cox.zph test) on a
cohort the size of one programme of a 1,000,000-person extract: the treatment, six numbers,
three yes/no covariates and two text covariates (20 design columns), half the people with an
event and follow-up in whole days, judged against SECONDS_PER_MILLION_ROWS. Peak memory is
the Python heap peak from tracemalloc (NumPy buffers included) during each call.

Measured on the shared 2-core machine (loaded; best of 3): adjusted Cox on 800,000 people
about 1.5 s CPU (2.4 s before the rows were put in time order).
"""

import argparse
import time
import tracemalloc

import numpy as np
import pandas as pd

from models.survival import cox_adjusted, cox_matched, kaplan_meier, log_rank_test, restricted_mean_survival_time

# The adjusted Cox model is the survival step's largest cost: its share of the step's 2 s per
# programme of a 1,000,000-person extract (about 800,000 people).
SECONDS_PER_MILLION_ROWS = 1.5


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


def programme_cohort(n_rows: int, seed: int = 11) -> pd.DataFrame:
    """One programme's analysed people: a few percent treated, covariates like the extract's."""
    rng = np.random.default_rng(seed)
    regions = ["east", "east_midlands", "london", "north_east", "north_west", "south_east", "south_west",
               "wales", "west_midlands", "yorkshire"]
    cohort = pd.DataFrame({
        "treated": (rng.random(n_rows) < 0.06).astype(int),
        "age_at_index": rng.integers(18, 70, n_rows),
        "prior_proven_offences": rng.poisson(4, n_rows),
        "prior_custodial_sentences": rng.poisson(1, n_rows),
        "years_since_first_offence": rng.gamma(2, 4, n_rows),
        "risk_score": rng.beta(2, 3, n_rows),
        "sentence_months": rng.choice([0.0, 6, 12, 18, 24, 36], n_rows),
        "employment_at_index": rng.random(n_rows) < 0.4,
        "accommodation_at_index": rng.random(n_rows) < 0.7,
        "female": rng.random(n_rows) < 0.15,
        "index_type": pd.Categorical(rng.choice(["community_sentence", "custody_release"], n_rows)),
        "region": pd.Categorical(rng.choice(regions, n_rows)),
    })
    risk = 0.8 * cohort["risk_score"] + 0.05 * cohort["prior_proven_offences"] - 0.25 * cohort["treated"]
    event_day = rng.exponential(1 / (0.0012 * np.exp(risk)))
    follow_up = rng.uniform(200, 2300, n_rows)
    return cohort.assign(time_days=np.ceil(np.minimum(event_day, follow_up)),
                         event=(event_day <= follow_up).astype(int))


def measure(label: str, function, repeats: int = 3):
    best, best_cpu = np.inf, np.inf
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = function()
        best, best_cpu = min(best, time.perf_counter() - start), min(best_cpu, time.process_time() - start_cpu)
    tracemalloc.start()
    function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{label:<58} {best:7.3f} s   CPU {best_cpu:7.3f} s   peak {peak / 2**20:7.1f} MiB")
    measure.cpu = best_cpu
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--cohort", type=int, default=800_000)
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

    cohort = programme_cohort(args.cohort)
    covariates = [name for name in cohort.columns if name not in ("time_days", "event")]
    adjusted = measure(f"Cox adjusted, {args.cohort:,} people, cox.zph",
                       lambda: cox_adjusted(cohort, "time_days", "event", covariates))
    cpu, limit = measure.cpu, SECONDS_PER_MILLION_ROWS * args.cohort / 1_000_000
    print(f"  {len(adjusted.table)} design columns, {adjusted.n_events:,} events; CPU {cpu:.2f} s per fit "
          f"(target {limit:.2f} s): {'PASS' if cpu <= limit else 'FAIL'}")


if __name__ == "__main__":
    main()
