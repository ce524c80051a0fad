"""The reoffending-risk model: AUC and calibration against R, the fairness audit against a table
worked by hand, bands, temporal validation and the model card."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from models.risk import (
    RiskModelResult, auc_delong, brier_score, calibration, decile_calibration, fairness_audit, fit_risk_model, model_card,
    risk_bands, temporal_split,
)

FIXTURES = Path(__file__).parent / "fixtures" / "risk"


def test_auc_and_calibration_match_r():
    """pROC::ci.auc(method = "delong") and glm(y ~ offset(logit p)) / glm(y ~ logit p), by make_reference.R."""
    data = pd.read_csv(FIXTURES / "predictions.csv")
    reference = pd.read_csv(FIXTURES / "reference.csv").iloc[0]
    auc = auc_delong(data["y"], data["risk"])
    assert [auc.auc, auc.se, auc.lower, auc.upper] == pytest.approx(
        reference[["auc", "auc_se", "auc_lower", "auc_upper"]].tolist(), rel=1e-9)
    cal = calibration(data["y"], data["risk"])
    assert [cal.intercept, cal.intercept_se, cal.slope, cal.slope_se] == pytest.approx(reference[[
        "calibration_intercept", "calibration_intercept_se", "calibration_slope", "calibration_slope_se"]].tolist(),
        rel=1e-4)


def test_delong_by_hand():
    # positives 0.9, 0.4 outrank 3 and 2 of the 3 negatives: V10 = 1, 2/3; AUC = 5/6.
    # negatives 0.5, 0.2, 0.1 are outranked by 1, 2, 2 positives: V01 = 1/2, 1, 1.
    # Var = var(V10)/2 + var(V01)/3 = (1/18)/2 + (1/12)/3 = 1/18
    auc = auc_delong([1, 1, 0, 0, 0], [0.9, 0.4, 0.5, 0.2, 0.1])
    assert (auc.auc, auc.se) == (pytest.approx(5 / 6), pytest.approx(np.sqrt(1 / 18)))
    assert auc.upper == 1.0  # held to [0, 1]
    assert np.isnan(auc_delong([0, 0], [0.1, 0.2]).auc)


def test_delong_matches_the_pairwise_placements_with_ties():
    # Every positive against every negative (ties a half), in the people's order: the definition
    # the mid-rank computation shortcuts. Risks rounded to one decimal, so most values are tied.
    rng = np.random.default_rng(3)
    y = rng.random(400) < 0.35
    risk = np.round(rng.random(400), 1)
    positives, negatives = risk[y], risk[~y]
    wins = (positives[:, None] > negatives[None, :]) + 0.5 * (positives[:, None] == negatives[None, :])
    v10, v01 = wins.mean(axis=1), wins.mean(axis=0)
    auc = auc_delong(y, risk)
    assert auc.auc == pytest.approx(v10.mean(), rel=1e-12)
    assert auc.se == pytest.approx(np.sqrt(v10.var(ddof=1) / len(positives) + v01.var(ddof=1) / len(negatives)),
                                   rel=1e-12)
    # A missing risk gives no AUC.
    assert np.isnan(auc_delong([1, 0, 1, 0], [0.2, np.nan, 0.5, 0.1]).auc)


def test_brier_bands_and_split():
    assert brier_score([1, 0, 1], [0.8, 0.3, 0.5]) == pytest.approx((0.04 + 0.09 + 0.25) / 3)
    assert [None if pd.isna(b) else b for b in risk_bands([0.0, 0.19, 0.2, 0.39, 0.4, np.nan], [0.2, 0.4])] == [
        "low", "low", "medium", "medium", "high", None]
    quarters = pd.Series(["2020Q3", "2021Q1", "2020Q4", "2021Q1", "2019Q2"])
    assert temporal_split(quarters, 2).tolist() == [False, True, True, True, False]  # 2020Q4 and 2021Q1
    with pytest.raises(ValueError, match="more than 3 index quarters, found 3"):
        temporal_split(pd.Series(["2020Q1", "2020Q2", "2020Q3"]), 3)


def test_decile_calibration_counts_and_wilson_intervals():
    y = np.r_[np.zeros(15), np.ones(5)]
    risk = np.linspace(0.01, 0.2, 20)
    table = decile_calibration(y, risk)
    assert table["n"].tolist() == [2] * 10
    assert table["n_reoffended"].tolist() == [0] * 7 + [1, 2, 2]
    low, high = proportion_confint(1, 2, method="wilson")
    assert table.loc[7, ["observed", "observed_lower", "observed_upper"]].tolist() == pytest.approx([0.5, low, high])
    assert table.loc[0, "mean_predicted"] == pytest.approx(0.015)


def hand_table() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    y = np.array([1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0])
    risk = np.array([0.5, 0.3, 0.45, 0.1, 0.15, 0.05, 0.6, 0.35, 0.1, 0.5, 0.2, 0.3])
    groups = pd.DataFrame({"sex": ["female"] * 6 + ["male"] * 6})
    return y, risk, groups


def test_fairness_audit_against_a_table_worked_by_hand():
    y, risk, groups = hand_table()
    audit = fairness_audit(y, risk, groups, [0.2, 0.4]).set_index(["attribute", "grp", "threshold_name"])
    female = audit.loc[("sex", "female", "medium_or_high")]
    # women: outcomes 1 1 0 0 0 0 with risks .5 .3 | .45 .1 .15 .05
    assert female[["n", "n_reoffended", "n_negative"]].tolist() == [6, 2, 4]
    assert female["mean_predicted"] == pytest.approx(1.55 / 6)
    assert female["calibration_in_the_large"] == pytest.approx(2 / 6 - 1.55 / 6)   # +0.075
    assert female["auc"] == pytest.approx(7 / 8)     # .5 outranks 4 negatives, .3 outranks 3
    # flagged from 0.2: .5 .3 .45 -> no reoffender missed, 1 of 4 non-reoffenders flagged
    assert (female["fpr"], female["fnr"]) == (pytest.approx(0.25), pytest.approx(0.0))
    high = audit.loc[("sex", "female", "high")]
    # flagged from 0.4: .5 .45 -> the reoffender at .3 is missed, 1 of 4 non-reoffenders flagged
    assert (high["fpr"], high["fnr"]) == (pytest.approx(0.25), pytest.approx(0.5))
    low, upper = proportion_confint(1, 4, method="wilson")
    assert [high["fpr_lower"], high["fpr_upper"]] == pytest.approx([low, upper])
    low, upper = proportion_confint(2, 6, method="wilson")
    assert [female["citl_lower"], female["citl_upper"]] == pytest.approx([low - 1.55 / 6, upper - 1.55 / 6])
    male = audit.loc[("sex", "male", "medium_or_high")]
    # men: outcomes 1 1 1 0 0 0 with risks .6 .35 .1 | .5 .2 .3
    assert male["auc"] == pytest.approx(5 / 9)
    assert (male["fpr"], male["fnr"]) == (pytest.approx(1.0), pytest.approx(1 / 3))
    assert (audit.loc[("sex", "male", "high"), "fpr"], audit.loc[("sex", "male", "high"), "fnr"]) == (
        pytest.approx(1 / 3), pytest.approx(2 / 3))
    everyone = audit.loc[("all", "all", "high")]
    # 5 reoffenders x 7 others: wins 6.5 + 4.5 + 7 + 5 + 1.5 = 24.5 (ties count a half)
    assert (everyone["n"], everyone["auc"]) == (12, pytest.approx(24.5 / 35))
    assert len(audit) == 6  # (everyone, female, male) x two thresholds


def planted_pool(n: int = 6000, seed: int = 4) -> pd.DataFrame:
    """People whose 12-month reoffending follows a known logistic model of two covariates."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.normal(32, 9, n), "priors": rng.poisson(2, n).astype(float),
        "region": rng.choice(["north", "south"], n),
        "index_quarter": rng.choice([f"{y}Q{q}" for y in (2019, 2020, 2021) for q in (1, 2, 3, 4)], n),
        "sex": rng.choice(["female", "male"], n, p=[0.2, 0.8]),
    })
    logit = -0.6 - 0.04 * (frame["age"] - 32) + 0.3 * (frame["priors"] - 2) + 0.4 * (frame["region"] == "south")
    frame["truth"] = 1 / (1 + np.exp(-logit))
    frame["reoffended"] = rng.binomial(1, frame["truth"])
    return frame


