"""The funders' HTML reports, built from hand-made results frames.

The frames follow the results schemas; the numbers are chosen so that what must show (or must
not show) is known in advance: a programme named like a script, counts of 7 under a threshold
of 10, a share of 3 people out of 7.
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import plotly.offline
import pytest

from desist import warehouse
from desist.config import Settings, load_settings, write_settings
from pipelines.reports import html_reports
from pipelines.resources import Warehouse
from reports.build import (
    PLOTLY_JS, TABLE_SOURCES, ReportData, build_reports, covariate_label, fmt, load_report_data, page_file_name,
    p_text, proportional_hazards_notes, verdict,
)
from reports.disclosure import (
    SUPPRESSED, coarsen_km_curves, disclose, disclose_attrition, disclose_effects, disclose_indicators,
    disclose_unmatched, hide_differences, numeric, numeric_cell, suppress,
)

HOSTILE = "<script>alert(1)</script>"
COVARIATES = ["age_at_index", "prior_proven_offences", "risk_score", "female"]


def km_curve(programme_id: str, grp: str, people: int, daily_hazard: float, seed: int) -> pd.DataFrame:
    """A Kaplan–Meier table over two years for `people` with a constant hazard and some censoring."""
    rng = np.random.default_rng(seed)
    event_day = np.ceil(rng.exponential(1 / daily_hazard, people))
    censor_day = np.ceil(rng.uniform(400, 900, people))
    day = np.minimum(event_day, censor_day).clip(max=730)
    event = (event_day <= censor_day) & (event_day <= 730)
    times = np.unique(day[event])
    at_risk = (day[None, :] >= times[:, None]).sum(axis=1)
    events = (event[None, :] & (day[None, :] == times[:, None])).sum(axis=1)
    survival = np.cumprod(1 - events / at_risk)
    return pd.DataFrame({"programme_id": programme_id, "grp": grp, "time_days": times, "n_at_risk": at_risk,
                         "n_events": events, "survival": survival,
                         "lower": (survival - 0.05).clip(0, 1), "upper": (survival + 0.05).clip(0, 1)})


def effects_rows(programme_id: str, n_treated: int, n_comparison: int, treated_rate: float,
                 comparison_rate: float, gate: str = "ok") -> list[dict]:
    rows = []
    for window, scale in ((6, 0.6), (12, 1.0), (24, 1.3)):
        t, c = treated_rate * scale, comparison_rate * scale
        for estimator, shift in (("matched", 0.0), ("naive", -0.03), ("adjusted", 0.01)):
            difference = t - c + shift
            low, high = difference - 0.06, difference + 0.06
            sentence = (f"For 100 typical people who took part, compared with 100 similar people who did not, "
                        f"between {abs(high) * 100:.0f} and {abs(low) * 100:.0f} fewer reoffended within a year.")
            rows.append(dict(
                programme_id=programme_id, measure="reoffended", window_months=window, estimator=estimator,
                n_treated=n_treated, n_comparison=n_comparison, treated_value=t, comparison_value=c + shift * -1,
                difference=difference, ci_lower=low, ci_upper=high, p_value=0.012, risk_ratio=t / c,
                rr_lower=0.7, rr_upper=0.95, e_value=1.74, e_value_ci=1.21, gate_status=gate, sentence=sentence))
        rows.append(dict(
            programme_id=programme_id, measure="frequency", window_months=window, estimator="matched",
            n_treated=n_treated, n_comparison=n_comparison, treated_value=0.81 * scale,
            comparison_value=1.02 * scale, difference=-0.21 * scale, ci_lower=-0.4, ci_upper=-0.02,
            p_value=0.03, risk_ratio=None, rr_lower=None, rr_upper=None, e_value=None, e_value_ci=None,
            gate_status=gate, sentence=None))
    return rows


def example_tables() -> dict[str, pd.DataFrame]:
    """Two programmes: P01 (named like a script, 240 participants) and P02 (7 participants)."""
    programmes = pd.DataFrame({
        "programme_id": ["P01", "P02"], "name": [HOSTILE, "Small Steps"],
        "programme_type": ["structured_mentoring", "peer_mentoring"], "provider": ["Northway Trust", "Eastgate"],
        "n_enrolled": [300, 9], "n_treated_analysed": [240, 7], "n_comparison_pool": [5200, 5100],
        "status": ["analysed", "too_few_treated"],
    })
    effects = pd.DataFrame(effects_rows("P01", 228, 228, 0.312, 0.384)
                           + effects_rows("P02", 7, 7, 3 / 7, 0.5, gate="too_few_treated"))
    rng = np.random.default_rng(7)
    treated = np.r_[np.ones(240, bool), np.zeros(1200, bool)]
    propensity = np.where(treated, rng.beta(3, 5, treated.size), rng.beta(2, 6, treated.size))
    matched = np.r_[np.ones(228), np.zeros(12), (np.arange(1200) < 228).astype(float)]
    matched_sets = pd.DataFrame({
        "programme_id": "P01", "person_id": [f"X{i:05d}" for i in range(treated.size)], "treated": treated,
        "subclass": np.where(matched > 0, 1, np.nan), "weight": matched,
        "logit_score": np.log(propensity / (1 - propensity)), "propensity": propensity,
    })
    balance = pd.DataFrame([
        dict(programme_id="P01", covariate=cov, stage=stage, mean_treated=0.0, mean_comparison=0.0,
             smd=smd, variance_ratio=vr, ecdf_mean=0.01, ecdf_max=0.05, smd_ok=abs(smd) < 0.1, vr_ok=True)
        for cov, before, after in zip(COVARIATES, [0.42, -0.31, 0.25, 0.08], [0.03, -0.05, 0.12, 0.01])
        for stage, smd, vr in (("before", before, 1.4), ("after", after, 1.05))
    ])
    sample_sizes = pd.DataFrame({
        "programme_id": ["P01", "P01"], "grp": ["treated", "comparison"], "n_all": [240, 1200],
        "n_matched": [228, 228], "n_unmatched": [12, 972], "n_discarded": [0, 0]})
    unmatched = pd.DataFrame({"programme_id": "P01", "person_id": [f"X{i:05d}" for i in range(228, 240)],
                              "reason": ["no comparison person within the caliper"] * 12})
    km_curves = pd.concat([km_curve("P01", "treated", 228, 0.0011, 1), km_curve("P01", "comparison", 228, 0.0015, 2)],
                          ignore_index=True)
    horizons = []
    for grp, curve in km_curves.groupby("grp"):
        for days, label in ((91, "3 months"), (365, "12 months"), (730, "24 months")):
            before = curve[curve["time_days"] <= days]
            horizons.append(dict(programme_id="P01", grp=grp, horizon_days=days, horizon_label=label,
                                 n_at_risk=int(curve.loc[curve["time_days"] > days, "n_at_risk"].max()
                                               if (curve["time_days"] > days).any() else 4),
                                 cumulative_reoffending=1 - before["survival"].iloc[-1],
                                 lower=1 - before["upper"].iloc[-1], upper=1 - before["lower"].iloc[-1]))
    share, score = "proportion", "mean change in score (1-10 scale)"
    indicators = [
        dict(programme_id="P01", period="all", criterion_id="reoffending", label="Fewer participants reoffend",
             indicator="reoffending_rate_difference", estimate=-0.072, ci_lower=-0.132, ci_upper=-0.012, n=228,
             target=0.0, direction="decrease", status="met",
             unit="difference in proportions (participants minus matched comparison)", notes=None),
        dict(programme_id="P01", period="all", criterion_id=None, label="Share who completed rather than withdrew",
             indicator="completion_rate", estimate=0.62, ci_lower=0.55, ci_upper=0.69, n=180, target=None,
             direction=None, status=None, unit=share, notes=None),
    ]
    indicators += [  # whole period only: 7 of 24 settled is a share resting on a count under 10
        dict(programme_id="P01", period="all", criterion_id="settled_accommodation", label="Settled accommodation",
             indicator="settled_accommodation_gain", estimate=7 / 24, ci_lower=0.13, ci_upper=0.49, n=24, target=0.25,
             direction="at_least", status="inconclusive", unit=share, notes=None),
        dict(programme_id="P01", period="all", criterion_id="satisfied_share.staff",
             label="Stakeholders satisfied (staff responses)", indicator="share_satisfied", estimate=0.6,
             ci_lower=0.4, ci_upper=0.8, n=30, target=0.8, direction="at_least", status="not_met", unit=share,
             notes=None),
    ]
    for period in ("all", "2022Q1", "2022Q2", "2022Q3"):
        indicators += [
            dict(programme_id="P01", period=period, criterion_id="employment", label="Employment improves",
                 indicator="employment_gain", estimate=0.41, ci_lower=0.33, ci_upper=0.49,
                 n=150 if period == "all" else 40, target=0.5, direction="at_least", status="not_met", unit=share,
                 notes=None),
            dict(programme_id="P01", period=period, criterion_id="life_skills", label="Life skills improve",
                 indicator="life_skills_change", estimate=1.1, ci_lower=-0.2, ci_upper=2.4,
                 n=140 if period == "all" else 35, target=1.0, direction="increase", status="inconclusive",
                 unit=score, notes=None),
            dict(programme_id="P01", period=period, criterion_id="satisfied_share", label="Stakeholders satisfied",
                 indicator="share_satisfied", estimate=3 / 7, ci_lower=0.1, ci_upper=0.8, n=7, target=0.8,
                 direction="at_least", status="not_enough_data", unit=share,
                 notes="suppressed: fewer than 10 people or responses"),
        ]
    attrition = pd.DataFrame([
        dict(programme_id="P01", cohort_group="participants", step_number=i, step=step, people=people,
             lost=lost, reason=reason)
        for i, (step, people, lost, reason) in enumerate([
            ("enrolled", 300, None, None), ("linked_to_index_event", 281, 19, "no index event nearby"),
            ("eligible_index_event", 262, 19, "outside the cohort period"),
            ("complete_follow_up", 247, 15, "follow-up not complete"),
            ("analysed", 240, 7, "a covariate is missing")], start=1)
    ] + [
        dict(programme_id="P01", cohort_group="comparison", step_number=i, step=step, people=people,
             lost=lost, reason=reason)
        for i, (step, people, lost, reason) in enumerate([
            ("eligible_index_event", 9000, None, None), ("never_enrolled", 8700, 300, "enrolled"),
            ("complete_follow_up", 5400, 3300, "follow-up not complete"),
            ("analysed", 5200, 200, "a covariate is missing")], start=1)
    ])
    return {
        "programmes_analysed": programmes,
        "effects": effects,
        "matched_sets": matched_sets,
        "balance": balance,
        "sample_sizes": sample_sizes,
        "unmatched": unmatched,
        "km_curves": km_curves,
        "km_horizons": pd.DataFrame(horizons),
        "logrank": pd.DataFrame({"programme_id": ["P01"], "chi2": [5.21], "df": [1], "p": [0.0225]}),
        "cox": pd.DataFrame({"programme_id": ["P01", "P01"], "model": ["matched", "adjusted"],
                             "term": ["treated", "treated"], "coef": [-0.3, -0.25], "se": [0.12, 0.11],
                             "robust_se": [0.13, 0.11], "hr": [0.74, 0.78], "hr_lower": [0.57, 0.63],
                             "hr_upper": [0.96, 0.97], "p": [0.021, 0.024]}),
        "ph_tests": pd.DataFrame({"programme_id": ["P01"], "model": ["matched"], "term": ["treated"],
                                  "statistic": [0.8], "p": [0.37], "warning": [None]}),
        "rmst": pd.DataFrame({"programme_id": ["P01"], "horizon_days": [365], "rmst_treated": [301.2],
                              "rmst_comparison": [284.9], "difference": [16.3], "se": [6.1], "ci_lower": [4.3],
                              "ci_upper": [28.3], "p": [0.0075]}),
        "indicators": pd.DataFrame(indicators),
        "diagnostics": pd.DataFrame({
            "programme_id": "P01",
            "diagnostic": ["minimum_sample", "balance", "negative_control", "power", "doubly_robust", "e_value"],
            "value": [240, 0.05, 0.04, 0.11, -0.065, 1.74], "threshold": [60, 0.1, 0.25, 0.2, None, 1.0],
            "status": ["pass", "pass", "pass", "pass", "info", "info"],
            "explanation": ["enough participants: 240 analysed (at least 60 needed)", "alike on everything",
                            "before the programme, participants and comparison people offended alike",
                            "the matched sample can detect a reduction of 11.0 percentage points or more",
                            "matching and regression together give -6.5 percentage points",
                            "a hidden characteristic would need a risk ratio of 1.74"]}),
        "attrition": attrition,
        "run_info": pd.DataFrame({"run_id": ["run-7f3a"], "started_at": [pd.Timestamp("2025-07-01 06:00", tz="UTC")],
                                  "code_version": ["0.1.0+abc1234"], "input_fingerprint": ["e3b0c44298fc1c14"],
                                  "settings_hash": ["9f86d081884c7d65"], "data_cutoff": [pd.Timestamp("2025-06-30").date()]}),
    }


def subgroup_tables() -> dict[str, pd.DataFrame]:
    """P01's subgroups: sex with 7 'other' participants (gated, and too few to show), and risk bands."""
    rows = [
        # variable, level, n_treated, n_comparison, treated, comparison, difference, ci, p, p_holm, gate
        ("sex", "female", 70, 70, 0.20, 0.30, -0.10, (-0.22, 0.02), 0.10, 0.30, "ok"),
        ("sex", "male", 151, 151, 0.34, 0.40, -0.06, (-0.14, 0.02), 0.15, 0.30, "ok"),
        ("sex", "other", 7, 7, None, None, None, (None, None), None, None, "too_few_treated"),
        ("risk_band", "low", 80, 80, 0.15, 0.175, -0.025, (-0.12, 0.07), 0.61, 0.61, "ok"),
        ("risk_band", "high", 90, 90, 0.40, 0.55, -0.15, (-0.29, -0.01), 0.04, 0.16, "ok"),
    ]
    effects = pd.DataFrame([dict(
        programme_id="P01", variable=v, level=level, n_treated=nt, n_comparison=nc, treated_value=t,
        comparison_value=c, difference=d, se=None if d is None else 0.06, ci_lower=lo, ci_upper=hi, p_value=p,
        p_holm=ph, n_clusters=nt, gate_status=gate)
        for v, level, nt, nc, t, c, d, (lo, hi), p, ph, gate in rows])
    heterogeneity = pd.DataFrame({"programme_id": ["P01", "P01"], "variable": ["sex", "risk_band"],
                                  "n_levels": [2, 2], "q": [0.31, 1.72], "df": [1, 1], "p_value": [0.578, 0.0412]})
    return {"subgroup_effects": effects, "subgroup_heterogeneity": heterogeneity}


