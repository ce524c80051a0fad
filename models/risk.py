"""A transparent reoffending-risk model, for evaluation only, with its calibration and fairness audit.

The model is a logistic regression of the headline proven-reoffending outcome on the
configured covariates (the same model family and design as the propensity model,
:func:`models.propensity.fit_propensity`), fitted on people no programme touched. It is
validated *temporally*: fitted on the earlier index quarters and judged on the latest ones,
as it would be used on people who come later. Its only use here is to place people in risk
bands, so an evaluation can ask whether a programme works better for higher-risk people. It
is not for decisions about anyone.

Performance on the test quarters:

* AUC with the DeLong (1988) variance (as R ``pROC::ci.auc(method = "delong")``);
* Brier score, the mean squared difference between predicted risk and outcome;
* calibration intercept (calibration-in-the-large: logistic model of the outcome with the
  logit of the predicted risk as offset) and calibration slope (coefficient of that logit),
  ideally 0 and 1;
* observed against predicted risk by decile of predicted risk, with Wilson intervals.

The fairness audit reports, per group of sex, ethnic group and age band: calibration-in-the-large
(observed minus mean predicted risk, Wilson interval of the observed share), the AUC (DeLong
interval) and false-positive and false-negative rates at each band threshold (Wilson
intervals), the group metrics of fairlearn's ``MetricFrame`` computed group by group.

Example::

    >>> round(auc_delong([1, 1, 0, 0, 0], [0.9, 0.4, 0.5, 0.2, 0.1]).auc, 4)
    0.8333
    >>> risk_bands([0.1, 0.25, 0.5], [0.2, 0.4]).tolist()
    ['low', 'medium', 'high']
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM  # not statsmodels.api: 1 s more of imports

from models.indicators import wilson_interval
from models.design import numeric_design
from models.propensity import INTERCEPT, PropensityModelError, fit_propensity

BANDS = ("low", "medium", "high")
# Threshold names: a person is flagged at a threshold when their predicted risk is at or above it.
THRESHOLD_NAMES = ("medium_or_high", "high")
DECILES = 10
# Fewest people with and without the outcome in each of the training and test sets.
MIN_OUTCOMES = 10

STATUS_OK = "ok"


def _z(conf_level: float) -> float:
    return float(stats.norm.ppf(0.5 + conf_level / 2))


def _binary(y) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if not np.isin(y, (0, 1)).all():
        raise ValueError("the outcome must be 0/1")
    return y


def risk_bands(risk, thresholds: Sequence[float]) -> pd.Categorical:
    """low below the first threshold, medium from it up to the second, high from the second."""
    risk = np.asarray(risk, dtype=float)
    band = np.array(BANDS, dtype=object)[np.searchsorted(np.asarray(thresholds), risk, side="right")]
    band[np.isnan(risk)] = None
    return pd.Categorical(band, categories=BANDS)


def temporal_split(quarters: pd.Series, test_quarters: int) -> np.ndarray:
    """True for rows in the latest ``test_quarters`` distinct quarters ('2023Q4' labels sort in time)."""
    distinct = sorted(quarters.dropna().unique())
    if len(distinct) <= test_quarters:
        raise ValueError(f"temporal validation needs more than {test_quarters} index quarters, found {len(distinct)}")
    return quarters.isin(distinct[-test_quarters:]).to_numpy()


@dataclass(frozen=True)
class AUCResult:
    auc: float
    se: float
    lower: float
    upper: float


def auc_delong(y, risk, conf_level: float = 0.95) -> AUCResult:
    """Area under the ROC curve with the DeLong variance (ties count a half).

    Placement values: ``V10_i`` is the share of people without the outcome that positive i
    outranks, ``V01_j`` the share of positives that outrank negative j; Var(AUC) =
    var(V10)/m + var(V01)/n for m positives and n negatives. Computed from mid-ranks
    (Sun & Xu 2014), without pairwise loops, from one sort of everyone: the positives' and the
    negatives' own orders are that order's subsequences. The interval is AUC ± z SE, held to [0, 1].
    """
    y = _binary(y).astype(bool)
    risk = np.asarray(risk, dtype=float)
    m = int(np.count_nonzero(y))
    n = len(y) - m
    if m == 0 or n == 0:
        return AUCResult(np.nan, np.nan, np.nan, np.nan)
    order = np.argsort(risk, kind="stable")
    ordered, positive = risk[order], y[order]
    # Mid-rank among everyone minus mid-rank among their own group: how many of the other group
    # rank below (ties a half), put back in the people's order.
    below = np.empty(len(y))
    below[order] = _midranks(ordered) - np.where(positive, _scatter_midranks(ordered, positive),
                                                 _scatter_midranks(ordered, ~positive))
    if np.isnan(ordered[-1]):  # a missing risk (sorted last) leaves no ranks, as in scipy's rankdata
        below[:] = np.nan
    v10 = below[y] / n
    v01 = 1 - below[~y] / m
    auc = float(v10.mean())
    variance = (v10.var(ddof=1) / m if m > 1 else 0.0) + (v01.var(ddof=1) / n if n > 1 else 0.0)
    se = float(np.sqrt(variance))
    z = _z(conf_level)
    return AUCResult(auc, se, max(0.0, auc - z * se), min(1.0, auc + z * se))


def _midranks(ordered: np.ndarray) -> np.ndarray:
    """Mid-ranks (1-based, ties averaged) of values already in ascending order, as scipy's rankdata."""
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(ordered)]
    return np.repeat((starts + ends + 1) / 2, ends - starts)