def test_risk_model_recovers_a_planted_model_and_validates_on_later_quarters():
    pool = planted_pool()
    result = fit_risk_model(pool, "reoffended", ["age", "priors", "region"], ["region"], quarter="index_quarter",
                            test_quarters=4, thresholds=[0.2, 0.4], audit_groups=["sex"])
    assert result.status == "ok"
    coef = result.coefficients.set_index("term")
    for term, planted in {"age": -0.04, "priors": 0.3, "region[south]": 0.4}.items():
        assert abs(coef.loc[term, "coef"] - planted) < 3 * coef.loc[term, "se"], term
    performance = result.performance.iloc[0]
    test = pool["index_quarter"].str.startswith("2021").to_numpy()
    assert (performance["train_to"], performance["test_from"], performance["n_test"]) == ("2020Q4", "2021Q1", test.sum())
    # the AUC the true risks reach on the same test people, and calibration of a correct model
    true_auc = auc_delong(pool.loc[test, "reoffended"], pool.loc[test, "truth"]).auc
    assert abs(performance["auc"] - true_auc) < 0.02
    assert abs(performance["calibration_intercept"]) < 3 * performance["calibration_intercept_se"]
    assert abs(performance["calibration_slope"] - 1) < 3 * performance["calibration_slope_se"]
    assert result.scores["risk_band"].tolist() == risk_bands(result.scores["predicted_risk"], [0.2, 0.4]).tolist()
    assert sorted(result.fairness["grp"].unique()) == ["all", "female", "male"]


