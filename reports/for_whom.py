"""Report sections on for whom a programme works: the "Who benefits?" forest plot of subgroup
effects on each programme page, and the risk model's card page beside the reports.

Both read frames that have passed :func:`reports.disclosure.disclose`; no person-level score
is ever loaded for a report.
"""
from __future__ import annotations

import pandas as pd

from models.effects import MIN_TREATED
from reports import figures
from reports.build import MISSING, SUPPRESSED, Table, chart, fmt, fmt_ci, missing, rows_of, text
from reports.disclosure import numeric_cell

MODEL_CARD_PAGE = "risk-model.html"
VARIABLES = {"sex": "Sex", "age_band": "Age band", "index_type": "Index event", "risk_band": "Risk band"}
THRESHOLDS = {"medium_or_high": "medium or high", "high": "high"}
ATTRIBUTES = {"all": "Everyone", "sex": "Sex", "ethnic_group": "Ethnic group", "age_band": "Age band"}


def with_ci(value: object, lower: object, upper: object, kind: str) -> str:
    """'value (lower to upper)', or just 'suppressed'."""
    return SUPPRESSED if SUPPRESSED in (value, lower, upper) else f"{fmt(value, kind)} ({fmt_ci(lower, upper, kind)})"


def level_label(variable: str, level: object) -> str:
    words = text(level).replace("_", " ")
    if variable == "risk_band":
        words = f"{words} risk"
    return f"{VARIABLES.get(variable, variable.replace('_', ' ').capitalize())}: {words}"


def subgroup_section(pid: str, shown: dict[str, pd.DataFrame], headline_months: int) -> dict | None:
    """Forest plot and table of the programme's subgroup estimates, with the heterogeneity tests."""
    effects = rows_of(shown, "subgroup_effects", pid)
    if effects is None or effects.empty:
        return None
    effects = effects.assign(order=effects["variable"].map({v: i for i, v in enumerate(VARIABLES)}).fillna(len(VARIABLES)))
    effects = effects.sort_values("order", kind="stable")
    rows, forest = [], []
    for row in effects.itertuples(index=False):
        label = level_label(row.variable, row.level)
        if row.gate_status != "ok":
            cell = f"not published: fewer than {MIN_TREATED} matched participants"
        elif row.difference == SUPPRESSED:
            cell = SUPPRESSED
        else:
            cell = with_ci(row.difference, row.ci_lower, row.ci_upper, "pp")
        published = row.gate_status == "ok" and row.difference != SUPPRESSED
        rows.append([label, fmt(row.n_treated, "count"), fmt(row.n_comparison, "count"),
                     fmt(row.treated_value, "percent"), fmt(row.comparison_value, "percent"), cell,
                     fmt(row.p_holm, "p") if published else MISSING])
        forest.append({"label": label, "cell": cell, **{
            column: numeric_cell(getattr(row, column) if published else None) * 100
            for column in ("difference", "ci_lower", "ci_upper")}})
    frame = pd.DataFrame(forest)
    drawn = frame.dropna(subset=["difference"])
    alt = (f"Difference in the share reoffending within {headline_months} months between participants and matched "
           "comparison people in each subgroup, in percentage points with 95% confidence intervals. "
           + (" ".join(f"{r.label}: {r.cell}." for r in drawn.itertuples(index=False))
              if len(drawn) else "No subgroup has enough participants for an estimate."))
    table = Table(["Subgroup", "Participants", "Comparison", "Participants reoffended", "Comparison reoffended",
                   "Difference (95% CI)", "Holm-adjusted p"], rows)
    tests = []
    heterogeneity = rows_of(shown, "subgroup_heterogeneity", pid)
    for row in ([] if heterogeneity is None else heterogeneity.itertuples(index=False)):
        name = VARIABLES.get(row.variable, row.variable).lower()
        p = fmt(row.p_value, "p")
        verdict = ("the data suggest the effect differs between them" if not missing(row.p_value) and row.p_value < 0.05
                   else "the data cannot tell the effect apart between them")
        tests.append(f"By {name}: {int(row.n_levels)} subgroups compared, p {'< 0.001' if p == '<0.001' else '= ' + p}; "
                     f"{verdict}.")
    return {
        "chart": chart("chart-subgroups", "Who benefits? Effect on reoffending by subgroup",
                       figures.forest_plot(frame), alt, table),
        "tests": tests,
        "model_card": MODEL_CARD_PAGE if "risk_model_card" in shown else None,
    }