def _scatter_midranks(ordered: np.ndarray, members: np.ndarray) -> np.ndarray:
    """The mid-ranks of the ``members`` among themselves, at their places in ``ordered`` (0 elsewhere)."""
    ranks = np.zeros(len(ordered))
    ranks[members] = _midranks(ordered[members])
    return ranks


@dataclass(frozen=True)
class Calibration:
    """Calibration intercept (with the slope fixed at 1) and calibration slope, with SEs."""

    intercept: float
    intercept_se: float
    slope: float
    slope_se: float


def calibration(y, risk) -> Calibration:
    """Logistic recalibration of predicted risks: ``logit P(y) = a + logit(risk)`` gives the
    intercept (calibration-in-the-large), ``logit P(y) = a + b logit(risk)`` the slope b."""
    y = _binary(y)
    risk = np.clip(np.asarray(risk, dtype=float), 1e-12, 1 - 1e-12)
    logit = np.log(risk / (1 - risk))
    ones = np.ones((len(y), 1))
    in_the_large = GLM(y, ones, family=families.Binomial(), offset=logit).fit()
    slope = GLM(y, np.column_stack([ones, logit]), family=families.Binomial()).fit()
    return Calibration(float(in_the_large.params[0]), float(in_the_large.bse[0]),
                       float(slope.params[1]), float(slope.bse[1]))


def brier_score(y, risk) -> float:
    return float(np.mean((np.asarray(risk, dtype=float) - _binary(y)) ** 2))


def decile_calibration(y, risk, conf_level: float = 0.95) -> pd.DataFrame:
    """Observed share against mean predicted risk by decile of predicted risk (ties kept together)."""
    y = _binary(y)
    risk = np.asarray(risk, dtype=float)
    decile = pd.qcut(pd.Series(risk).rank(method="first"), DECILES, labels=False) + 1 if len(risk) >= DECILES \
        else pd.Series(np.ones(len(risk), dtype=int))
    frame = pd.DataFrame({"decile": decile.to_numpy(), "y": y, "risk": risk})
    table = frame.groupby("decile").agg(n=("y", "size"), n_reoffended=("y", "sum"),
                                        mean_predicted=("risk", "mean"), observed=("y", "mean")).reset_index()
    lower, upper = wilson_interval(table["n_reoffended"].to_numpy(), table["n"].to_numpy(), conf_level)
    return table.assign(n_reoffended=table["n_reoffended"].astype(int), observed_lower=lower, observed_upper=upper)


def _group_rows(y: np.ndarray, risk: np.ndarray, thresholds: Sequence[float]) -> dict:
    """One group's counts, mean predicted risk, AUC and flagged counts at each threshold."""
    auc = auc_delong(y, risk)
    row = {"n": len(y), "n_reoffended": int(y.sum()), "mean_predicted": float(risk.mean()),
           "auc": auc.auc, "auc_se": auc.se}
    for name, threshold in zip(THRESHOLD_NAMES, thresholds):
        flagged = risk >= threshold
        row[f"false_positives_{name}"] = int(np.count_nonzero(flagged & ~y))
        row[f"false_negatives_{name}"] = int(np.count_nonzero(~flagged & y))
    return row