def test_risk_model_not_fitted_says_why():
    pool = planted_pool(n=300)
    result = fit_risk_model(pool, "reoffended", ["age"], [], quarter="index_quarter", test_quarters=4,
                            thresholds=[0.2, 0.4], audit_groups=["sex"], min_outcomes=80)
    assert result.status == "not_fitted"
    assert result.message.startswith("the test quarters hold fewer than 80 people with or without")
    card = model_card(result, ["age"], [0.2, 0.4], "proven reoffending within 12 months", "people")
    assert card.loc[card["section"] == "Performance", "text"].tolist() == [
        f"The model was not fitted for this run: {result.message}."]
    assert "Not for decisions about any individual" in card.loc[card["section"] == "Prohibited uses", "text"].iloc[0]


def test_model_card_states_the_fairness_results_of_groups_large_enough():
    y, risk, groups = hand_table()
    result = RiskModelResult("ok", performance=pd.DataFrame([dict(
        train_from="2019Q1", train_to="2022Q4", test_from="2023Q1", test_to="2023Q4", n_train=100, n_test=12,
        reoffended_train=0.3, reoffended_test=5 / 12, auc=0.7, auc_lower=0.4, auc_upper=1.0, auc_train=0.72,
        brier=0.2, calibration_intercept=0.1, calibration_intercept_se=0.3, calibration_slope=0.9,
        calibration_slope_se=0.4)]), fairness=fairness_audit(y, risk, groups, [0.2, 0.4]))
    card = model_card(result, ["age"], [0.2, 0.4], "proven reoffending within 12 months", "people", min_group=1)
    # women: AUC 7/8, observed - predicted 2/6 - 1.55/6 = +7.5 points, FPR 1/4 at 0.4;
    # men: AUC 5/9, 3/6 - 2.05/6 = +15.8 points, FPR 1/3
    assert card.loc[card["item"] == "By sex", "text"].tolist() == [
        "Across 2 groups: AUC from 0.56 (male) to 0.88 (female); the largest gap between observed and predicted "
        "reoffending +15.8 percentage points (male); false-positive rate at the high band from 25% to 33%."]
    assert card.loc[card["item"] == "Discrimination", "text"].iloc[0].startswith("AUC 0.700 (95% CI 0.400 to 1.000)")
    # with at least 2 needed in every count, neither sex qualifies: each has 1 flagged non-reoffender at 0.4
    card = model_card(result, ["age"], [0.2, 0.4], "x", "people", min_group=2)
    assert "By sex" not in card["item"].tolist()


