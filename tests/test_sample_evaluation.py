"""The whole pipeline on the committed sample recovers the effects planted by the generator."""
from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest

from desist.config import PROJECT_ROOT

SAMPLE_DIR = PROJECT_ROOT / "data" / "sample"

TRUTH = json.loads((SAMPLE_DIR / "ground_truth.json").read_text())["programmes"]


@pytest.fixture(scope="module")
def effects(sample_run):
    with duckdb.connect(str(sample_run.paths.warehouse), read_only=True) as con:
        return con.execute(
            "SELECT programme_id, estimator, difference, ci_lower, ci_upper, gate_status, sentence "
            "FROM results.effects WHERE measure = 'reoffended' AND window_months = 12"
        ).df().set_index(["programme_id", "estimator"])


def test_every_programme_is_estimated(effects):
    assert sorted(effects.index.get_level_values(0).unique()) == sorted(TRUTH)
    assert (effects["gate_status"] == "ok").all()


Z_999 = 3.2905  # a 99.9% interval: with four programmes a 95% interval misses the truth 1 time in 5


@pytest.mark.parametrize("programme_id", sorted(TRUTH))
def test_matched_estimate_agrees_with_the_true_effect(effects, programme_id):
    truth = TRUTH[programme_id]["reoffending_rate_12m"]["effect"]
    row = effects.loc[(programme_id, "matched")]
    se = (row.ci_upper - row.ci_lower) / (2 * 1.959964)
    print(f"{programme_id}: true effect {truth:+.3f}; matched {row.difference:+.3f} "
          f"(95% CI {row.ci_lower:+.3f} to {row.ci_upper:+.3f})")
    assert abs(row.difference - truth) < Z_999 * se


def test_no_effect_programme_ci_covers_zero(effects):
    (no_effect,) = [p for p, t in TRUTH.items() if t["hazard_ratio"] == 1.0]
    row = effects.loc[(no_effect, "matched")]
    assert row.ci_lower <= 0 <= row.ci_upper


def test_matching_removes_most_of_the_selection_bias_of_the_strongest_selection(effects):
    (strongest,) = [p for p, t in TRUTH.items() if t["selection"]["strongest"]]
    truth = TRUTH[strongest]["reoffending_rate_12m"]["effect"]
    naive_error = abs(effects.loc[(strongest, "naive"), "difference"] - truth)
    matched_error = abs(effects.loc[(strongest, "matched"), "difference"] - truth)
    assert naive_error > 0.08            # the naive comparison is badly biased ...
    assert matched_error < naive_error / 3   # ... and matching removes most of it


@pytest.mark.parametrize("programme_id", sorted(TRUTH))
def test_headline_sentence_states_the_matched_interval_per_100_people(effects, programme_id):
    row = effects.loc[(programme_id, "matched")]
    low, high = round(100 * row.ci_lower), round(100 * row.ci_upper)
    assert low < 0, "every sampled programme's interval reaches below zero"
    amount = f"between {-high} and {-low} fewer" if high < 0 else f"between {-low} fewer and {high} more"
    assert row.sentence == (
        "For 100 typical people who took part, compared with 100 similar people who did not, "
        f"{amount} reoffended within a year."
    )


def test_matched_hazard_ratios_are_reported_next_to_the_truth(sample_run):
    with duckdb.connect(str(sample_run.paths.warehouse), read_only=True) as con:
        cox = con.execute(
            "SELECT programme_id, hr, hr_lower, hr_upper FROM results.cox "
            "WHERE model = 'matched' AND term = 'treated' ORDER BY programme_id"
        ).fetchall()
    assert [row[0] for row in cox] == sorted(TRUTH)
    for programme_id, hr, lower, upper in cox:
        # Matching estimates the marginal hazard ratio among participants, which the generator
        # works out from both potential outcomes; the planted (conditional) one is further from 1.
        true_hr = TRUTH[programme_id]["marginal_hazard_ratio"]
        print(f"{programme_id}: true marginal hazard ratio {true_hr:.3f} (planted {TRUTH[programme_id]['hazard_ratio']}); "
              f"matched {hr:.3f} (95% CI {lower:.3f} to {upper:.3f})")
        log_se = (np.log(upper) - np.log(lower)) / (2 * 1.959964)
        assert abs(np.log(hr) - np.log(true_hr)) < Z_999 * log_se
    (no_effect,) = [row for row in cox if TRUTH[row[0]]["hazard_ratio"] == 1.0]
    assert no_effect[2] <= 1.0 <= no_effect[3]
