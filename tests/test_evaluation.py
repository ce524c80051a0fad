"""models/evaluation.py: the frames a programme's models read are shaped without changing the caller's data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.evaluation import MatchingSpec, _measures_wide, model_frame, prepare_covariates


def test_measures_are_laid_out_one_column_per_measure_and_window_in_the_peoples_order():
    people = pd.Series(["p3", "p1", "p2"])
    measures = pd.DataFrame({
        "person_id": ["p1", "p2", "p3", "p1", "p9", "p3", "p2"],
        "window_months": [12, 12, 12, 24, 12, 6, 36],  # p9 is not analysed; 36 is not a window asked for
        "reoffended": pd.array([1, 0, 1, pd.NA, 1, 0, 1], dtype="Int64"),
        "frequency": [2.0, 0.0, 1.0, np.nan, 5.0, 0.0, 9.0],
        "days_to_first": [30.0, np.nan, 200.0, np.nan, 3.0, np.nan, 1.0],
        "custodial_reoffence": [True, False, False, None, True, False, True],
    })
    wide = _measures_wide(people, measures, [6, 12, 24])
    assert wide.columns[:4].tolist() == ["reoffended_6", "frequency_6", "days_to_first_6", "custodial_reoffence_6"]
    assert wide.shape == (3, 12) and (wide.dtypes == float).all()
    np.testing.assert_array_equal(wide["reoffended_12"], [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(wide["days_to_first_12"], [200.0, 30.0, np.nan])
    np.testing.assert_array_equal(wide["custodial_reoffence_12"], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(wide["frequency_6"], [0.0, np.nan, np.nan])
    assert wide[[c for c in wide.columns if c.endswith("_24")]].isna().all().all()  # p1's 24-month row is all NA
    # three 12-month rows (p2 without a first reoffence) and p3's 6-month row (no first reoffence either)
    assert int(wide.notna().sum().sum()) == (4 * 3 - 1) + (4 - 1)
    with pytest.raises(ValueError, match="more than one row for a person and follow-up window"):
        _measures_wide(people, pd.concat([measures, measures.iloc[[0]]]), [6, 12, 24])
    with pytest.raises(ValueError, match="person_id is not unique"):
        _measures_wide(pd.Series(["p1", "p1"]), measures, [12])


def test_model_frame_and_covariate_preparation_leave_the_callers_frame_as_it_was():
    n = 60
    people = pd.DataFrame({
        "person_id": [f"p{i}" for i in range(n)],
        "treated": [i % 3 == 0 for i in range(n)],
        "employed": [i % 2 == 0 for i in range(n)],
        "score": [float(i % 7) if i % 5 else None for i in range(n)],
        "region": [None if i % 9 == 0 else ["North", "South"][i % 2] for i in range(n)],
    }, index=range(100, 100 + n))
    before = people.copy()
    spec = MatchingSpec(covariates=["employed", "score", "region"], categorical=["region"],
                        missing_indicator=["score", "region"])
    frame, kept, _ = prepare_covariates(model_frame(people, spec), spec)
    pd.testing.assert_frame_equal(people, before)
    assert frame.index.tolist() == list(range(n))
    assert frame["treated"].tolist() == [int(i % 3 == 0) for i in range(n)]
    assert frame["employed"].dtype == float and frame["employed"].sum() == n / 2
    assert frame["score"].isna().sum() == 0 and frame["score_missing"].sum() == 12
    assert (frame["region"] == "missing").sum() == 7
    assert list(kept.covariates) == ["employed", "score", "score_missing", "region", "region_missing"]