def risk_model_tables() -> dict[str, pd.DataFrame]:
    """The risk model's tables: a fairness audit whose 'other' sex group has 8 people."""
    performance = pd.DataFrame([dict(
        train_from="2019Q1", train_to="2022Q4", test_from="2023Q1", test_to="2023Q4", n_train=4000, n_test=1000,
        reoffended_train=0.31, reoffended_test=0.32, auc=0.718, auc_lower=0.684, auc_upper=0.752, auc_train=0.71,
        brier=0.19, calibration_intercept=-0.04, calibration_intercept_se=0.07, calibration_slope=1.06,
        calibration_slope_se=0.09)])
    predicted = np.linspace(0.08, 0.62, 10)
    events = np.array([9, 14, 18, 25, 27, 33, 36, 44, 52, 62])
    calibration = pd.DataFrame({"decile": np.arange(1, 11), "n": 100, "n_reoffended": events,
                                "mean_predicted": predicted, "observed": events / 100,
                                "observed_lower": events / 100 - 0.07, "observed_upper": events / 100 + 0.08})
    fairness = pd.DataFrame([dict(
        attribute=a, grp=g, threshold_name=name, threshold=t, n=n, n_reoffended=e, observed=e / n,
        mean_predicted=0.31, calibration_in_the_large=e / n - 0.31, citl_lower=e / n - 0.36,
        citl_upper=e / n - 0.26, auc=0.7, auc_lower=0.65, auc_upper=0.75, n_negative=n - e, fpr=fp / (n - e),
        fpr_lower=0.1, fpr_upper=0.9, fnr=fn / e, fnr_lower=0.1, fnr_upper=0.9)
        for a, g, n, e, fp, fn in [("all", "all", 1000, 320, 200, 120), ("sex", "female", 150, 40, 30, 15),
                                   ("sex", "male", 842, 277, 168, 103), ("sex", "other", 8, 3, 2, 2)]
        for name, t in (("medium_or_high", 0.2), ("high", 0.4))])
    card = pd.DataFrame({"section": ["Model", "Prohibited uses", "Performance"],
                         "item": ["What it is", "Decisions about a person", "Discrimination"],
                         "text": ["A logistic regression.", "Not for decisions about any individual.",
                                  "AUC 0.718 on the test quarters."]})
    return {"risk_model_card": card, "risk_performance": performance, "risk_calibration": calibration, "risk_fairness": fairness}