def fairness_audit(y, risk, groups: pd.DataFrame, thresholds: Sequence[float], conf_level: float = 0.95) -> pd.DataFrame:
    """Per group of every column of ``groups``: calibration-in-the-large, AUC and the false-positive
    and false-negative rates of flagging people at each threshold, with intervals.

    Returns one row per (attribute, grp, threshold): n, n_reoffended, observed, mean_predicted,
    calibration_in_the_large (observed - mean predicted) and its interval, auc and its interval,
    n_negative, fpr and its interval, fnr and its interval. A row with attribute 'all' covers everyone.
    Rows with a missing group value are left out of that attribute only; groups are the values as
    text, in sorted order. The group metrics are those of fairlearn's ``MetricFrame`` with
    ``count``, ``mean_prediction``, ``false_positive_rate`` and ``false_negative_rate`` (the tests
    compare the two), computed on each group's rows directly: a loop over groups, not people.
    """
    y = _binary(y).astype(bool)
    risk = np.asarray(risk, dtype=float)
    z = _z(conf_level)
    rows = []
    for attribute in ["all", *groups.columns]:
        if attribute == "all":
            members = {"all": np.ones(len(y), dtype=bool)}
        else:
            feature = pd.Series(groups[attribute].to_numpy(dtype=object))
            known = feature.notna().to_numpy()
            codes = np.full(len(y), -1)
            codes[known], levels = pd.factorize(feature[known].astype(str), sort=True)
            members = {grp: codes == code for code, grp in enumerate(levels)}
        by_group = {grp: _group_rows(y[rows_in_group], risk[rows_in_group], thresholds)
                    for grp, rows_in_group in members.items()}
        for name, threshold in zip(THRESHOLD_NAMES, thresholds):
            rows += [{"attribute": attribute, "grp": grp, "threshold_name": name, "threshold": threshold, **group,
                      "false_positives": group[f"false_positives_{name}"],
                      "false_negatives": group[f"false_negatives_{name}"]} for grp, group in by_group.items()]
    table = pd.DataFrame(rows)
    n, events = table["n"].to_numpy(), table["n_reoffended"].to_numpy()
    negatives = n - events
    false_positives, false_negatives = table["false_positives"].to_numpy(), table["false_negatives"].to_numpy()
    observed = events / n
    obs_low, obs_high = wilson_interval(events, n, conf_level)
    fpr_low, fpr_high = wilson_interval(false_positives, negatives, conf_level)
    fnr_low, fnr_high = wilson_interval(false_negatives, events, conf_level)
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr, fnr = false_positives / negatives, false_negatives / events
    return pd.DataFrame({
        "attribute": table["attribute"], "grp": table["grp"], "threshold_name": table["threshold_name"],
        "threshold": table["threshold"].astype(float), "n": n, "n_reoffended": events, "observed": observed,
        "mean_predicted": table["mean_predicted"],
        "calibration_in_the_large": observed - table["mean_predicted"],
        "citl_lower": obs_low - table["mean_predicted"], "citl_upper": obs_high - table["mean_predicted"],
        "auc": table["auc"], "auc_lower": (table["auc"] - z * table["auc_se"]).clip(0, 1),
        "auc_upper": (table["auc"] + z * table["auc_se"]).clip(0, 1),
        "n_negative": negatives, "fpr": np.where(negatives > 0, fpr, np.nan),
        "fpr_lower": np.where(negatives > 0, fpr_low, np.nan), "fpr_upper": np.where(negatives > 0, fpr_high, np.nan),
        "fnr": np.where(events > 0, fnr, np.nan), "fnr_lower": np.where(events > 0, fnr_low, np.nan),
        "fnr_upper": np.where(events > 0, fnr_high, np.nan),
    })


@dataclass
class RiskModelResult:
    """The fitted risk model and its validation; tables are empty when ``status`` is not ok."""

    status: str
    message: str = ""
    coefficients: pd.DataFrame = field(default_factory=pd.DataFrame)
    performance: pd.DataFrame = field(default_factory=pd.DataFrame)
    deciles: pd.DataFrame = field(default_factory=pd.DataFrame)
    fairness: pd.DataFrame = field(default_factory=pd.DataFrame)
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)


def predict_risk(coefficients: pd.DataFrame, data: pd.DataFrame, covariates: Sequence[str],
                 categorical: Sequence[str]) -> np.ndarray:
    """Predicted risk from a coefficient table (``term, coef``); a category level the model did
    not see takes the reference level's risk (its column gets no weight)."""
    coef = coefficients.set_index("term")["coef"]
    design = numeric_design(data, covariates, categorical)
    linear = coef[INTERCEPT] + design.matrix @ coef.reindex(design.names, fill_value=0.0).to_numpy()
    return 1 / (1 + np.exp(-linear))


