"""The reoffending-risk model's discrimination and calibration, next to what is known to be true.

1. The committed sample: runs the pipeline and prints the model's test-quarter AUC (95% CI),
   Brier score and calibration intercept and slope beside the true AUC the generator wrote to
   ground_truth.json (the AUC of each person's true 12-month risk, which knows the unobserved
   propensity the recorded risk score measures with noise: a ceiling for any model on the
   recorded covariates), and the calibration by decile, with the time each step took.
2. lifelines' Rossi recidivism data (432 released prisoners, arrest within 52 weeks): the same
   model family and measures on a public cohort as a sanity check. Rossi has no dates, so a
   random third (seed 0) is held out instead of the latest quarters.

Usage::

    python benchmarks/risk_model.py
"""
from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from desist.config import PROJECT_ROOT, load_settings, write_settings  # noqa: E402
from models.propensity import fit_propensity  # noqa: E402
from models.risk import auc_delong, brier_score, calibration, decile_calibration, predict_risk  # noqa: E402

SAMPLE = PROJECT_ROOT / "data" / "sample"


def sample() -> None:
    import dagster as dg

    from pipelines.stages import run_evaluation

    with tempfile.TemporaryDirectory() as folder:
        config_file = write_settings(Path(folder), SAMPLE)
        started = time.perf_counter()
        with dg.DagsterInstance.local_temp(str(Path(folder) / "dagster_home")) as instance:
            result = run_evaluation(str(config_file), instance)
        if not result.success:
            raise SystemExit(f"the pipeline run on the sample failed: {result.reason}")
        step = next(e for e in result.all_events
                    if e.event_type_value == "STEP_SUCCESS" and e.step_key == "results__risk_model")
        settings = load_settings(config_file)
        with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
            p = con.sql("SELECT * FROM results.risk_performance").df().iloc[0]
            deciles = con.sql("SELECT * FROM results.risk_calibration ORDER BY decile").df()
    truth = json.loads((SAMPLE / "ground_truth.json").read_text())["risk_model"]
    print(f"sample: whole pipeline {time.perf_counter() - started:.1f} s "
          f"(risk model step {step.event_specific_data.duration_ms / 1000:.2f} s)")
    print(f"  trained on {p.train_from}-{p.train_to} ({p.n_train:,} people), tested on {p.test_from}-{p.test_to} "
          f"({p.n_test:,} people)")
    print(f"  AUC {p.auc:.3f} (95% CI {p.auc_lower:.3f} to {p.auc_upper:.3f}); training quarters {p.auc_train:.3f}")
    test_years = range(int(p.test_from[:4]), int(p.test_to[:4]) + 1)
    print(f"  true AUC (generator, {truth['people']:,} never-enrolled people): {truth['true_auc']:.3f}; "
          "index years " + ", ".join(f"{y} {truth['true_auc_by_index_year'][str(y)]:.3f}" for y in test_years))
    print(f"  Brier {p.brier:.4f}; calibration intercept {p.calibration_intercept:+.3f} "
          f"(SE {p.calibration_intercept_se:.3f}), slope {p.calibration_slope:.3f} (SE {p.calibration_slope_se:.3f})")
    print("  deciles (mean predicted -> observed): " + ", ".join(
        f"{r.mean_predicted:.2f}->{r.observed:.2f}" for r in deciles.itertuples()))


def rossi() -> None:
    from lifelines.datasets import load_rossi

    data = load_rossi()
    covariates = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
    held_out = np.random.default_rng(0).permutation(len(data)) < len(data) // 3
    started = time.perf_counter()
    fit = fit_propensity(data[~held_out], "arrest", covariates)
    risk = predict_risk(fit.to_frame(), data[held_out], covariates, [])
    y = data.loc[held_out, "arrest"].to_numpy()
    auc, cal = auc_delong(y, risk), calibration(y, risk)
    full = fit_propensity(data, "arrest", covariates)
    print(f"\nRossi ({len(data)} people, {data['arrest'].mean():.1%} arrested within 52 weeks): trained on "
          f"{(~held_out).sum()}, tested on {held_out.sum()} ({time.perf_counter() - started:.2f} s)")
    print(f"  held-out AUC {auc.auc:.3f} (95% CI {auc.lower:.3f} to {auc.upper:.3f}); Brier {brier_score(y, risk):.4f}; "
          f"calibration intercept {cal.intercept:+.3f} (SE {cal.intercept_se:.3f}), slope {cal.slope:.3f} "
          f"(SE {cal.slope_se:.3f})")
    print(f"  in-sample AUC of the model on all {len(data)}: {auc_delong(data['arrest'], full.score).auc:.3f}")
    print("  held-out deciles (mean predicted -> observed): " + ", ".join(
        f"{r.mean_predicted:.2f}->{r.observed:.2f}" for r in decile_calibration(y, risk).itertuples()))


def main() -> None:
    sample()
    rossi()
    print(f"\npeak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