def example_settings(folder: Path, **overrides) -> Settings:
    (folder / "landing").mkdir(parents=True, exist_ok=True)
    return load_settings(write_settings(folder, folder / "landing", disclosure={"min_count": 10}, **overrides))


def build_example(folder: Path, tables: dict[str, pd.DataFrame] | None = None, **overrides) -> dict[str, str]:
    """Build the example reports (with the subgroup and risk-model tables) into folder/reports, with
    the example settings and any overrides; return their html by file name."""
    tables = {**example_tables(), **subgroup_tables(), **risk_model_tables()} if tables is None else tables
    data = ReportData(settings=example_settings(folder, **overrides), tables=tables)
    paths = build_reports(data, folder / "reports")
    return {path.name: path.read_text(encoding="utf-8") for path in paths}


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, str]:
    return build_example(tmp_path_factory.mktemp("pages"))


def without_plotlyjs(page: str) -> str:
    return page.replace(PLOTLY_JS.read_text(encoding="utf-8"), "")


def chart_specs(page: str) -> dict[str, dict]:
    return {
        chart_id: json.loads(body)
        for chart_id, body in re.findall(
            r'<script type="application/json" class="chart-spec" data-chart="([^"]+)">(.*?)</script>', page, re.S)
    }


def values(data: object) -> list:
    """A plotly data array as a list: plotly writes numeric arrays as base64 typed arrays."""
    if isinstance(data, dict) and "bdata" in data:
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"])).tolist()
    return list(data)


def cells(row_text: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"\s{2,}", row_text) if cell.strip()]


def table_row(page: str, first_cell: str) -> str:
    """The text of the table row whose header cell is `first_cell`."""
    match = re.search(r"<tr><th scope=\"row\">" + re.escape(first_cell) + r"</th>(.*?)</tr>", page, re.S)
    assert match, f"no table row for {first_cell!r}"
    return re.sub(r"<[^>]+>", " ", re.sub(r"</?span[^>]*>", "", match.group(1)))


# ---------------------------------------------------------------------------------------------
# Pages


def test_one_page_per_programme_an_index_and_the_model_card(pages):
    assert sorted(pages) == ["P01.html", "P02.html", "index.html", "risk-model.html"]


def test_hostile_programme_name_is_escaped_everywhere(pages):
    for name in ("P01.html", "index.html"):
        page = without_plotlyjs(pages[name])
        assert HOSTILE not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        # Scripts on the page: plotly.js, one spec per chart and the drawing code; nothing else opens or closes one.
        assert page.count("<script") == page.count("</script>") == 3 + len(chart_specs(page))  # plotly.js, its template, charts.js
    title = re.search(r"<h1>(.*?)</h1>", pages["P01.html"]).group(1)
    assert title == "&lt;script&gt;alert(1)&lt;/script&gt;"


def test_embedded_chart_json_cannot_close_its_script_element(pages):
    index = without_plotlyjs(pages["index.html"])
    body = re.search(r'data-chart="chart-forest">(.*?)</script>', index, re.S).group(1)
    assert "<" not in body and ">" not in body
    assert "\\u003c" in body  # the name is there, escaped
    forest = chart_specs(index)["chart-forest"]
    # plotly reads tags in its strings, so the label is HTML-escaped for it and shows as typed
    assert forest["data"][0]["y"] == ["&lt;script&gt;alert(1)&lt;/script&gt;", "Small Steps"]


def test_vendored_plotlyjs_is_the_basic_bundle_of_the_version_plotly_draws_for():
    header = PLOTLY_JS.read_text(encoding="utf-8")[:200]
    assert f"plotly.js (basic - minified) v{plotly.offline.get_plotlyjs_version()}" in header
    assert "MIT" in (PLOTLY_JS.parent / "plotly.js-LICENSE").read_text()


def test_plotlyjs_embedded_once_and_nothing_fetched(pages):
    plotlyjs = PLOTLY_JS.read_text(encoding="utf-8")
    for name, page in pages.items():
        assert page.count(plotlyjs) == 1, name
        rest = page.replace(plotlyjs, "")
        assert re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", rest, re.I) == [], name
        assert "cdn.plot.ly" not in rest and "mathjax" not in rest.lower()
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in rest
        assert "@media print" in rest
        assert "default-src 'none'" in rest  # the browser refuses any fetch the page might attempt
        assert "Synthetic data." not in rest  # the example's landing folder holds no generator's ground truth
        assert 'id="glossary-hazard-ratio"' in rest and 'href="#glossary-' in rest