def test_fairness_audit_equals_fairlearn_metricframe_and_sklearn_auc():
    """The audit's group metrics against fairlearn's MetricFrame (counts, mean prediction, FPR and
    FNR at each threshold) and scikit-learn's AUC, on groups with ties, missing values, a group
    without reoffenders and one with nobody else."""
    from fairlearn.metrics import MetricFrame, count, false_negative_rate, false_positive_rate, mean_prediction
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    n = 3000
    risk = np.round(rng.beta(2, 5, n), 2)  # rounded: many ties
    y = rng.binomial(1, risk)
    groups = pd.DataFrame({
        "sex": rng.choice(["female", "male", None], n, p=[0.3, 0.65, 0.05]),
        "age_band": pd.Categorical(rng.choice(["18-24", "25-34", "35+"], n), categories=["under 18", "18-24", "25-34", "35+"]),
    })
    groups.loc[:19, "sex"], y[:20] = "other", 0       # no reoffender
    groups.loc[20:34, "sex"], y[20:35] = "unknown", 1  # only reoffenders
    thresholds = [0.2, 0.4]
    audit = fairness_audit(y, risk, groups, thresholds).set_index(["attribute", "grp", "threshold_name"])
    assert len(audit) == 2 * (1 + 4 + 3)
    for attribute in ["all", "sex", "age_band"]:
        feature = pd.Series(["all"] * n) if attribute == "all" else groups[attribute].astype(object)
        keep = feature.notna().to_numpy()
        for name, threshold in zip(["medium_or_high", "high"], thresholds):
            flag = (risk[keep] >= threshold).astype(int)
            frame = MetricFrame(
                metrics={"n": count, "fpr": false_positive_rate, "fnr": false_negative_rate},
                y_true=y[keep], y_pred=flag, sensitive_features=feature[keep].astype(str).to_numpy(),
            ).by_group
            mean = MetricFrame(metrics=mean_prediction, y_true=y[keep], y_pred=risk[keep],
                               sensitive_features=feature[keep].astype(str).to_numpy()).by_group
            for grp in frame.index:
                row = audit.loc[(attribute, grp, name)]
                in_group = keep & (feature.astype(str) == grp).to_numpy()
                assert row["n"] == frame.loc[grp, "n"]
                assert row["mean_predicted"] == pytest.approx(mean.loc[grp], rel=1e-12)
                negatives, events = row["n_negative"], row["n_reoffended"]
                assert events == y[in_group].sum()
                if negatives > 0:
                    assert row["fpr"] == pytest.approx(frame.loc[grp, "fpr"], rel=1e-12)
                else:
                    assert np.isnan(row["fpr"]) and grp == "unknown"
                if events > 0:
                    assert row["fnr"] == pytest.approx(frame.loc[grp, "fnr"], rel=1e-12)
                    if negatives > 0:
                        assert row["auc"] == pytest.approx(roc_auc_score(y[in_group], risk[in_group]), rel=1e-12)
                else:
                    assert np.isnan(row["fnr"]) and np.isnan(row["auc"]) and grp == "other"


