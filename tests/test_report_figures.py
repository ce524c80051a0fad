"""The report figures, written as plotly.js figure dicts without plotly's graph objects.

Each figure must be one plotly itself accepts and would write the same way (plotly's graph
objects check every property against plotly.js's schema), and must hold the traces, values
and layout settings the pages have always drawn: those are asserted here value by value, from
hand-made frames whose numbers are known in advance.
"""
from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from _plotly_utils.utils import to_typed_array_spec
from plotly.subplots import make_subplots

from reports import figures
from reports.build import chart, plotly_template
from reports.disclosure import SUPPRESSED

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
HOUSE_LAYOUT = {  # what standard_layout gives every chart
    "autosize": True,
    "font": {"family": FONT, "size": 13, "color": "#1a1a1a"},
    "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "traceorder": "normal"},
    "hoverlabel": {"font": {"family": FONT}},
}
ZERO_LINE = {"color": "#000000", "width": 1}


def spec(figure: dict) -> dict:
    """The figure as a page carries it: the JSON of its chart-spec script."""
    text = chart("chart-x", "title", figure, "alt", None).spec
    return json.loads(text)


def values(data: object) -> list:
    """A data array as a list: numeric arrays arrive as base64 typed arrays."""
    if isinstance(data, dict) and "bdata" in data:
        array = np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"]))
        if "shape" in data:
            array = array.reshape([int(n) for n in data["shape"].split(",")])
        return array.tolist()
    return list(data)


def same(actual: list, expected: list) -> bool:
    """Equal lists of numbers (to rounding), NaN equal to NaN."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    return actual.shape == expected.shape and np.allclose(actual, expected, rtol=1e-12, atol=1e-12, equal_nan=True)


def assert_house_layout(layout: dict, height: int, top_margin: int = 40) -> None:
    for key, value in HOUSE_LAYOUT.items():
        assert layout[key] == value, key
    assert layout["height"] == height
    assert layout["margin"] == {"l": 10, "r": 10, "t": top_margin, "b": 40}
    assert "template" not in layout  # the page carries it once
    axes = [name for name in layout if re.fullmatch(r"[xy]axis\d*", name)]
    assert axes and all(layout[name]["automargin"] is True for name in axes)


def assert_plotly_writes_it_the_same(page_spec: dict) -> None:
    """plotly's validating Figure accepts every property and writes back the same JSON."""
    rewritten = json.loads(go.Figure(page_spec).to_json())
    rewritten["layout"].pop("template")
    assert rewritten == page_spec


# ---------------------------------------------------------------------------------------------
# Figures, one by one


def test_forest_plot_draws_each_programme_with_its_interval():
    rows = pd.DataFrame({"label": ["<b>Steady</b>", "Side by Side Peer Mentors", "Small"],
                         "difference": [-7.2, 2.5, SUPPRESSED], "ci_lower": [-13.2, -1.0, SUPPRESSED],
                         "ci_upper": [-1.2, 6.0, SUPPRESSED]})
    page = spec(figures.forest_plot(rows))
    (trace,) = page["data"]
    assert trace["type"] == "scatter" and trace["mode"] == "markers" and trace["name"] == "Difference"
    assert trace["y"] == ["&lt;b&gt;Steady&lt;/b&gt;", "Side by Side Peer<br>Mentors", "Small"]
    assert same(values(trace["x"]), [-7.2, 2.5, np.nan])
    assert same(values(trace["error_x"]["array"]), [6.0, 3.5, np.nan])
    assert same(values(trace["error_x"]["arrayminus"]), [6.0, 3.5, np.nan])
    assert {k: v for k, v in trace["error_x"].items() if k not in ("array", "arrayminus")} == {
        "type": "data", "symmetric": False, "color": "#0072B2", "thickness": 2}
    assert same(values(trace["customdata"]), [[-13.2, -1.2], [-1.0, 6.0], [np.nan, np.nan]])
    assert trace["marker"] == {"symbol": "square", "size": 10, "color": "#0072B2"}
    assert trace["hovertemplate"] == ("%{y}<br>%{x:.1f} percentage points (95% CI %{customdata[0]:.1f} to "
                                      "%{customdata[1]:.1f})<extra></extra>")
    layout = page["layout"]
    assert_house_layout(layout, height=220)  # max(220, 60 + 45 * 3)
    assert layout["showlegend"] is False
    assert layout["shapes"] == [{"type": "line", "x0": 0, "x1": 0, "xref": "x", "y0": 0, "y1": 1,
                                 "yref": "y domain", "line": ZERO_LINE}]
    assert layout["yaxis"] == {"autorange": "reversed", "type": "category", "automargin": True}
    assert layout["xaxis"] == {"title": {"text": "Difference in<br>reoffending rate,<br>percentage points<br>"
                                                 "(negative = fewer<br>reoffended)"},
                               "zeroline": False, "automargin": True}
    assert_plotly_writes_it_the_same(page)
    assert spec(figures.forest_plot(pd.concat([rows] * 3)))["layout"]["height"] == 60 + 45 * 9