def test_headline_leads_with_the_sentence_in_plain_words(pages):
    page = without_plotlyjs(pages["P01.html"])
    sentence = re.search(r'<p class="sentence">(.*?)</p>', page, re.S).group(1)
    # matched, reoffended, 12 months: difference 0.312 - 0.384 = -0.072, CI -0.132 to -0.012
    assert sentence == ("For 100 typical people who took part, compared with 100 similar people who did not, "
                        "between 1 and 13 fewer reoffended within a year.")
    assert page.index('class="sentence"') < page.index('id="scorecard"')
    words = re.sub(r"<[^>]+>", "", page)
    assert "31.2% of participants and 38.4% of the matched comparison group reoffended" in words
    assert ("a difference of −7.2 percentage points (95% confidence interval −13.2 pp to −1.2 pp; p = 0.012)"
            in words)
    verdict = re.search(r'<p class="verdict">(.*?)</p>', page, re.S).group(1)
    assert verdict.startswith("Participants reoffended less than similar people who did not take part")


def test_scorecard_shows_status_in_words_and_symbols(pages):
    page = without_plotlyjs(pages["P01.html"])
    scorecard = re.search(r'<table class="scorecard stack wide">(.*?)</table>', page, re.S).group(1)
    for symbol, words in (("✓", "Met"), ("✗", "Not met"), ("?", "Inconclusive"), ("–", "Not enough data")):
        assert f'<span class="symbol" aria-hidden="true">{symbol}</span> {words}</span>' in scorecard
    assert cells(table_row(scorecard, "Employment improves")) == [
        "✗ Not met", "change among participants — not compared with people who did not take part", "Employment gain", "41.0%", "33.0% to 49.0%", "at least 50.0%", "150", "—"]
    assert cells(table_row(scorecard, "Fewer participants reoffend"))[:5] == [
        "✓ Met", "Reoffending rate difference", "−7.2 pp", "−13.2 pp to −1.2 pp", "below 0.0 pp"]
    assert cells(table_row(scorecard, "Life skills improve"))[2:4] == [
        "Life skills change (mean change in score (1-10 scale))", "1.10"]
    descriptive = re.search(r'<table class="descriptive stack">(.*?)</table>', page, re.S).group(1)
    assert cells(table_row(descriptive, "Share who completed rather than withdrew")) == [
        "62.0%", "55.0% to 69.0%", "180", "—"]


def test_reoffending_table_shows_naive_and_adjusted_beside_matched(pages):
    row = table_row(without_plotlyjs(pages["P01.html"]), "Proven reoffending rate")
    assert cells(row)[:8] == ["6 months", "18.7%", "23.0%", "−4.3 pp (−10.3 pp to +1.7 pp)", "0.012",
                         "−7.3 pp (−13.3 pp to −1.3 pp)", "−3.3 pp (−9.3 pp to +2.7 pp)", "228"]


def test_every_chart_has_alt_text_and_a_data_table(pages):
    page = without_plotlyjs(pages["P01.html"])
    figures = re.findall(r'<figure class="chart-figure".*?</figure>', page, re.S)
    assert len(figures) == len(chart_specs(page)) == 8
    for figure in figures:
        label = re.search(r'role="img" aria-label="([^"]+)"', figure).group(1)
        assert len(label) > 40
        assert f"<figcaption>{label}</figcaption>" in figure
        assert "<summary>Numbers behind this chart</summary>" in figure and "<tbody>" in figure


def test_charts_use_the_okabe_ito_palette(pages):
    specs = chart_specs(pages["P01.html"])
    colours = {trace["line"]["color"] for trace in specs["chart-survival"]["data"] if trace.get("showlegend", True)}
    assert colours == {"#0072B2", "#E69F00"}
    dashes = {trace["line"]["dash"] for trace in specs["chart-survival"]["data"] if trace.get("showlegend", True)}
    assert dashes == {"solid", "dash"}  # the groups differ in line style too, not in colour alone


def test_love_plot_draws_the_threshold_lines(pages):
    layout = chart_specs(pages["P01.html"])["chart-balance"]["layout"]
    assert sorted(shape["x0"] for shape in layout["shapes"]) == [-0.1, 0, 0.1]


def test_unmatched_participants_counted_and_listed(pages):
    page = without_plotlyjs(pages["P01.html"])
    assert "Unmatched participants: <strong>12</strong>" in page
    assert "X00228, X00229" in page and "X00239" in page


def test_provenance_from_run_info(pages):
    page = without_plotlyjs(pages["index.html"])
    for value in ("run-7f3a", "0.1.0+abc1234", "e3b0c44298fc1c14", "9f86d081884c7d65", "2025-06-30"):
        assert f"<dd>{value}</dd>" in page


def test_portfolio_has_forest_plot_and_summary_table(pages):
    index = without_plotlyjs(pages["index.html"])
    forest = chart_specs(index)["chart-forest"]["data"][0]
    x = values(forest["x"])
    assert x[0] == pytest.approx(-7.2) and np.isnan(x[1])  # P02 is below the JDL gate
    row = table_row(index, '<a href="P01.html">&lt;script&gt;alert(1)&lt;/script&gt;</a>')
    assert "228" in row and "31.2%" in row and "−7.2 pp (−13.2 pp to −1.2 pp)" in row and "1 of 5" in row
    assert "not enough data" in table_row(index, '<a href="P02.html">Small Steps</a>')


def test_missing_tables_read_not_available(tmp_path):
    tables = {name: frame for name, frame in example_tables().items()
              if name in ("programmes_analysed", "effects")}
    pages = build_example(tmp_path, tables)
    page = without_plotlyjs(pages["P01.html"])
    for what in ("The success-criteria scorecard", "Matching diagnostics", "The attrition funnel",
                 "Reoffending curves", "Success criteria by quarter"):
        assert f"{what}: not available for this run." in page
    assert "<dd>not available</dd>" in page
    assert len(chart_specs(page)) == 2  # the reoffending charts, drawn from results.effects


def test_rebuild_replaces_stale_pages(tmp_path):
    out = tmp_path / "reports"
    build_example(tmp_path)
    tables = example_tables()
    tables["programmes_analysed"] = tables["programmes_analysed"].iloc[:1]
    pages = build_example(tmp_path, tables)
    assert sorted(p.name for p in out.iterdir()) == sorted(pages) == ["P01.html", "index.html"]


def test_published_folders_replace_their_old_copy_and_other_folders_survive(tmp_path):
    data = ReportData(settings=example_settings(tmp_path), tables=example_tables())
    out = tmp_path / "reports"
    for folder, page in (("data-quality", "old.html"), ("extra", "kept.html")):
        (out / folder).mkdir(parents=True)
        (out / folder / page).write_text(folder)
    docs = tmp_path / "docs"
    (docs / "static").mkdir(parents=True)
    (docs / "index.html").write_text("new docs")
    (docs / "static" / "style.css").write_text("css")
    build_reports(data, out, folders={"data-quality": docs})
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.parent != out) == [
        "data-quality/index.html", "data-quality/static/style.css", "extra/kept.html"]
    assert (out / "data-quality" / "index.html").read_text() == "new docs"
    # A folder whose source is missing keeps its published copy.
    build_reports(data, out, folders={"data-quality": tmp_path / "absent"})
    assert (out / "data-quality" / "index.html").read_text() == "new docs" and (out / "extra" / "kept.html").exists()