def fit_risk_model(
    people: pd.DataFrame,
    outcome: str,
    covariates: Sequence[str],
    categorical: Sequence[str],
    quarter: str,
    test_quarters: int,
    thresholds: Sequence[float],
    audit_groups: Sequence[str],
    in_pool=None,
    min_outcomes: int = MIN_OUTCOMES,
    conf_level: float = 0.95,
) -> RiskModelResult:
    """Fit on the earlier quarters of the pool, validate on its latest ``test_quarters``, score everyone.

    Args:
        people: people to give a predicted risk and band, with the 0/1 ``outcome``, covariates,
            ``quarter`` labels and the ``audit_groups`` columns.
        in_pool: True for the people no programme touched, on whom the model is fitted and
            validated (default: everyone).
        min_outcomes: fewest people with and without a reoffence in each of the training and
            test quarters (at least the disclosure threshold, so the card's counts can be shown).

    ``scores`` holds every person's ``predicted_risk``, ``risk_band`` and ``model_sample``
    ('train', 'test', or missing outside the pool), in the order of ``people``.
    """
    in_pool = np.ones(len(people), dtype=bool) if in_pool is None else np.asarray(in_pool, dtype=bool)
    quarters = people[quarter]
    try:
        test = np.zeros(len(people), dtype=bool)
        test[in_pool] = temporal_split(quarters[in_pool], test_quarters)
    except ValueError as error:
        return RiskModelResult("not_fitted", str(error))
    train = in_pool & ~test
    y = people[outcome].to_numpy(dtype=float)
    for name, rows in (("training", train), ("test", test)):
        events = int(y[rows].sum())
        if min(events, int(rows.sum()) - events) < min_outcomes:
            return RiskModelResult("not_fitted", f"the {name} quarters hold fewer than {min_outcomes} people "
                                                 "with or without a proven reoffence")
    training = people.loc[train, [outcome, *covariates]]
    # A categorical column's levels are those of the training rows, as for text (no all-zero indicator).
    training = training.assign(**{name: training[name].cat.remove_unused_categories() for name in covariates
                                  if isinstance(training[name].dtype, pd.CategoricalDtype)})
    try:
        fit = fit_propensity(training, outcome, covariates, categorical)
    except PropensityModelError as error:
        return RiskModelResult("not_fitted", f"the risk model cannot be estimated: {error}")
    coefficients = fit.to_frame()
    risk = predict_risk(coefficients, people, covariates, categorical)
    y_test, risk_test = y[test], risk[test]
    auc = auc_delong(y_test, risk_test, conf_level)
    cal = calibration(y_test, risk_test)
    performance = pd.DataFrame([{
        "train_from": quarters[train].min(), "train_to": quarters[train].max(),
        "test_from": quarters[test].min(), "test_to": quarters[test].max(),
        "n_train": int(train.sum()), "n_test": int(test.sum()),
        "reoffended_train": float(y[train].mean()), "reoffended_test": float(y_test.mean()),
        "auc": auc.auc, "auc_lower": auc.lower, "auc_upper": auc.upper, "auc_train": auc_delong(y[train], risk[train]).auc,
        "brier": brier_score(y_test, risk_test), "calibration_intercept": cal.intercept,
        "calibration_intercept_se": cal.intercept_se, "calibration_slope": cal.slope,
        "calibration_slope_se": cal.slope_se,
    }])
    groups = people.loc[test, list(audit_groups)].reset_index(drop=True)
    fairness = fairness_audit(y_test, risk_test, groups, thresholds, conf_level)
    scores = pd.DataFrame({
        "predicted_risk": risk, "risk_band": risk_bands(risk, thresholds),
        "model_sample": pd.Categorical.from_codes(np.where(in_pool, test, -1), ["train", "test"]),
    }, index=people.index)
    return RiskModelResult(STATUS_OK, coefficients=coefficients, performance=performance,
                           deciles=decile_calibration(y_test, risk_test, conf_level), fairness=fairness, scores=scores)