def test_effect_estimates_one_panel_per_measure_with_plotly_subplot_domains():
    rows = pd.DataFrame({
        "panel": ["Proven reoffending rate (percentage points)"] * 3 + ["Proven reoffences per person"] * 2,
        "label": ["Matched", "Before matching", "Adjusted", "Matched", "Before matching (suppressed)"],
        "difference": [-7.2, -9.0, -6.1, -0.21, SUPPRESSED], "ci_lower": [-13.2, -15.0, -12.1, -0.4, SUPPRESSED],
        "ci_upper": [-1.2, -3.0, -0.1, -0.02, SUPPRESSED]})
    page = spec(figures.effect_estimates(rows))
    first, second = page["data"]
    assert (first["xaxis"], first["yaxis"], second["xaxis"], second["yaxis"]) == ("x", "y", "x2", "y2")
    assert first["y"] == ["Matched", "Before matching", "Adjusted"]
    assert second["y"] == ["Matched", "Before matching<br>(suppressed)"]
    assert same(values(second["x"]), [-0.21, np.nan])
    assert same(values(first["error_x"]["array"]), [6.0, 6.0, 6.0])
    assert first["showlegend"] is False and first["marker"] == {"symbol": "square", "size": 9, "color": "#0072B2"}
    layout = page["layout"]
    # Labels wrap onto two lines, so each row is 12 + 16 * 2 px high: 60 + 90 * 2 + 44 * 5.
    height = 460
    # Both subplot titles wrap onto 2 lines: room for one line break above the top panel.
    assert_house_layout(layout, height=height, top_margin=40 + 18)
    reference = make_subplots(rows=2, cols=1, subplot_titles=["a", "b"], row_heights=[3, 2],
                              vertical_spacing=90 / height).to_plotly_json()["layout"]
    for axis in ("xaxis", "yaxis", "xaxis2", "yaxis2"):
        assert layout[axis]["domain"] == reference[axis]["domain"], axis
        assert layout[axis]["anchor"] == reference[axis]["anchor"], axis
    assert [a["y"] for a in layout["annotations"]] == [a["y"] for a in reference["annotations"]]
    assert [a["text"] for a in layout["annotations"]] == ["Proven reoffending rate<br>(percentage points)",
                                                          "Proven reoffences per<br>person"]
    assert all(a["font"] == {"size": 16} and a["yanchor"] == "bottom" for a in layout["annotations"])
    assert layout["yaxis2"]["autorange"] == "reversed" and layout["yaxis2"]["type"] == "category"
    assert [(s["xref"], s["yref"], s["x0"]) for s in layout["shapes"]] == [("x", "y domain", 0),
                                                                           ("x2", "y2 domain", 0)]
    assert_plotly_writes_it_the_same(page)


def test_reoffending_rates_bars_side_by_side():
    rows = pd.DataFrame({"window": ["6 months", "12 months"] * 2, "grp": ["treated"] * 2 + ["comparison"] * 2,
                         "value": [18.7, 31.2, 23.0, SUPPRESSED]})
    page = spec(figures.reoffending_rates(rows))
    treated, comparison = page["data"]
    assert treated["type"] == comparison["type"] == "bar"
    assert (treated["name"], comparison["name"]) == ("Participants", "Comparison group")
    assert treated["x"] == comparison["x"] == ["6 months", "12 months"]
    assert same(values(treated["y"]), [18.7, 31.2]) and same(values(comparison["y"]), [23.0, np.nan])
    assert treated["marker"] == {"color": "#0072B2", "pattern": {"shape": ""}}
    assert comparison["marker"] == {"color": "#E69F00", "pattern": {"shape": "/"}}
    assert comparison["hovertemplate"] == "Comparison group, %{x}: %{y:.1f}%<extra></extra>"
    layout = page["layout"]
    assert_house_layout(layout, height=340)
    assert layout["barmode"] == "group"
    assert layout["yaxis"] == {"title": {"text": "Reoffended (%)"}, "rangemode": "tozero", "automargin": True}
    assert layout["xaxis"] == {"title": {"text": "Follow-up window"}, "automargin": True}
    assert_plotly_writes_it_the_same(page)