def test_pages_from_cached_templates_equal_pages_from_freshly_compiled_ones(tmp_path, pages, monkeypatch):
    """The compiled templates kept in Jinja's cache folder give the same pages as compiling them anew."""
    import reports.build

    monkeypatch.setattr(reports.build, "bytecode_cache", lambda: None)
    fresh = build_example(tmp_path)
    built = re.compile(r"<dt>Page built</dt><dd>[^<]*</dd>")
    assert sorted(fresh) == sorted(pages)
    for name, page in pages.items():
        assert built.sub("", fresh[name]) == built.sub("", page), name


def test_collection_is_paused_while_pages_are_built_and_restored_after(tmp_path, monkeypatch):
    import gc

    import reports.build

    seen = []
    render = reports.build.render_pages
    monkeypatch.setattr(reports.build, "render_pages", lambda *args: (seen.append(gc.isenabled()), render(*args))[1])
    assert gc.isenabled()
    assert sorted(build_example(tmp_path / "on")) == ["P01.html", "P02.html", "index.html", "risk-model.html"]
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(ValueError, match="no disclosure rule for table 'mystery'"):  # a failed build
            build_example(tmp_path / "off", tables={"mystery": pd.DataFrame({"n": [3]})})
        assert not gc.isenabled()  # left as it found it
    finally:
        gc.enable()


def test_gated_estimates_carry_a_numbered_note(pages):
    page = without_plotlyjs(pages["P02.html"])
    assert cells(table_row(page, "Proven reoffending rate"))[0] == "6 months [1]"
    assert '<li value="1">[1] Not published: fewer than 60 participants.</li>' in page


def test_gate_wording_names_the_configured_minimum(tmp_path):
    page = without_plotlyjs(build_example(tmp_path, diagnostics={"min_participants": 40})["P02.html"])
    assert '<li value="1">[1] Not published: fewer than 40 participants.</li>' in page
    assert '<p class="sentence">Fewer than 40 participants could be analysed' in page
    assert "An estimate needs at least 40 participants" in page
    assert "fewer than 60 participants" not in page.lower()


def test_cells_read_the_same_from_python_and_numpy_numbers():
    for value in (-0.0723, np.float64(-0.0723), np.float32(-0.0723)):
        assert fmt(value, "pp") == "−7.2 pp" and fmt(value, "percent") == "−7.2%"
    assert [fmt(v, "count") for v in (1234.4, np.float64(1234.6), 1234, np.int64(7), True)] == [
        "1,234", "1,235", "1,234", "7", "1"]
    assert [fmt(v, "p") for v in (0.0004, np.float64(0.0123), 0.5)] == ["<0.001", "0.012", "0.500"]
    assert [fmt(v, "days") for v in (np.float64(1460.0), 3.5)] == ["1,460", "4"]
    assert fmt(np.float64(0.0004), "pp") == "0.0 pp" and fmt(-0.0, "ratio") == "−0.00"
    for value in (float("nan"), np.float64("nan"), None, pd.NA):
        assert fmt(value, "percent") == "—"
    assert fmt(SUPPRESSED, "count") == SUPPRESSED


def test_balance_terms_in_words():
    assert covariate_label("distance") == "Propensity score (logit)"
    assert covariate_label("region[north_east]") == "Region: north east"
    assert covariate_label("prior_proven_offences") == "Prior proven offences"


def test_page_file_names_are_safe():
    assert page_file_name("P01") == "P01.html"
    assert page_file_name("../etc/passwd").startswith("programme-")
    assert page_file_name("index").startswith("programme-")  # never overwrites the portfolio page
    assert page_file_name("risk-model").startswith("programme-")  # nor the model card


def write_example_warehouse(settings: Settings, tables: dict[str, pd.DataFrame]) -> None:
    con = warehouse.connect(settings)
    try:
        for name, frame in tables.items():
            con.register("frame", frame)
            con.execute(f"CREATE TABLE {TABLE_SOURCES[name]} AS SELECT * FROM frame")
            con.unregister("frame")
    finally:
        con.close()


def test_load_report_data_reads_the_tables_that_exist(tmp_path):
    settings = example_settings(tmp_path)
    tables = example_tables()
    write_example_warehouse(settings, {name: tables[name] for name in ("effects", "attrition", "run_info")})
    con = warehouse.connect(settings, read_only=True)
    try:
        data = load_report_data(con, settings)
    finally:
        con.close()
    assert sorted(data.tables) == ["attrition", "effects", "run_info"]
    assert len(data.tables["effects"]) == len(tables["effects"]) == 24
    assert data.tables["attrition"]["people"].tolist() == tables["attrition"]["people"].tolist()


def test_asset_writes_the_reports_from_the_warehouse(tmp_path):
    settings = example_settings(tmp_path)
    write_example_warehouse(settings, {**example_tables(), **subgroup_tables(), **risk_model_tables()})
    result = dg.materialize([html_reports], resources={"warehouse": Warehouse(config_file=str(settings.source))})
    assert result.success
    assert sorted(p.name for p in settings.paths.reports.iterdir()) == [
        "P01.html", "P02.html", "index.html", "risk-model.html"]
    metadata = result.asset_materializations_for_node("reports__html")[0].metadata
    assert metadata["pages"].value == 4
    assert metadata["tables_not_available"].value == "staging.programmes"
    page = (settings.paths.reports / "P01.html").read_text(encoding="utf-8")
    assert "<dd>run-7f3a</dd>" in page and "Unmatched participants: <strong>12</strong>" in page


# ---------------------------------------------------------------------------------------------
# Disclosure control


def test_criteria_count_only_configured_criteria_and_list_breakdowns_beneath(pages):
    page = without_plotlyjs(pages["P01.html"])
    assert '<p class="criteria-summary"><strong>1 of 5 criteria met</strong>.</p>' in page
    scorecard = re.search(r'<table class="scorecard stack wide">(.*?)</table>', page, re.S).group(1)
    labels = re.findall(r'<th scope="row">(.*?)</th>', scorecard)
    assert labels.index("staff responses") == labels.index("Stakeholders satisfied") + 1  # beneath its criterion
    breakdown = re.search(r'<tr class="breakdown">(.*?)</tr>', scorecard, re.S).group(1)
    assert "breakdown, not counted" in breakdown and "60.0%" in breakdown and "Not met" not in breakdown


def test_a_criterion_whose_estimate_is_suppressed_shows_no_status(pages):
    row = table_row(without_plotlyjs(pages["P01.html"]), "Settled accommodation")  # 7 of 24: under 10
    assert cells(row)[:5] == ["No status: too few people to publish the estimate",
                              "change among participants — not compared with people who did not take part",
                              "Settled accommodation gain", "suppressed", "suppressed"]
    assert "29.2%" not in pages["P01.html"]


def test_small_count_and_its_rate_are_suppressed_in_the_page(pages):
    page = without_plotlyjs(pages["P01.html"])
    row = table_row(page, "Stakeholders satisfied")  # n = 7, estimate 3/7 under a threshold of 10
    assert cells(row) == ["– Not enough data", "views of people involved in the programme — not compared with people "
                          "who did not take part", "Share satisfied", "suppressed", "suppressed", "at least 80.0%",
                          "suppressed", "suppressed: fewer than 10 people or responses"]
    assert "42.9" not in page and "0.428" not in page
    trend = chart_specs(page)["chart-outcomes"]
    drawn = np.array([y for trace in trend["data"] for y in values(trace["y"])], dtype=float)
    assert len(drawn) == 18 and np.isnan(drawn).sum() == 3  # the satisfaction panel's three quarters
    assert not np.any(np.isclose(drawn, 300 / 7, atol=0.01))
    assert "suppressed" in page and "No count from 1 to 9 is shown" in page