def model_card_context(shown: dict[str, pd.DataFrame]) -> dict:
    """The model card page: the card's text, performance, calibration plot and fairness table."""
    card = shown.get("risk_model_card")
    sections: dict[str, list[dict]] = {}
    for row in ([] if card is None else card.itertuples(index=False)):
        sections.setdefault(row.section, []).append({"item": row.item, "text": row.text})
    performance = shown.get("risk_performance")
    calibration = shown.get("risk_calibration")
    fairness = shown.get("risk_fairness")
    context: dict = {"title": "Reoffending-risk model card", "sections": sections, "performance": None,
                     "calibration": None, "fairness": None}
    if performance is not None and not performance.empty:
        p = performance.iloc[0]
        context["performance"] = Table(["Measure (test quarters)", "Value"], [
            ["People (training / test)", f"{fmt(p.n_train, 'count')} / {fmt(p.n_test, 'count')}"],
            ["Reoffended (training / test)", f"{fmt(p.reoffended_train, 'percent')} / {fmt(p.reoffended_test, 'percent')}"],
            ["AUC (95% CI)", with_ci(p.auc, p.auc_lower, p.auc_upper, "ratio")],
            ["Brier score", fmt(p.brier, "ratio")],
            ["Calibration intercept (ideal 0)", fmt(p.calibration_intercept, "ratio")],
            ["Calibration slope (ideal 1)", fmt(p.calibration_slope, "ratio")],
        ])
    if calibration is not None and not calibration.empty:
        rows = [[f"Decile {int(r.decile)}", fmt(r.n, "count"), fmt(r.mean_predicted, "percent"),
                 fmt(r.observed, "percent"), fmt_ci(r.observed_lower, r.observed_upper, "percent")]
                for r in calibration.itertuples(index=False)]
        alt = ("Observed share reoffending against mean predicted risk in ten equal groups of predicted risk, with "
               "95% intervals and the line of perfect calibration. " + " ".join(
                   f"{r[0]}: predicted {r[2]}, observed {r[3]}." for r in rows))
        context["calibration"] = chart(
            "chart-calibration", "Calibration: predicted against observed reoffending, by decile",
            figures.calibration_plot(calibration), alt,
            Table(["Group", "People", "Mean predicted", "Observed", "Observed 95% CI"], rows))
    if fairness is not None and not fairness.empty:
        rows = []
        for r in fairness.itertuples(index=False):
            rows.append([f"{ATTRIBUTES.get(r.attribute, r.attribute)}: {text(r.grp).replace('_', ' ')}"
                         if r.attribute != "all" else "Everyone",
                         f"{THRESHOLDS.get(r.threshold_name, r.threshold_name)} (from {fmt(r.threshold, 'percent')})",
                         fmt(r.n, "count"),
                         with_ci(r.calibration_in_the_large, r.citl_lower, r.citl_upper, "pp"),
                         with_ci(r.auc, r.auc_lower, r.auc_upper, "ratio"),
                         with_ci(r.fpr, r.fpr_lower, r.fpr_upper, "percent"),
                         with_ci(r.fnr, r.fnr_lower, r.fnr_upper, "percent")])
        context["fairness"] = Table(["Group", "Flagged at", "People", "Observed minus predicted (95% CI)",
                                     "AUC (95% CI)", "False-positive rate (95% CI)", "False-negative rate (95% CI)"],
                                    rows)
    return context