def test_cumulative_reoffending_curves_with_bands():
    curves = pd.DataFrame({"grp": ["comparison", "treated", "treated"], "time_days": [0.0, 30.0, 0.0],
                           "cumulative_reoffending": [0.0, 0.1, 0.0], "lower": [0.0, 0.05, 0.0],
                           "upper": [0.0, 0.15, 0.0]})
    page = spec(figures.cumulative_reoffending(curves))
    names = [t["name"] for t in page["data"]]
    assert names == ["Participants 95% CI upper", "Participants 95% CI lower", "Participants",
                     "Comparison group 95% CI upper", "Comparison group 95% CI lower", "Comparison group"]
    upper, lower, line = page["data"][:3]
    assert (upper["fill"], lower["fill"]) == ("none", "tonexty")
    assert upper["fillcolor"] == "rgba(0,114,178,0.18)" and upper["line"] == {"width": 0, "shape": "hv"}
    assert upper["hoverinfo"] == "skip" and upper["showlegend"] is False
    assert same(values(line["x"]), [0, 30]) and same(values(line["y"]), [0, 10])  # sorted by day, in percent
    assert same(values(upper["y"]), [0, 15]) and same(values(lower["y"]), [0, 5])
    assert same(values(line["customdata"]), [[0, 0], [5, 15]])
    assert line["line"] == {"color": "#0072B2", "dash": "solid", "shape": "hv", "width": 2.5}
    assert page["data"][5]["line"]["dash"] == "dash" and page["data"][3]["fillcolor"] == "rgba(230,159,0,0.18)"
    layout = page["layout"]
    assert_house_layout(layout, height=380)
    assert layout["xaxis"]["title"] == {"text": "Days since index date"} and layout["xaxis"]["rangemode"] == "tozero"
    assert layout["yaxis"]["title"] == {"text": "Reoffended so far (%)"}
    assert_plotly_writes_it_the_same(page)


def test_love_plot_before_and_after_matching():
    balance = pd.DataFrame({"covariate": ["Age at index", "Prior proven offences"] * 2,
                            "stage": ["before", "before", "after", "after"], "smd": [0.42, -0.31, 0.03, SUPPRESSED]})
    page = spec(figures.love_plot(balance))
    before, after = page["data"]
    assert before["y"] == after["y"] == ["Age at index", "Prior proven<br>offences"]
    assert same(values(before["x"]), [0.42, -0.31]) and same(values(after["x"]), [0.03, np.nan])
    assert before["marker"] == {"color": "#D55E00", "symbol": "circle-open", "size": 10,
                                "line": {"width": 2, "color": "#D55E00"}}
    assert after["marker"]["symbol"] == "circle" and after["name"] == "After matching"
    layout = page["layout"]
    assert_house_layout(layout, height=260)
    assert [(s["x0"], s["line"]) for s in layout["shapes"]] == [
        (-0.1, {"color": "#555555", "dash": "dot", "width": 1}), (0.1, {"color": "#555555", "dash": "dot", "width": 1}),
        (0, ZERO_LINE)]
    assert layout["xaxis"]["title"]["text"] == "Standardised mean<br>difference (participants<br>− comparison)"
    assert_plotly_writes_it_the_same(page)


def test_propensity_overlap_boxes_from_percentiles():
    percentiles = pd.DataFrame({
        "sample": ["all", "all", "matched", "matched"], "grp": ["treated", "comparison"] * 2,
        "p05": [0.1, 0.05, 0.1, 0.1], "p25": [0.2, 0.1, 0.2, 0.2], "p50": [0.3, 0.15, 0.3, 0.29],
        "p75": [0.4, 0.2, 0.4, 0.39], "p95": [0.6, 0.3, 0.6, SUPPRESSED]})
    page = spec(figures.propensity_overlap(percentiles))
    assert len(page["data"]) == 6
    whisker, box, median = page["data"][:3]
    assert same(values(median["x"]), [-0.15, 0.85]) and same(values(page["data"][5]["x"]), [0.15, 1.15])
    assert same(values(median["y"]), [0.3, 0.3])
    assert (whisker["error_y"]["thickness"], box["error_y"]["thickness"]) == (1.5, 14)
    assert box["error_y"]["color"] == "rgba(0,114,178,0.55)" and whisker["error_y"]["width"] == 0
    assert same(values(whisker["error_y"]["array"]), [0.3, 0.3])
    assert same(values(box["error_y"]["arrayminus"]), [0.1, 0.1])
    assert same(values(page["data"][3]["error_y"]["array"]), [0.15, np.nan])  # comparison after: p95 suppressed
    assert median["marker"] == {"symbol": "circle", "size": 11, "color": "#ffffff",
                                "line": {"color": "#0072B2", "width": 2}}
    assert page["data"][5]["marker"]["symbol"] == "diamond"
    layout = page["layout"]
    assert_house_layout(layout, height=360)
    assert layout["xaxis"] == {"tickvals": [0, 1], "ticktext": ["Before matching", "After matching"],
                               "range": [-0.5, 1.5], "automargin": True}
    assert_plotly_writes_it_the_same(page)