def test_programme_below_threshold_shows_no_small_numbers(pages):
    page = without_plotlyjs(pages["P02.html"])
    main = page[page.index("<main"):page.index("</main>")]
    for row in re.findall(r"<tr>.*?</tr>", main, re.S):
        assert not re.search(r">\s*7\s*<", row), row
    assert "42.9" not in page and "0.4285" not in page
    sentence = re.search(r'<p class="sentence">(.*?)</p>', page, re.S).group(1)
    assert sentence == ("Fewer than 60 participants could be analysed, so no reoffending estimate is "
                        "published for this programme.")


def test_disclose_effects_suppresses_small_groups_and_what_is_built_on_them():
    effects = pd.DataFrame(effects_rows("P02", 7, 120, 3 / 7, 0.5)).query(
        "measure == 'reoffended' and window_months == 12 and estimator == 'matched'")
    shown = disclose_effects(effects, min_count=10).iloc[0]
    assert shown["n_treated"] == SUPPRESSED and shown["treated_value"] == SUPPRESSED
    for column in ("difference", "ci_lower", "ci_upper", "p_value", "risk_ratio", "e_value", "sentence"):
        assert shown[column] == SUPPRESSED, column
    assert shown["n_comparison"] == 120 and shown["comparison_value"] == 0.5


def test_disclose_effects_suppresses_a_rate_with_few_people_with_the_outcome():
    # 200 people, 4% reoffended: 8 people; and 96% custodial: 8 people without it
    effects = pd.DataFrame({
        "measure": ["reoffended", "custodial_reoffence", "reoffended"],
        "n_treated": [200, 200, 200], "treated_value": [0.04, 0.96, 0.30],
        "n_comparison": [200, 200, 200], "comparison_value": [0.3, 0.3, 0.35],
        **{column: [0.1, 0.1, 0.1] for column in
           ("difference", "ci_lower", "ci_upper", "p_value", "risk_ratio", "rr_lower", "rr_upper",
            "e_value", "e_value_ci")},
        "sentence": ["a", "b", "c"],
    })
    shown = disclose_effects(effects, min_count=10)
    assert shown["treated_value"].tolist() == [SUPPRESSED, SUPPRESSED, 0.30]
    assert shown["difference"].tolist() == [SUPPRESSED, SUPPRESSED, 0.1]
    assert shown["n_treated"].tolist() == [200, 200, 200]


def test_rate_recovered_with_rounding_noise_is_not_suppressed():
    # 10/30 * 30 = 9.999999999999998 in floating point: ten people, publishable
    frame = pd.DataFrame({"unit": ["proportion"], "n": [30], "estimate": [10 / 30], "ci_lower": [0.2],
                          "ci_upper": [0.5]})
    assert disclose_indicators(frame, min_count=10)["estimate"].iloc[0] == pytest.approx(1 / 3)


def test_disclose_indicators_counts_of_seven_under_ten():
    frame = pd.DataFrame({"unit": ["proportion", "points", "proportion"], "n": [7, 7, 0],
                          "estimate": [3 / 7, 6.5, 0.0], "ci_lower": [0.1, 5.0, 0.0], "ci_upper": [0.8, 8.0, 0.0]})
    shown = disclose_indicators(frame, min_count=10)
    assert shown["n"].tolist() == [SUPPRESSED, SUPPRESSED, 0]  # zero describes no one and is shown
    assert shown["estimate"].tolist() == [SUPPRESSED, SUPPRESSED, 0.0]


def test_km_curves_coarsened_to_steps_of_at_least_the_threshold():
    curves = pd.DataFrame({
        "programme_id": "P", "grp": "treated",
        "time_days": [5, 9, 14, 20, 31, 40, 52, 60],
        "n_at_risk": [100, 97, 90, 85, 70, 60, 15, 9],
        "n_events": [3, 7, 4, 6, 10, 2, 9, 5],
        "survival": [0.97, 0.90, 0.86, 0.80, 0.686, 0.663, 0.265, 0.118],
        "lower": [0.9] * 8, "upper": [1.0] * 8,
    })
    shown = coarsen_km_curves(curves, min_count=10)
    # cumulative events 3, 10, 14, 20, 30, 32, 41 (the last row has 9 at risk and is dropped):
    # kept at 10 (day 9), 20 (day 20), 30 (day 31), then 41 >= 40 (day 52)
    assert shown["time_days"].tolist() == [0, 9, 20, 31, 52]
    assert shown["cumulative_reoffending"].round(3).tolist() == [0, 0.10, 0.20, 0.314, 0.735]
    assert list(shown.columns) == ["programme_id", "grp", "time_days", "cumulative_reoffending", "lower", "upper"]


def pairwise_hidden(values: list, groups: list, min_count: int, priority: list) -> list[bool]:
    """The rule of hide_differences, cell by cell against every kept count: counts taken by priority,
    then largest first; one is hidden when small or 1 to min_count - 1 away from a kept count of its group."""
    hidden, kept = [False] * len(values), {}
    numbers = [float("nan") if v in (None, SUPPRESSED) else round(float(v), 6) for v in values]
    order = sorted(range(len(values)), key=lambda i: (groups[i], priority[i], -(-1.0 if np.isnan(numbers[i])
                                                                                 else numbers[i]), i))
    for i in order:
        value = numbers[i]
        if np.isnan(value):
            continue
        shown = kept.setdefault(groups[i], [])
        if 0 < value < min_count or any(0 < abs(k - value) < min_count for k in shown):
            hidden[i] = True
        else:
            shown.append(value)
    return hidden


def test_hide_differences_agrees_with_the_pairwise_rule():
    rng = np.random.default_rng(11)
    for trial in range(40):
        n = int(rng.integers(1, 60))
        values = [SUPPRESSED if r < 0.05 else None if r < 0.1 else v for r, v in
                  zip(rng.random(n), rng.choice([0, 3, 9, 10, 11, 20, 25, 29.9999999, 30, 41, 57, 228, 240, 1200], n))]
        groups = list(rng.choice(["P01", "P02", "P03"], n))
        priority = list(rng.integers(0, 3, n).astype(float))
        expected = pairwise_hidden(values, groups, 10, priority)
        actual = hide_differences(pd.Series(values, dtype=object), pd.Series(groups), 10, pd.Series(priority))
        assert actual.tolist() == expected, trial


def test_numeric_reads_every_kind_of_column_as_the_plain_formula_does():
    """numeric() against its definition: text "suppressed" and missing cells to NaN, the rest to_numeric, as floats."""
    rng = np.random.default_rng(5)
    pool = [0.1, SUPPRESSED, None, pd.NA, np.nan, 3, np.int64(7), 2.5, "1.5", "abc", True, 10**12, -0.0]
    columns = [pd.Series([pool[i] for i in rng.integers(0, len(pool), int(rng.integers(0, 8)))], dtype=object)
               for _ in range(200)]
    columns += [pd.Series([1, 2, 3]), pd.Series([0.5, np.nan]), pd.Series([True, False]),
                pd.Series([1, None], dtype="Int64"), pd.Series(["2", SUPPRESSED], dtype="string")]
    for column in columns:
        column.index = column.index + 3
        column.name = "value"
        expected = pd.to_numeric(column.where(column.ne(SUPPRESSED)), errors="coerce").astype(float)
        pd.testing.assert_series_equal(numeric(column), expected)
    for value in [*pool, np.float64(-7.2)]:  # one cell alone, as a column of one
        expected = numeric(pd.Series([value])).iloc[0]
        assert numeric_cell(value) == expected or (np.isnan(numeric_cell(value)) and np.isnan(expected)), value


