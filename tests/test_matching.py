"""Nearest-neighbour matching against R MatchIt (tests/fixtures/matchit/make_fixtures.R),
hand-worked cases, and a direct transcription of MatchIt's sequential algorithm."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import models.matching
from models.matching import match_nearest, match_propensity
from models.propensity import fit_propensity

FIXTURES = Path(__file__).parent / "fixtures" / "matchit"
COVARIATES = ["age", "prior_offences", "risk_score", "female", "employed", "region"]
SCENARIOS = {
    "nn1": dict(ratio=1),
    "nn2": dict(ratio=2),
    "nn1_replace": dict(replace=True),
    "nn1_caliper": dict(caliper=0.2),
    "nn2_caliper": dict(ratio=2, caliper=0.2),
    "nn1_exact": dict(exact=["region"]),
    "nn1_replace_caliper": dict(replace=True, caliper=0.05),
}


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "data.csv.gz")


def _pairs_as_r(result) -> pd.DataFrame:
    """treated_id, slot, control_id with 1-based row numbers, as the R fixture stores them."""
    pairs = result.pairs
    frame = pd.DataFrame(
        {
            "treated_id": pairs.treated_position + 1,
            "slot": pairs.slot,
            "control_id": pairs.control_position + 1,
        }
    )
    return frame.sort_values(["treated_id", "slot"]).reset_index(drop=True)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_matches_r_matchit(cohort, scenario):
    settings = SCENARIOS[scenario]
    result = match_propensity(cohort, cohort.lp, "treat", **settings)
    reference_pairs = pd.read_csv(FIXTURES / f"pairs_{scenario}.csv.gz")
    reference_units = pd.read_csv(FIXTURES / f"units_{scenario}.csv.gz")
    pd.testing.assert_frame_equal(_pairs_as_r(result), reference_pairs, check_dtype=False)
    np.testing.assert_allclose(result.weights, reference_units.weights, rtol=0, atol=1e-12)
    if settings.get("replace"):
        assert result.subclass is None
    else:
        expected = reference_units.subclass.fillna(0).astype(int).to_numpy()
        np.testing.assert_array_equal(result.subclass, expected)
    sizes = pd.read_csv(FIXTURES / "sample_sizes.csv")
    sizes = sizes[sizes.scenario == scenario].set_index("row").loc[result.counts.index]
    np.testing.assert_allclose(result.counts.to_numpy(), sizes[["control", "treated"]].to_numpy(), rtol=1e-12)


def test_unmatched_treated_are_listed(cohort):
    result = match_propensity(cohort, cohort.lp, "treat", caliper=0.2)
    units = pd.read_csv(FIXTURES / "units_nn1_caliper.csv.gz")
    expected = cohort.index[(cohort.treat == 1) & (units.weights == 0)]
    assert len(result.unmatched_treated) == 67
    assert result.unmatched_treated.tolist() == expected.tolist()
    assert result.counts.at["Unmatched", "treated"] == 67


def test_caliper_is_in_sds_of_the_distance_over_all_units(cohort):
    reference = pd.read_csv(FIXTURES / "caliper.csv").iloc[0]
    result = match_nearest(cohort.treat, cohort.lp, caliper=0.2)
    assert result.caliper_width == pytest.approx(reference.caliper_width, rel=1e-12)
    assert result.pairs.distance.max() <= result.caliper_width


def test_propensity_then_matching_reproduces_r_end_to_end(cohort):
    fit = fit_propensity(cohort, "treat", COVARIATES)
    result = match_propensity(cohort, fit.linear_predictor, "treat", ratio=2, caliper=0.2)
    pd.testing.assert_frame_equal(
        _pairs_as_r(result), pd.read_csv(FIXTURES / "pairs_nn2_caliper.csv.gz"), check_dtype=False
    )


# ---------------------------------------------------------------------------------------
# Hand-worked cases
# ---------------------------------------------------------------------------------------


def test_largest_distance_goes_first():
    # Treated at 0.9 is matched first and takes the control at 0.7 (gap 0.2); the treated
    # at 0.6 then takes 0.4 (gap 0.2) although 0.7 was nearer to it (gap 0.1).
    treated = np.array([1, 1, 0, 0], dtype=bool)
    result = match_nearest(treated, [0.6, 0.9, 0.7, 0.4])
    assert result.pairs[["treated", "control"]].values.tolist() == [[0, 3], [1, 2]]


def test_equal_gaps_go_to_the_smaller_distance():
    result = match_nearest(np.array([0, 1, 0], dtype=bool), [0.25, 0.5, 0.75])
    assert result.pairs.control.tolist() == [0]


def test_ratio_two_matches_in_rounds():
    # Rounds: A (0.80) takes 0.82, then B (0.70) takes 0.71; round two: A takes 0.74
    # (nearer than 0.60), leaving B the control at 0.60. Taking each unit's two nearest
    # in one go would have given A both 0.82 and 0.74 and B 0.71 and 0.60 as well, so
    # the slot order is what tells the two apart.
    treated = np.array([1, 1, 0, 0, 0, 0], dtype=bool)
    distance = [0.80, 0.70, 0.82, 0.71, 0.74, 0.60]
    result = match_nearest(treated, distance, ratio=2)
    assert result.match_matrix.tolist() == [[2, 4], [3, 5]]
    assert result.subclass.tolist() == [1, 2, 1, 2, 1, 2]
    np.testing.assert_allclose(result.weights, [1, 1, 1, 1, 1, 1])


def test_weights_when_a_treated_unit_gets_fewer_controls():
    # Caliper 0.05 (raw): A (0.9) finds 0.91 and 0.88; B (0.5) finds only 0.52.
    # Control weights 1/2, 1/2, 1, scaled to sum to the 3 matched controls: 0.75, 0.75, 1.5.
    treated = np.array([1, 1, 0, 0, 0, 0], dtype=bool)
    distance = [0.9, 0.5, 0.91, 0.88, 0.52, 0.2]
    result = match_nearest(treated, distance, ratio=2, caliper=0.05, std_caliper=False)
    np.testing.assert_allclose(result.weights, [1, 1, 0.75, 0.75, 1.5, 0])
    assert result.counts.at["Matched (ESS)", "control"] == pytest.approx(3**2 / (0.75**2 * 2 + 1.5**2))
    assert len(result.get_matches()) == 5


def test_exact_strata_are_never_crossed():
    treated = np.array([1, 0, 0, 1, 0], dtype=bool)
    distance = [0.50, 0.51, 0.90, 0.52, 0.10]
    sex = pd.Series(["f", "m", "f", "m", "x"], name="sex")
    result = match_nearest(treated, distance, exact=sex)
    assert result.pairs[["treated", "control"]].values.tolist() == [[0, 2], [3, 1]]
    assert result.exact == ("sex",)


def test_stratum_without_controls_leaves_treated_unmatched():
    treated = np.array([1, 0, 1], dtype=bool)
    result = match_nearest(treated, [0.5, 0.4, 0.45], exact=np.array(["a", "a", "b"]))
    assert result.unmatched_treated.tolist() == [2]


def test_with_replacement_k_distinct_nearest_controls():
    # Both treated units share the two nearest controls; a control used twice gets weight
    # 1/2 + 1/2 = 1, the rest 0, then scaled (already sums to the 2 matched controls).
    treated = np.array([1, 1, 0, 0, 0], dtype=bool)
    result = match_nearest(treated, [0.50, 0.52, 0.515, 0.48, 0.90], ratio=2, replace=True)
    assert result.match_matrix.tolist() == [[2, 3], [2, 3]]
    np.testing.assert_allclose(result.weights, [1, 1, 1, 1, 0])
    matches = result.get_matches()
    assert matches.groupby("subclass").size().tolist() == [3, 3]
    assert matches.loc[~matches.treated, "weights"].tolist() == [0.5, 0.5, 0.5, 0.5]


def test_subclass_numbers_follow_matchit_text_order():
    # Treated rows 2 and 10 (1-based): "10" sorts before "2", so row 10 gets subclass 1.
    treated = np.zeros(12, dtype=bool)
    treated[[1, 9]] = True
    distance = np.linspace(0, 1, 12)
    result = match_nearest(treated, distance)
    assert result.subclass[9] == 1 and result.subclass[1] == 2


def test_labels_come_from_the_data_index():
    data = pd.DataFrame({"treat": [1, 0, 0], "d": [0.5, 0.45, 0.1]}, index=["p7", "p8", "p9"])
    result = match_propensity(data, data.d, "treat")
    assert result.pairs[["treated", "control"]].values.tolist() == [["p7", "p8"]]
    assert result.to_frame().loc["p9", "matched"] == False  # noqa: E712


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(ratio=0), "ratio must be a whole number"),
        (dict(ratio=1.5), "ratio must be a whole number"),
        (dict(caliper=-1), "caliper must be positive"),
        (dict(exact=np.array(["a", None, "b"], dtype=object)), "missing values"),
    ],
)
def test_bad_settings_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        match_nearest(np.array([1, 0, 0]), [0.1, 0.2, 0.3], **kwargs)


def test_bad_vectors_are_explained():
    with pytest.raises(ValueError, match="no comparison units"):
        match_nearest(np.array([1, 1]), [0.1, 0.2])
    with pytest.raises(ValueError, match="1 missing or infinite"):
        match_nearest(np.array([1, 0]), [0.1, np.nan])


# ---------------------------------------------------------------------------------------
# Against a line-by-line transcription of MatchIt's sequential algorithm
# ---------------------------------------------------------------------------------------


def _sequential_matchit(treated, distance, ratio, caliper_width, strata):
    """MatchIt's nn_matchC_vec loop, written out with plain loops (with the true |gap|)."""
    order = sorted(range(len(distance)), key=lambda i: (distance[i], i))
    is_treated = [treated[i] for i in order]
    x = [distance[i] for i in order]
    s = [strata[i] for i in order]
    free = [not t for t in is_treated]
    treated_positions = [p for p in range(len(order)) if is_treated[p]]
    matching_order = sorted(treated_positions, key=lambda p: (-x[p], order[p]))
    chosen = {order[p]: [] for p in treated_positions}

    def search(p, step):
        q = p + step
        while 0 <= q < len(order):
            if free[q]:
                if caliper_width is not None and abs(x[q] - x[p]) > caliper_width:
                    return None
                if s[q] == s[p]:
                    return q
            q += step
        return None

    for _ in range(ratio):
        for p in matching_order:
            left, right = search(p, -1), search(p, +1)
            if left is not None and (right is None or abs(x[left] - x[p]) <= abs(x[right] - x[p])):
                pick = left
            else:
                pick = right
            if pick is not None:
                free[pick] = False
                chosen[order[p]].append(order[pick])
    return chosen