def test_attrition_funnel_marks_suppressed_steps_in_their_panel():
    steps = pd.DataFrame({"cohort_group": ["participants"] * 2 + ["comparison"] * 3,
                          "step": ["Enrolled", "Analysed", "Eligible index event", "Never enrolled", "Analysed"],
                          "people": [300, 240, 9000, SUPPRESSED, 5200]})
    page = spec(figures.attrition_funnel(steps))
    participants, comparison = page["data"]
    assert participants["orientation"] == "h" and participants["marker"] == {"color": "#0072B2"}
    assert comparison["marker"] == {"color": "#E69F00"} and (comparison["xaxis"], comparison["yaxis"]) == ("x2", "y2")
    assert same(values(comparison["x"]), [9000, np.nan, 5200])
    assert comparison["y"] == ["Eligible index<br>event", "Never enrolled", "Analysed"]
    layout = page["layout"]
    assert_house_layout(layout, height=80 + 110 * 2 + 36 * 5)
    titles, mark = layout["annotations"][:2], layout["annotations"][2]
    assert [a["text"] for a in titles] == ["Participants", "Comparison"]
    assert mark == {"x": 0, "y": "Never enrolled", "text": "suppressed", "xanchor": "left", "showarrow": False,
                    "font": {"color": "#555555", "size": 12}, "xref": "x2", "yref": "y2"}
    assert layout["xaxis2"]["title"] == {"text": "People"} and layout["xaxis2"]["rangemode"] == "tozero"
    reference = make_subplots(rows=2, cols=1, subplot_titles=["a", "b"], row_heights=[2, 3],
                              vertical_spacing=110 / 480).to_plotly_json()["layout"]
    assert layout["yaxis2"]["domain"] == reference["yaxis2"]["domain"]
    assert_plotly_writes_it_the_same(page)


def test_indicator_trends_one_panel_per_criterion_with_target():
    rows = pd.DataFrame({"label": ["Employment (%)"] * 2 + ["Life skills"] * 2, "period": ["2022Q2", "2022Q1"] * 2,
                         "estimate": [41.0, 40.0, SUPPRESSED, SUPPRESSED], "ci_lower": [33.0, 30.0, None, None],
                         "ci_upper": [49.0, 50.0, None, None], "target": [50.0, 50.0, None, None]})
    page = spec(figures.indicator_trends(rows))
    estimate, target, empty = page["data"]
    assert estimate["x"] == ["2022Q1", "2022Q2"] and same(values(estimate["y"]), [40.0, 41.0])  # by quarter
    assert same(values(estimate["error_y"]["array"]), [10.0, 8.0])
    assert estimate["mode"] == "lines+markers" and estimate["showlegend"] is True and empty["showlegend"] is False
    assert target["name"] == "Target" and same(values(target["y"]), [50.0, 50.0])
    assert target["line"] == {"color": "#D55E00", "dash": "dot"} and target["showlegend"] is True
    assert (empty["xaxis"], empty["yaxis"]) == ("x2", "y2") and same(values(empty["y"]), [np.nan, np.nan])
    layout = page["layout"]
    assert_house_layout(layout, height=100 + 180 * 2)
    assert layout["annotations"][2] == {
        "text": "estimates suppressed or<br>not available", "showarrow": False, "xref": "x2 domain",
        "yref": "y2 domain", "x": 0.5, "y": 0.2, "bgcolor": "#ffffff", "font": {"color": "#555555"}}
    assert layout["xaxis"]["type"] == layout["xaxis2"]["type"] == "category"
    reference = make_subplots(rows=2, cols=1, subplot_titles=["a", "b"], vertical_spacing=0.1).to_plotly_json()
    assert [layout["yaxis"]["domain"], layout["yaxis2"]["domain"]] == [
        reference["layout"]["yaxis"]["domain"], reference["layout"]["yaxis2"]["domain"]]
    assert_plotly_writes_it_the_same(page)