def test_risk_model_fits_on_the_pool_and_scores_everyone():
    """Fitted on the pool's earlier quarters only (the coefficients of statsmodels' GLM on those
    rows); people outside the pool are scored from the same coefficients, a region level the model
    never saw taking the reference level's risk, and carry no model sample."""
    import statsmodels.api as sm

    pool = planted_pool()
    others = planted_pool(n=500, seed=5).assign(region="east")  # never in the pool
    people = pd.concat([others, pool], ignore_index=True)
    in_pool = np.r_[np.zeros(500, dtype=bool), np.ones(len(pool), dtype=bool)]
    result = fit_risk_model(people, "reoffended", ["age", "priors", "region"], ["region"], quarter="index_quarter",
                            test_quarters=4, thresholds=[0.2, 0.4], audit_groups=["sex"], in_pool=in_pool)
    train = ~pool["index_quarter"].str.startswith("2021").to_numpy()
    x = sm.add_constant(np.column_stack([pool["age"], pool["priors"], pool["region"] == "south"]).astype(float))
    glm = sm.GLM(pool["reoffended"].to_numpy()[train], x[train], family=sm.families.Binomial()).fit(tol=1e-12)
    assert result.coefficients["coef"].to_numpy() == pytest.approx(glm.params, rel=1e-7)
    assert result.performance.loc[0, "n_train"] == train.sum()
    assert result.performance.loc[0, "n_test"] == (~train).sum()
    scores = result.scores
    assert len(scores) == len(people)
    reference = glm.params[0] + glm.params[1] * others["age"] + glm.params[2] * others["priors"]
    assert scores["predicted_risk"].to_numpy()[:500] == pytest.approx(1 / (1 + np.exp(-reference)), rel=1e-7)
    assert scores["predicted_risk"].to_numpy()[500:] == pytest.approx(glm.predict(x), rel=1e-7)
    assert scores["model_sample"].isna().sum() == 500
    assert (scores["model_sample"].to_numpy()[500:] == np.where(train, "train", "test")).all()


def test_categorical_columns_give_the_model_that_text_columns_give():
    """The pipeline reads text as pandas categoricals whose levels are those of everyone scored: a
    level never seen in training ('east', outside the pool) must not add a column to the fit, so the
    coefficients stay statsmodels' GLM on the training rows, and every table equals the text columns' one."""
    import statsmodels.api as sm

    pool = planted_pool()
    people = pd.concat([planted_pool(n=500, seed=5).assign(region="east"), pool], ignore_index=True)
    in_pool = np.r_[np.zeros(500, dtype=bool), np.ones(len(pool), dtype=bool)]
    as_categories = people.assign(region=people["region"].astype("category"), sex=people["sex"].astype("category"))
    assert list(as_categories["region"].cat.categories) == ["east", "north", "south"]
    results = [fit_risk_model(frame, "reoffended", ["age", "priors", "region"], ["region"], quarter="index_quarter",
                              test_quarters=4, thresholds=[0.2, 0.4], audit_groups=["sex"], in_pool=in_pool)
               for frame in (people, as_categories)]
    train = ~pool["index_quarter"].str.startswith("2021").to_numpy()
    x = sm.add_constant(np.column_stack([pool["age"], pool["priors"], pool["region"] == "south"]).astype(float))
    glm = sm.GLM(pool["reoffended"].to_numpy()[train], x[train], family=sm.families.Binomial()).fit(tol=1e-12)
    text, categories = results
    assert categories.coefficients["term"].tolist() == ["(Intercept)", "age", "priors", "region[south]"]
    assert categories.coefficients["coef"].to_numpy() == pytest.approx(glm.params, rel=1e-7)
    for table in ("coefficients", "performance", "deciles", "fairness", "scores"):
        pd.testing.assert_frame_equal(getattr(categories, table), getattr(text, table), check_exact=True)