def test_suppress_writes_the_word_in_masked_rows_only_and_keeps_the_rest():
    frame = pd.DataFrame({"n": [5, 12, 40], "rate": [0.2, None, 0.5], "when": pd.to_datetime(["2024-01-01"] * 3),
                          "name": ["a", "b", "c"]}, index=[7, 8, 9])
    out = suppress(frame, pd.Series([True, None, False], index=[7, 8, 9]), ["n", "rate", "absent"])
    assert out["n"].tolist() == [SUPPRESSED, 12, 40] and out["n"].dtype == object
    assert out["rate"].iloc[0] == SUPPRESSED and np.isnan(out["rate"].iloc[1]) and out["rate"].iloc[2] == 0.5
    assert out["name"].tolist() == ["a", "b", "c"] and out.index.tolist() == [7, 8, 9]
    assert frame["n"].tolist() == [5, 12, 40]  # the input is left as it was
    # A row the mask does not cover is suppressed, as Series.where's alignment did.
    assert suppress(frame, pd.Series([False, False], index=[7, 8]), ["n"])["n"].tolist() == [5, 12, SUPPRESSED]


def test_attrition_funnel_hides_small_steps_and_small_differences():
    steps = pd.DataFrame({
        "programme_id": "P", "cohort_group": "participants", "step_number": [1, 2, 3, 4],
        "step": ["a", "b", "c", "d"], "people": [300, 295, 280, 8], "lost": [None, 5, 20, 272],
        "reason": [None, "x", "y", "z"],
    })
    shown = disclose_attrition(steps, min_count=10)
    # 295 is 5 below 300; 280 is 20 below the last shown (300); 8 is small
    assert shown["people"].tolist() == [300, SUPPRESSED, 280, SUPPRESSED]
    # lost is shown only between two shown steps: 20 would give 295 away next to 300 - 5
    assert shown["lost"].tolist()[1:] == [SUPPRESSED, SUPPRESSED, SUPPRESSED]


def test_unmatched_ids_listed_only_when_there_are_enough():
    unmatched = pd.DataFrame({
        "programme_id": ["A"] * 7 + ["B"] * 12,
        "person_id": [f"a{i}" for i in range(7)] + [f"b{i}" for i in range(12)],
        "reason": ["caliper"] * 7 + ["caliper"] * 9 + ["exact"] * 3,
    })
    ids, reasons = disclose_unmatched(unmatched, min_count=10)
    assert ids["programme_id"].unique().tolist() == ["B"] and len(ids) == 12
    assert reasons.set_index(["programme_id", "reason"])["n"].to_dict() == {
        ("A", "caliper"): SUPPRESSED, ("B", "caliper"): SUPPRESSED, ("B", "exact"): SUPPRESSED}


def test_every_table_needs_a_disclosure_rule():
    with pytest.raises(ValueError, match="no disclosure rule for table 'mystery'"):
        disclose({"mystery": pd.DataFrame({"n": [3]})}, min_count=10)


def test_survival_notes_speak_only_of_the_hazard_ratio_for_taking_part(pages):
    tests = pd.DataFrame({
        "model": ["matched", "matched", "adjusted", "adjusted", "adjusted"],
        "term": ["treated", "GLOBAL", "treated", "age_at_index", "GLOBAL"],
        "p": [0.0298, 0.0298, 0.21, 8e-7, 1e-12],
    })
    assert [re.sub(r"<[^>]+>", "", note) for note in proportional_hazards_notes(tests)] == [
        "In the matched sample, the hazard ratio for taking part appears to change over follow-up time "
        "(proportional-hazards test, p = 0.030), so the single hazard ratio averages an effect that varies. "
        "Read it alongside the cumulative reoffending curves and the average time without reoffending."]
    both = proportional_hazards_notes(tests.assign(p=[0.0298, 0.5, 0.0004, 0.5, 0.5]))
    assert [note.split(",")[0] for note in both] == ["In the matched sample", "In the covariate-adjusted model"]
    assert 'proportional-hazards test</a>, p &lt; 0.001)' in both[1]
    assert proportional_hazards_notes(tests.assign(p=[0.05, 0.01, 0.2, 0.001, 0.001])) == []
    # The example programme's test passes (p = 0.37): no notes section.
    assert "Notes from the survival models" not in pages["P01.html"]



def test_an_interval_across_zero_is_called_inconclusive_in_words():
    row = pd.Series({"ci_lower": -0.04, "ci_upper": 0.02})
    assert verdict(row).startswith("Inconclusive: the data cannot tell this programme's effect on reoffending "
                                   "apart from no effect.")
    assert verdict(row.replace({0.02: -0.01})).startswith("Participants reoffended less")
    assert verdict(pd.Series({"ci_lower": SUPPRESSED, "ci_upper": 0.02})) == ""
    assert [p_text(0.0004), p_text(0.0123)] == ["p < 0.001", "p = 0.012"]


# ---------------------------------------------------------------------------------------------
# For whom: the "Who benefits?" section and the model card page


def test_who_benefits_forest_plot_with_its_caution(pages):
    page = without_plotlyjs(pages["P01.html"])
    section = page[page.index('id="who-benefits"'):page.index('id="method"')]
    assert "were declared before the analysis" in section and "less certain than the\nheadline" in section
    assert '<a href="risk-model.html">reoffending-risk model</a>' in section
    forest = chart_specs(page)["chart-subgroups"]["data"][0]
    assert forest["y"] == ["Sex: female", "Sex: male", "Sex: other", "Risk band: low<br>risk", "Risk band: high<br>risk"]
    drawn = values(forest["x"])
    assert drawn[:2] == pytest.approx([-10.0, -6.0]) and np.isnan(drawn[2])
    assert cells(table_row(section, "Risk band: high risk")) == [
        "90", "90", "40.0%", "55.0%", "−15.0 pp (−29.0 pp to −1.0 pp)", "0.160"]
    # 7 'other' participants: their counts are suppressed, and so are the other sexes' counts,
    # which would give them away by subtraction from the 240 analysed
    assert cells(table_row(section, "Sex: other"))[:2] == ["suppressed", "suppressed"]
    assert cells(table_row(section, "Sex: female"))[:2] == ["suppressed", "suppressed"]
    assert "By risk band: 2 subgroups compared, p = 0.041; the data suggest the effect differs" in section
    assert pages["P02.html"].count("Results by subgroup: not available for this run.") == 1