def test_calibration_plot_against_the_diagonal():
    deciles = pd.DataFrame({"decile": np.arange(1, 4), "mean_predicted": [0.1, 0.3, 0.6],
                            "observed": [0.12, 0.28, 0.65], "observed_lower": [0.05, 0.2, 0.55],
                            "observed_upper": [0.2, 0.36, 0.74]})
    page = spec(figures.calibration_plot(deciles))
    diagonal, points = page["data"]
    top = 74.0 * 1.05  # the highest upper bound, in percent, with 5% room
    assert diagonal["x"] == diagonal["y"] == [0, pytest.approx(top)]
    assert diagonal["line"] == {"color": "#000000", "dash": "dot", "width": 1} and diagonal["hoverinfo"] == "skip"
    assert same(values(points["x"]), [10.0, 30.0, 60.0]) and same(values(points["y"]), [12.0, 28.0, 65.0])
    assert points["customdata"] == {"dtype": "i1", "bdata": base64.b64encode(bytes([1, 2, 3])).decode()}
    layout = page["layout"]
    assert_house_layout(layout, height=380)
    assert layout["xaxis"]["range"] == layout["yaxis"]["range"] == [0, pytest.approx(top)]
    assert layout["xaxis"]["title"] == {"text": "Mean predicted risk (%)"}
    assert_plotly_writes_it_the_same(page)


# ---------------------------------------------------------------------------------------------
# The figure format


@pytest.mark.parametrize("rows, heights, spacing", [
    (1, None, 0.1), (2, [5, 6], 110 / 768), (4, [3, 3, 3, 3], 90 / 756), (6, None, 0.1), (7, [1, 9, 2, 2, 5, 1, 3], 0.05),
])
def test_subplot_domains_and_titles_are_make_subplots_own(rows, heights, spacing):
    titles = [f"Panel {n}" for n in range(rows)]
    titles[-1] = ""  # an untitled panel gets no annotation
    ours = figures.subplots(titles, vertical_spacing=spacing, row_heights=heights)["layout"]
    plotly = make_subplots(rows=rows, cols=1, subplot_titles=titles, row_heights=heights,
                           vertical_spacing=spacing).to_plotly_json()["layout"]
    plotly.pop("template")
    assert ours == plotly


@pytest.mark.parametrize("array", [
    np.array([0.1, np.nan, -2.5e300]), np.array([[1.0, 2.0], [3.0, np.nan]]), np.arange(1, 11),
    np.array([-129, 127]), np.array([40_000, -2]), np.array([3_000_000_000, 1]), np.array([2**40]),
    np.array([1, 300], dtype=np.uint64), np.array([5], dtype=np.uint64), np.array([1.5], dtype=np.float32),
    np.array([], dtype=float), np.array([True, False]), np.array(["a", 1], dtype=object),
])
def test_typed_arrays_as_plotly_writes_them(array):
    expected = to_typed_array_spec(array)
    ours = figures.typed_array(array)
    if isinstance(expected, dict):
        assert ours == expected
    else:  # left as an array, written as a list
        assert json.loads(figures.to_json({"x": ours})) == json.loads(figures.to_json({"x": expected.tolist()}))


def test_range_stays_a_plain_list_and_nan_is_written_as_null():
    written = json.loads(figures.to_json({"layout": {"xaxis": {"range": np.array([0.0, 2.0])}},
                                          "data": [{"x": [np.nan, 1.0], "y": np.array([1.0])}]}))
    assert written["layout"]["xaxis"]["range"] == [0.0, 2.0]
    assert written["data"][0]["x"] == [None, 1.0]
    assert written["data"][0]["y"] == {"dtype": "f8", "bdata": base64.b64encode(np.array([1.0]).tobytes()).decode()}


def test_page_template_is_plotly_simple_white():
    import plotly.io as pio

    template = json.loads(str(plotly_template()))
    assert template == json.loads(json.dumps(pio.templates["simple_white"].to_plotly_json()))
    assert template["layout"]["xaxis"]["showgrid"] is False and template["layout"]["plot_bgcolor"] == "white"