def model_card(result: RiskModelResult, covariates: Sequence[str], thresholds: Sequence[float],
               outcome_words: str, population_words: str, min_group: int = MIN_OUTCOMES) -> pd.DataFrame:
    """The model card: what the model is, what it is for and not for, how well it does and its limits.

    One row per (section, item) with the text in plain words; numbers come from ``result``. The
    fairness results name only groups with at least ``min_group`` people with and without a reoffence.
    """
    low, high = thresholds
    rows = [
        ("Model", "What it is", f"A logistic regression that predicts {outcome_words} from recorded characteristics "
                                f"at the index date: {', '.join(covariates).replace('_', ' ')}."),
        ("Model", "Risk bands", f"Low: predicted risk below {low:.0%}; medium: {low:.0%} to below {high:.0%}; "
                                f"high: {high:.0%} or more."),
        ("Intended use", "Evaluation only", "To describe people in risk bands so an evaluation can ask whether a "
                                            "programme works better for people at higher risk of reoffending."),
        ("Prohibited uses", "Decisions about a person", "Not for decisions about any individual: not for "
                                                         "sentencing, supervision, eligibility, referral, priority "
                                                         "or any other choice made about a person. No individual "
                                                         "score appears in any report."),
        ("Data", "Who it was fitted on", population_words),
    ]
    if result.status != STATUS_OK:
        rows.append(("Performance", "Status", f"The model was not fitted for this run: {result.message}."))
    else:
        p = result.performance.iloc[0]
        rows += [
            ("Data", "Period", f"Fitted on index quarters {p.train_from} to {p.train_to}; tested on the later "
                               f"quarters {p.test_from} to {p.test_to} (temporal validation)."),
            ("Data", "People", f"{p.n_train:,} people in the training quarters and {p.n_test:,} in the test quarters; "
                               f"{p.reoffended_train:.1%} and {p.reoffended_test:.1%} of them reoffended."),
            ("Performance", "Discrimination", f"AUC {p.auc:.3f} (95% CI {p.auc_lower:.3f} to {p.auc_upper:.3f}) on the "
                                              f"test quarters ({p.auc_train:.3f} on the training quarters). 0.5 is "
                                              "chance, 1 a perfect ranking."),
            ("Performance", "Accuracy", f"Brier score {p.brier:.3f} (the mean squared gap between predicted risk and "
                                        "outcome; lower is better)."),
            ("Performance", "Calibration", f"Calibration intercept {p.calibration_intercept:+.3f} (SE "
                                           f"{p.calibration_intercept_se:.3f}; 0 means the average risk is right) and "
                                           f"slope {p.calibration_slope:.3f} (SE {p.calibration_slope_se:.3f}; 1 means "
                                           "predictions are neither too extreme nor too modest)."),
            ("Fairness", "Audit", "Calibration-in-the-large, AUC and the false-positive and false-negative rates at "
                                  "the band thresholds are reported per sex, ethnic group and age band on the test "
                                  "quarters, with 95% intervals. Groups with few people have wide intervals or "
                                  "suppressed values."),
        ]
        rows += _fairness_lines(result.fairness, min_group)
    rows += [
        ("Limitations", "Recorded offending", "It predicts proven reoffending, which depends on policing and "
                                              "prosecution as well as behaviour: groups policed more heavily can "
                                              "look riskier than they are."),
        ("Limitations", "Change over time", "Validated on the latest quarters of this extract only; risk and "
                                            "recording change over time and between areas."),
        ("Limitations", "Unmeasured factors", "Only recorded characteristics are used; much of what drives "
                                              "reoffending is not in the data."),
    ]
    return pd.DataFrame(rows, columns=["section", "item", "text"])


def _fairness_lines(fairness: pd.DataFrame, min_group: int) -> list[tuple[str, str, str]]:
    """The spread of the audit's results across groups, per attribute, in words."""
    flagged = (fairness["fpr"] * fairness["n_negative"]).round()
    audited = fairness[(fairness["attribute"] != "all") & (fairness["threshold_name"] == THRESHOLD_NAMES[-1])
                       & (fairness["n_reoffended"] >= min_group) & (fairness["n_negative"] >= min_group)
                       & (flagged >= min_group) & (fairness["n_negative"] - flagged >= min_group)]
    lines = []
    for attribute, groups in audited.groupby("attribute", sort=False):
        if len(groups) < 2:
            continue
        name = attribute.replace("_", " ")
        auc, gap, fpr = (groups.set_index("grp")[c] for c in ("auc", "calibration_in_the_large", "fpr"))
        worst = gap.abs().idxmax()
        lines.append(("Fairness", f"By {name}", (
            f"Across {len(groups)} groups: AUC from {auc.min():.2f} ({auc.idxmin()}) to {auc.max():.2f} "
            f"({auc.idxmax()}); the largest gap between observed and predicted reoffending {gap[worst] * 100:+.1f} "
            f"percentage points ({worst}); false-positive rate at the high band from {fpr.min():.0%} to "
            f"{fpr.max():.0%}.").replace("_", " ")))
    return lines