@pytest.mark.parametrize("seed", range(24))
def test_agrees_with_sequential_algorithm(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 400))
    share = rng.uniform(0.05, 0.6)  # up to more treated than controls: long conflict chains
    treated = rng.random(n) < share
    treated[0], treated[1] = True, False
    distance = rng.normal(size=n) + 1.5 * treated
    if seed % 3 == 0:
        distance = np.round(distance, 1)  # many exact ties
    ratio = int(rng.integers(1, 4))
    caliper = [None, 0.1, 0.5][seed % 3]
    strata = rng.integers(0, 3, n) if seed % 4 == 1 else np.zeros(n, dtype=int)
    result = match_nearest(treated, distance, ratio=ratio, caliper=caliper, exact=strata if seed % 4 == 1 else None)
    expected = _sequential_matchit(list(treated), list(distance), ratio, result.caliper_width, list(strata))
    rows = np.flatnonzero(treated)
    got = {int(r): [int(c) for c in result.match_matrix[i] if c >= 0] for i, r in enumerate(rows)}
    assert got == expected


@pytest.mark.parametrize("shape", ["continuous", "ties", "signed_zeros", "skewed", "constant"])
def test_line_order_is_lexsorts_at_scale(shape):
    # 300,000 units: the bucket sort's ranges are sorted by separate threads.
    rng = np.random.default_rng(11)
    n = 300_000
    distance = {
        "continuous": lambda: rng.normal(size=n),
        "ties": lambda: rng.integers(-20, 20, n).astype(float),
        "signed_zeros": lambda: np.where(rng.random(n) < 0.5, -0.0, 0.0) + np.where(rng.random(n) < 0.1, 1.0, 0.0),
        "skewed": lambda: np.exp(3 * rng.normal(size=n)),
        "constant": lambda: np.full(n, 2.5),
    }[shape]()
    for strata in [np.zeros(n, dtype=np.int64), rng.integers(0, 3, n)]:
        np.testing.assert_array_equal(models.matching._sorted_rows(distance, strata), np.lexsort((distance, strata)))


def test_agrees_with_sequential_algorithm_on_many_ties():
    # Enough units for the threaded sort, in few distinct distances: every tie is broken by row.
    rng = np.random.default_rng(5)
    n = 250_000
    treated = rng.random(n) < 0.002
    distance = np.round(rng.normal(size=n) + treated, 2)
    result = match_nearest(treated, distance, caliper=0.1)
    # The sequential transcription on the units that can matter: those within the caliper of
    # a treated unit's distance (the others are never candidates and do not move the order).
    near = np.zeros(n, dtype=bool)
    for value in np.unique(distance[treated]):
        near |= np.abs(distance - value) <= result.caliper_width
    rows = np.flatnonzero(near)
    expected = _sequential_matchit(list(treated[rows]), list(distance[rows]), 1, result.caliper_width, [0] * len(rows))
    got = {int(r): [int(c) for c in result.match_matrix[i] if c >= 0] for i, r in enumerate(np.flatnonzero(treated))}
    assert {int(rows[t]): [int(rows[c]) for c in cs] for t, cs in expected.items()} == got
    assert (len(got), sum(map(len, got.values()))) == (int(treated.sum()), int(result.counts.loc["Matched", "treated"]))