def test_model_card_page(pages):
    page = without_plotlyjs(pages["risk-model.html"])
    assert "must not be used for any decision about a person" in page
    assert "<dt>Decisions about a person</dt><dd>Not for decisions about any individual.</dd>" in page
    calibration = chart_specs(page)["chart-calibration"]
    drawn = values(calibration["data"][1]["y"])   # 9 of 100 in the first decile: not drawn
    assert np.isnan(drawn[0]) and drawn[1:] == pytest.approx([14, 18, 25, 27, 33, 36, 44, 52, 62])
    assert cells(table_row(page, "Decile 1")) == ["100", "8.0%", "suppressed", "suppressed"]
    assert cells(table_row(page, "AUC (95% CI)")) == ["0.72 (0.68 to 0.75)"]
    # 8 people of 'other' sex, 3 of whom reoffended: nothing about them shows, nor any count by sex
    other = cells(table_row(page, "Sex: other"))
    assert other[1:] == ["suppressed"] * 5
    assert cells(table_row(page, "Sex: female"))[1] == "suppressed"
    assert cells(table_row(page, "Everyone"))[1] == "1,000"
    assert '<a href="risk-model.html">model card</a>' in pages["index.html"]
    assert "person_id" not in page and "predicted_risk" not in page


def test_disclose_subgroup_effects_follows_the_headline_rules():
    effects = subgroup_tables()["subgroup_effects"]
    effects.loc[3, "treated_value"] = 0.05   # 4 of 80 low-risk participants reoffended
    shown = disclose({"subgroup_effects": effects}, min_count=10)["subgroup_effects"].set_index("level")
    assert shown.loc["low", ["treated_value", "difference", "se", "p_holm"]].tolist() == ["suppressed"] * 4
    assert shown.loc["low", "comparison_value"] == 0.175
    assert shown.loc["high", "difference"] == -0.15 and shown.loc["high", "n_treated"] == 90
    assert shown.loc[["female", "male", "other"], "n_treated"].tolist() == ["suppressed"] * 3


def test_disclose_risk_fairness_hides_small_groups_and_their_siblings_counts():
    fairness = risk_model_tables()["risk_fairness"]
    shown = disclose({"risk_fairness": fairness}, min_count=10)["risk_fairness"]
    other = shown[shown["grp"] == "other"].iloc[0]
    assert other[["observed", "auc", "fpr", "fnr", "calibration_in_the_large"]].tolist() == ["suppressed"] * 5
    female = shown[(shown["grp"] == "female") & (shown["threshold_name"] == "high")].iloc[0]
    assert female["auc"] == 0.7 and female["fpr"] == pytest.approx(30 / 110)
    assert female[["n", "n_reoffended", "n_negative"]].tolist() == ["suppressed"] * 3
    assert shown.loc[shown["grp"] == "all", "n"].tolist() == [1000, 1000]


# ---------------------------------------------------------------------------------------------
# Study diagnostics: "How much can we trust this?"


def test_trust_section_sits_under_the_headline_with_each_check_in_words(pages):
    page = without_plotlyjs(pages["P01.html"])
    assert page.index('class="headline"') < page.index('id="trust"') < page.index('id="scorecard"')
    assert "Every check that could withhold the result passed." in page
    row = cells(table_row(page, "Smallest reduction the study can detect"))
    assert row[:2] == ["✓ Pass", "11.0 pp"]
    assert cells(table_row(page, "Doubly robust estimate"))[:2] == ["i For context", "−6.5 pp"]
    assert "For 100 typical people who took part" in page


def test_a_failed_diagnostic_withholds_every_effect_estimate_on_the_page(tmp_path):
    tables = example_tables()
    diagnostics = tables["diagnostics"]
    diagnostics.loc[diagnostics["diagnostic"] == "negative_control", ["value", "status", "explanation"]] = [
        0.41, "fail", "participants and comparison people already differed before the programme"]
    pages = build_example(tmp_path, tables)
    page = without_plotlyjs(pages["P01.html"])
    assert "The reoffending result is withheld" in page
    assert "Participants and comparison people already differed before the programme." in page
    assert cells(table_row(page, "Negative control: offending before the programme"))[0] == "✗ Fail"
    assert "For 100 typical people" not in page
    assert "Reoffending estimates: not available for this run." in page
    assert "Reoffending curves: not available for this run." in page
    assert "hazard ratio" not in page.lower().split('id="method"')[0]
    assert "Doubly robust estimate" not in page and "E-value)" not in page
    index = without_plotlyjs(pages["index.html"])
    assert "withheld: design checks failed" in index
    assert "−7.2 pp" not in index  # the withheld difference is not in the portfolio either


def test_a_programme_with_fourteen_participants_says_so_and_not_that_the_model_failed(tmp_path):
    tables = example_tables()
    tables["programmes_analysed"].loc[1, ["status", "n_treated_analysed"]] = ["too_few_participants", 14]
    tables["effects"] = tables["effects"][tables["effects"]["programme_id"] == "P01"]
    tables["diagnostics"] = pd.concat([tables["diagnostics"], pd.DataFrame({
        "programme_id": ["P02"], "diagnostic": ["minimum_sample"], "value": [14.0], "threshold": [60.0],
        "status": ["fail"], "explanation": ["too few participants: 14 of the 60 needed; more participants would fix this"]})])
    page = without_plotlyjs(build_example(tmp_path, tables)["P02.html"])
    assert "Too few participants: 14 of the 60 needed; more participants would fix this." in page
    assert "No reoffending estimate is published: too few participants could be analysed" in page
    assert "could not be fitted" not in page


def test_a_participant_count_below_the_disclosure_minimum_is_not_shown():
    diagnostics = pd.DataFrame({"programme_id": ["P1", "P2"], "diagnostic": ["minimum_sample"] * 2,
                                "value": [7.0, 14.0], "threshold": [60.0, 60.0], "status": ["fail", "fail"],
                                "explanation": ["too few participants: 7 of the 60 needed",
                                                "too few participants: 14 of the 60 needed"]})
    shown = disclose({"diagnostics": diagnostics}, 10)["diagnostics"]
    assert shown["value"].tolist() == [SUPPRESSED, 14.0]
    assert shown["explanation"].tolist() == ["too few participants: fewer than 10 of the 60 needed",
                                             "too few participants: 14 of the 60 needed"]


def test_propensity_percentiles_equal_numpy_from_a_frame_and_from_the_warehouse():
    """The score percentiles the matching section shows, as numpy interpolates them, whether the
    matched sets come as a frame or are summarised inside DuckDB."""
    import duckdb

    from reports.build import propensity_percentiles

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"programme_id": rng.choice(["P01", "P02"], 500), "person_id": [f"x{i}" for i in range(500)],
                          "treated": rng.random(500) < 0.3, "weight": rng.choice([0.0, 0.5, 1.0], 500),
                          "propensity": rng.random(500)})
    with duckdb.connect() as con:
        con.execute("CREATE TABLE matched AS SELECT * FROM frame")
        from_db = propensity_percentiles(con.table("matched"))
    for table in (propensity_percentiles(frame), from_db):
        assert len(table) == 8  # (all, matched) x 2 programmes x 2 groups
        for row in table.itertuples(index=False):
            people = frame[(frame["programme_id"] == row.programme_id) & (frame["treated"] == (row.grp == "treated"))]
            if row.sample == "matched":
                people = people[people["weight"] > 0]
            assert row.n == len(people)
            assert [row.p05, row.p25, row.p50, row.p75, row.p95] == pytest.approx(
                np.percentile(people["propensity"], [5, 25, 50, 75, 95]), rel=1e-12)
