"""Plotly figures for the reports, drawn from frames that have already passed disclosure control.

Every function takes a tidy frame (suppressed cells read "suppressed" and are not drawn) and
returns a figure as plotly.js reads it, ``{"data": [trace, ...], "layout": {...}}``, finished by
:func:`standard_layout`, the one place that sizes figures for every screen: charts take the
width of their container, long axis titles and labels are wrapped so a phone shows them whole.
Figures are written as plain dicts, not plotly's graph objects: those check every property and
copy the template into every figure, which cost seconds per run for layouts that never change
(the tests hand each figure to ``plotly.graph_objects.Figure`` to check it is valid). Numeric
arrays stay NumPy arrays, which :func:`to_json` writes as plotly.js typed arrays.
Only trace types of plotly.js's basic bundle (scatter, bar) are used, because that is the
bundle the pages embed; the page applies the house template (TEMPLATE) to every chart. Text
shown by plotly (labels, hover text) is HTML-escaped, because plotly reads a small set of HTML
tags in its strings: a programme named ``<b>x</b>`` is shown as typed. Colours are the
Okabe–Ito palette, which reads for every common form of colour blindness, and groups also
differ in marker or line style so colour is never the only cue.
"""
from __future__ import annotations

import base64
import html
import json
import re

import numpy as np
import pandas as pd
from _plotly_utils.utils import PlotlyJSONEncoder

from reports.disclosure import SUPPRESSED, numeric

OKABE_ITO = {
    "blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00",
    "purple": "#CC79A7", "sky": "#56B4E9", "yellow": "#F0E442", "black": "#000000",
}
GROUP_COLOURS = {"treated": OKABE_ITO["blue"], "comparison": OKABE_ITO["orange"]}
GROUP_LABELS = {"treated": "Participants", "comparison": "Comparison group"}
GROUP_DASH = {"treated": "solid", "comparison": "dash"}
GROUP_SYMBOL = {"treated": "circle", "comparison": "diamond"}
TEMPLATE = "simple_white"  # pages carry it once and charts.js applies it to every chart
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
SUBPLOT_TITLE_FONT = {"size": 16}  # plotly's make_subplots size for subplot titles

Figure = dict  # {"data": [trace, ...], "layout": {...}}: a figure as plotly.js reads it


def plot_text(value: object) -> str:
    """Text for plotly: escaped so that tags in names show as typed."""
    return html.escape(str(value), quote=False)


# Characters per line that fit a 390 px phone: titles are centred over the plot area, which the
# category labels on its left narrow.
WRAP_AT = 24         # axis titles and subplot titles
LABEL_WRAP_AT = 18   # category labels on an axis


def wrap(words: str, width: int = WRAP_AT) -> str:
    """Text broken into lines of at most `width` characters with <br> (plotly's line break)."""
    lines, line = [], ""
    for word in str(words).split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "<br>".join([*lines, line])


AXIS = re.compile(r"[xy]axis\d*")  # layout keys of axes: xaxis, yaxis2, ...


def standard_layout(fig: Figure, height: int, **layout) -> Figure:
    """The house layout: fonts, legend above the plot, fixed height, width of the page.

    Axis titles and annotations (subplot titles) longer than WRAP_AT characters are wrapped, and
    margins grow to fit every label (automargin), so nothing is clipped on a 390 px phone.
    """
    settings = fig["layout"]
    settings.update(
        height=height,
        autosize=True,
        margin={"l": 10, "r": 10, "t": 40, "b": 40},
        font={"family": FONT, "size": 13, "color": "#1a1a1a"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "traceorder": "normal"},
        hoverlabel={"font": {"family": FONT}},
        **layout,
    )
    for name, axis in settings.items():
        if AXIS.fullmatch(name):
            axis["automargin"] = True
            title = axis.get("title", {}).get("text")
            if title and "<br>" not in title:
                axis["title"]["text"] = wrap(title)
    annotations = settings.get("annotations", [])
    for annotation in annotations:
        if annotation.get("text") and "<br>" not in annotation["text"]:
            annotation["text"] = wrap(annotation["text"])
    lines = max((a["text"].count("<br>") for a in annotations if a.get("text") and a.get("yanchor") == "bottom"),
                default=0)
    settings["margin"]["t"] = 40 + 18 * lines  # room above the top subplot for a wrapped title
    return fig



# NumPy dtypes plotly.js reads as base64 typed arrays, by their plotly.js name; int64 is narrowed
# to the smallest that holds the values (plotly.js has no 64-bit integers), as plotly does.
TYPED_ARRAYS = {"int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2", "int32": "i4", "uint32": "u4",
                "float32": "f4", "float64": "f8"}
NARROWER = {"int64": (np.int8, np.int16, np.int32), "uint64": (np.uint8, np.uint16, np.uint32)}
PLAIN_KEYS = ("geojson", "layer", "layers", "range")  # written as plain lists, as plotly does


def to_json(fig: Figure) -> str:
    """The figure as the JSON plotly.js reads, written as plotly's ``Figure.to_json`` writes it:
    NumPy arrays as base64 typed arrays, NaN and infinities as null."""
    return json.dumps(_typed(fig), cls=PlotlyJSONEncoder, separators=(",", ":"))


def _typed(value):
    if isinstance(value, dict):
        return {key: item if key in PLAIN_KEYS else typed_array(item) if isinstance(item, np.ndarray)
                else _typed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_typed(item) for item in value]
    return value


def typed_array(values: np.ndarray) -> dict | np.ndarray:
    """A NumPy array as a plotly.js typed array spec; an empty array or one of another dtype as it is."""
    if values.size == 0:
        return values
    for narrower in NARROWER.get(str(values.dtype), ()):
        limits = np.iinfo(narrower)
        if values.min() >= limits.min and values.max() <= limits.max:
            values = values.astype(narrower)
            break
    if str(values.dtype) not in TYPED_ARRAYS:
        return values
    spec = {"dtype": TYPED_ARRAYS[str(values.dtype)],
            "bdata": base64.b64encode(np.ascontiguousarray(values)).decode("ascii")}
    if values.ndim > 1:
        spec["shape"] = str(values.shape)[1:-1]
    return spec


def figure(*traces: dict, **layout) -> Figure:
    return {"data": list(traces), "layout": layout}


def scatter(**properties) -> dict:
    return {"type": "scatter", **properties}


def bar(**properties) -> dict:
    return {"type": "bar", **properties}


def floats(values) -> np.ndarray:
    """A numeric column or array as the contiguous float64 array plotly.js receives as a typed array."""
    return np.ascontiguousarray(values, dtype=float)


def axis(fig: Figure, letter: str, row: int = 1) -> dict:
    """The settings of the x or y axis of subplot `row` (created empty if not set yet)."""
    return fig["layout"].setdefault(f"{letter}axis{row if row > 1 else ''}", {})


def in_row(trace: dict, row: int) -> dict:
    """A trace drawn in subplot `row` of a figure made by :func:`subplots`."""
    suffix = row if row > 1 else ""
    return {**trace, "xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}


def vline(fig: Figure, x: float, line: dict, row: int | None = None) -> None:
    """A vertical line at `x` across the plot (of subplot `row` when given)."""
    suffix = "" if row is None or row == 1 else row
    fig["layout"].setdefault("shapes", []).append({
        "type": "line", "x0": x, "x1": x, "xref": f"x{suffix}", "y0": 0, "y1": 1, "yref": f"y{suffix} domain",
        "line": line})


def title(text: str) -> dict:
    return {"text": text}


def subplots(titles: list[str], vertical_spacing: float, row_heights: list[int] | None = None) -> Figure:
    """An empty figure of len(titles) subplots stacked in one column, titled, top row first.

    The domains and title annotations are those of ``plotly.subplots.make_subplots(rows=n, cols=1,
    subplot_titles=titles, row_heights=row_heights, vertical_spacing=vertical_spacing)``, worked
    out the same way, so the same floating-point numbers come out.
    """
    rows = len(titles)
    free = 1.0 - vertical_spacing * (rows - 1)
    if row_heights is None:
        heights = [free / rows] * rows
    else:
        total = float(sum(row_heights))
        heights = [free * (h / total) for h in row_heights][::-1]  # listed top first, stacked from the bottom
    layout: dict = {}
    annotations = []
    for r in range(rows):
        from_bottom = rows - 1 - r
        start = sum(heights[:from_bottom]) + from_bottom * vertical_spacing
        bottom, top = _clamp(start + 0.0), _clamp(start + heights[-1 - r] - 0.0)
        suffix = r + 1 if r else ""
        layout[f"xaxis{suffix}"] = {"anchor": f"y{suffix}", "domain": [0.0, 1.0]}
        layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "domain": [bottom, top]}
        if titles[r]:
            annotations.append({"y": top, "xref": "paper", "x": 0.5, "yref": "paper", "text": titles[r],
                                "showarrow": False, "font": dict(SUBPLOT_TITLE_FONT), "xanchor": "center",
                                "yanchor": "bottom"})
    if annotations:  # plotly writes no empty list
        layout["annotations"] = annotations
    return {"data": [], "layout": layout}


def _clamp(edge: float) -> float:
    """A domain edge a rounding error outside 0..1 put back at 0 or 1 (as make_subplots does)."""
    return 0.0 if -0.01 < edge < 0.0 else 1.0 if 1.0 < edge < 1.01 else edge


def forest_plot(rows: pd.DataFrame) -> Figure:
    """Each programme's difference in reoffending (percentage points) with its 95% CI.

    `rows`: label, difference, ci_lower, ci_upper — all in percentage points, one row per programme.
    """
    difference, lower, upper = (numeric(rows[c]) for c in ("difference", "ci_lower", "ci_upper"))
    labels = [wrap(plot_text(label), LABEL_WRAP_AT) for label in rows["label"]]
    fig = figure(scatter(
        x=floats(difference), y=labels, mode="markers",
        marker={"symbol": "square", "size": 10, "color": OKABE_ITO["blue"]},
        error_x={"type": "data", "symmetric": False, "array": floats(upper - difference),
                 "arrayminus": floats(difference - lower), "color": OKABE_ITO["blue"], "thickness": 2},
        customdata=np.c_[lower, upper],
        hovertemplate="%{y}<br>%{x:.1f} percentage points (95% CI %{customdata[0]:.1f} to "
                      "%{customdata[1]:.1f})<extra></extra>",
        name="Difference",
    ))
    vline(fig, 0, {"color": OKABE_ITO["black"], "width": 1})
    axis(fig, "y").update(autorange="reversed", type="category")
    axis(fig, "x").update(
        title=title("Difference in reoffending rate, percentage points (negative = fewer reoffended)"), zeroline=False)
    return standard_layout(fig, height=max(220, 60 + 45 * len(rows)), showlegend=False)


def effect_estimates(rows: pd.DataFrame) -> Figure:
    """Differences (participants minus comparison) with 95% CIs, one panel per measure.

    `rows`: panel, label (estimator and window), difference, ci_lower, ci_upper, in display units.
    """
    panels = list(dict.fromkeys(rows["panel"]))
    sizes = [int((rows["panel"] == panel).sum()) for panel in panels]
    rows = rows.assign(label=[wrap(plot_text(label), LABEL_WRAP_AT) for label in rows["label"]])
    row_height = 12 + 16 * max((label.count("<br>") + 1 for label in rows["label"]), default=1)  # room for wraps
    height = 60 + 90 * len(panels) + row_height * sum(sizes)
    fig = subplots([plot_text(p) for p in panels], row_heights=sizes, vertical_spacing=90 / height)
    for number, panel in enumerate(panels, start=1):
        part = rows[rows["panel"] == panel]
        difference, lower, upper = (numeric(part[c]) for c in ("difference", "ci_lower", "ci_upper"))
        fig["data"].append(in_row(scatter(
            x=floats(difference), y=list(part["label"]), mode="markers",
            marker={"symbol": "square", "size": 9, "color": OKABE_ITO["blue"]},
            error_x={"type": "data", "symmetric": False, "array": floats(upper - difference),
                     "arrayminus": floats(difference - lower), "color": OKABE_ITO["blue"]},
            customdata=np.c_[lower, upper],
            hovertemplate="%{y}: %{x:.2f} (95% CI %{customdata[0]:.2f} to %{customdata[1]:.2f})<extra></extra>",
            showlegend=False,
        ), number))
        vline(fig, 0, {"color": OKABE_ITO["black"], "width": 1}, row=number)
        axis(fig, "y", number).update(autorange="reversed", type="category")
    return standard_layout(fig, height=height)


def reoffending_rates(rows: pd.DataFrame) -> Figure:
    """Share reoffending by follow-up window, participants beside the matched comparison group.

    `rows`: window (label), grp ('treated'|'comparison'), value (percent).
    """
    fig = figure()
    for grp in ("treated", "comparison"):
        part = rows[rows["grp"] == grp]
        fig["data"].append(bar(
            x=[plot_text(w) for w in part["window"]], y=floats(numeric(part["value"])),
            name=GROUP_LABELS[grp], marker={"color": GROUP_COLOURS[grp],
                                            "pattern": {"shape": "" if grp == "treated" else "/"}},
            hovertemplate=f"{GROUP_LABELS[grp]}, %{{x}}: %{{y:.1f}}%<extra></extra>",
        ))
    axis(fig, "y").update(title=title("Reoffended (%)"), rangemode="tozero")
    axis(fig, "x").update(title=title("Follow-up window"))
    return standard_layout(fig, height=340, barmode="group")


def cumulative_reoffending(curves: pd.DataFrame) -> Figure:
    """1 − Kaplan–Meier: share who have reoffended by each day, with 95% CI bands.

    `curves`: grp, time_days, cumulative_reoffending, lower, upper (shares 0..1).
    """
    fig = figure()
    for grp in ("treated", "comparison"):
        part = curves[curves["grp"] == grp].sort_values("time_days")
        if part.empty:
            continue
        days = floats(numeric(part["time_days"]))
        colour = GROUP_COLOURS[grp]
        for bound, fill in (("upper", "none"), ("lower", "tonexty")):
            fig["data"].append(scatter(
                x=days, y=floats(numeric(part[bound]) * 100), mode="lines", fill=fill,
                fillcolor=_transparent(colour, 0.18), line={"width": 0, "shape": "hv"},
                hoverinfo="skip", showlegend=False, name=f"{GROUP_LABELS[grp]} 95% CI {bound}",
            ))
        fig["data"].append(scatter(
            x=days, y=floats(numeric(part["cumulative_reoffending"]) * 100), mode="lines",
            line={"color": colour, "dash": GROUP_DASH[grp], "shape": "hv", "width": 2.5},
            name=GROUP_LABELS[grp],
            customdata=np.c_[numeric(part["lower"]) * 100, numeric(part["upper"]) * 100],
            hovertemplate=f"{GROUP_LABELS[grp]}, day %{{x:.0f}}: %{{y:.1f}}% "
                          "(95% CI %{customdata[0]:.1f} to %{customdata[1]:.1f})<extra></extra>",
        ))
    axis(fig, "x").update(title=title("Days since index date"), rangemode="tozero")
    axis(fig, "y").update(title=title("Reoffended so far (%)"), rangemode="tozero")
    return standard_layout(fig, height=380)


def love_plot(balance: pd.DataFrame, threshold: float = 0.1) -> Figure:
    """Standardised mean difference of each covariate before and after matching, with ±threshold lines.

    `balance`: covariate, stage ('before'|'after'), smd.
    """
    covariates = list(dict.fromkeys(balance["covariate"]))
    fig = figure()
    styles = {"before": ("Before matching", OKABE_ITO["vermillion"], "circle-open"),
              "after": ("After matching", OKABE_ITO["blue"], "circle")}
    for stage, (name, colour, symbol) in styles.items():
        part = balance[balance["stage"] == stage].set_index("covariate").reindex(covariates)
        fig["data"].append(scatter(
            x=floats(numeric(part["smd"])), y=[wrap(plot_text(c), LABEL_WRAP_AT) for c in covariates],
            mode="markers", name=name,
            marker={"color": colour, "symbol": symbol, "size": 10, "line": {"width": 2, "color": colour}},
            hovertemplate=f"{name}, %{{y}}: SMD %{{x:.3f}}<extra></extra>",
        ))
    for x in (-threshold, threshold):
        vline(fig, x, {"color": "#555555", "dash": "dot", "width": 1})
    vline(fig, 0, {"color": OKABE_ITO["black"], "width": 1})
    axis(fig, "y").update(autorange="reversed", type="category")
    axis(fig, "x").update(title=title("Standardised mean difference (participants − comparison)"))
    return standard_layout(fig, height=max(260, 80 + 26 * len(covariates)))


def propensity_overlap(percentiles: pd.DataFrame) -> Figure:
    """The spread of propensity scores per group, before and after matching, drawn as boxes.

    A thin whisker spans the 5th to 95th percentile, a thick bar the 25th to 75th, a marker the
    median (plotly's box trace is not in the basic bundle, so the box is drawn with error bars).
    `percentiles`: sample ('all'|'matched'), grp, p05, p25, p50, p75, p95.
    """
    fig = figure()
    samples = {"all": "Before matching", "matched": "After matching"}
    offsets = {"treated": -0.15, "comparison": 0.15}
    for grp in ("treated", "comparison"):
        part = percentiles[percentiles["grp"] == grp].set_index("sample").reindex(list(samples))
        values = {c: floats(numeric(part[c])) for c in PERCENTILES}
        x = np.arange(len(samples)) + offsets[grp]
        colour = GROUP_COLOURS[grp]
        for low, high, thickness in (("p05", "p95", 1.5), ("p25", "p75", 14)):
            fig["data"].append(scatter(
                x=x, y=values["p50"], mode="markers", marker={"size": 0.1, "color": colour},
                error_y={"type": "data", "symmetric": False, "array": values[high] - values["p50"],
                         "arrayminus": values["p50"] - values[low], "color": _transparent(colour, 0.55)
                         if thickness > 2 else colour, "thickness": thickness, "width": 0},
                hoverinfo="skip", showlegend=False,
            ))
        fig["data"].append(scatter(
            x=x, y=values["p50"], mode="markers", name=GROUP_LABELS[grp],
            marker={"symbol": GROUP_SYMBOL[grp], "size": 11, "color": "#ffffff", "line": {"color": colour, "width": 2}},
            customdata=np.c_[values["p05"], values["p25"], values["p75"], values["p95"]],
            hovertemplate=f"{GROUP_LABELS[grp]}: median %{{y:.2f}} (middle half %{{customdata[1]:.2f}} to "
                          "%{customdata[2]:.2f}; 5th to 95th percentile %{customdata[0]:.2f} to "
                          "%{customdata[3]:.2f})<extra></extra>",
        ))
    axis(fig, "x").update(tickvals=list(range(len(samples))), ticktext=list(samples.values()), range=[-0.5, 1.5])
    axis(fig, "y").update(title=title("Propensity score"), rangemode="tozero")
    return standard_layout(fig, height=360)


PERCENTILES = ("p05", "p25", "p50", "p75", "p95")


def attrition_funnel(steps: pd.DataFrame) -> Figure:
    """People remaining after each step, one panel per group (the two differ in scale).

    `steps`: cohort_group, step (label), people.
    """
    groups = list(dict.fromkeys(steps["cohort_group"]))
    height = 80 + 110 * len(groups) + 36 * len(steps)
    fig = subplots([plot_text(g).capitalize() for g in groups],
                   row_heights=[int((steps["cohort_group"] == g).sum()) for g in groups],
                   vertical_spacing=110 / height)
    colours = {"participants": OKABE_ITO["blue"], "comparison": OKABE_ITO["orange"]}
    for number, group in enumerate(groups, start=1):
        part = steps[steps["cohort_group"] == group]
        labels = [wrap(plot_text(s), LABEL_WRAP_AT) for s in part["step"]]
        fig["data"].append(in_row(bar(
            x=floats(numeric(part["people"])), y=labels, orientation="h",
            marker={"color": colours.get(group, OKABE_ITO["green"])}, showlegend=False,
            hovertemplate="%{y}: %{x:,.0f} people<extra></extra>",
        ), number))
        mark_suppressed(fig, part["people"], labels, row=number)
        axis(fig, "y", number).update(autorange="reversed", type="category")
        axis(fig, "x", number).update(title=title("People"), rangemode="tozero")
    return standard_layout(fig, height=height)


def mark_suppressed(fig: Figure, values: pd.Series, labels: list[str], row: int) -> None:
    """Write "suppressed" where a bar is missing for disclosure, so a gap is not read as zero."""
    suffix = row if row > 1 else ""
    for value, label in zip(values, labels):
        if isinstance(value, str) and value == SUPPRESSED:
            fig["layout"].setdefault("annotations", []).append({
                "x": 0, "y": label, "text": SUPPRESSED, "xanchor": "left", "showarrow": False,
                "font": {"color": "#555555", "size": 12}, "xref": f"x{suffix}", "yref": f"y{suffix}"})


def indicator_trends(rows: pd.DataFrame) -> Figure:
    """Each indicator by cohort quarter with its 95% CI and target, one panel per indicator.

    `rows`: label, period, estimate, ci_lower, ci_upper, target — in display units.
    """
    labels = list(dict.fromkeys(rows["label"]))
    fig = subplots([plot_text(label) for label in labels], vertical_spacing=min(0.1, 0.6 / max(len(labels), 1)))
    for number, label in enumerate(labels, start=1):
        part = rows[rows["label"] == label].sort_values("period")
        estimate, lower, upper = (numeric(part[c]) for c in ("estimate", "ci_lower", "ci_upper"))
        periods = [plot_text(p) for p in part["period"]]
        fig["data"].append(in_row(scatter(
            x=periods, y=floats(estimate), mode="lines+markers",
            line={"color": OKABE_ITO["blue"]}, marker={"size": 8},
            error_y={"type": "data", "symmetric": False, "array": floats(upper - estimate),
                     "arrayminus": floats(estimate - lower), "color": OKABE_ITO["blue"]},
            customdata=np.c_[lower, upper],
            hovertemplate="%{x}: %{y:.2f} (95% CI %{customdata[0]:.2f} to %{customdata[1]:.2f})<extra></extra>",
            name="Estimate", showlegend=number == 1,
        ), number))
        target = numeric(part["target"]).dropna()
        if len(target):
            fig["data"].append(in_row(scatter(
                x=list(periods), y=np.full(len(part), target.iloc[0]), mode="lines",
                line={"color": OKABE_ITO["vermillion"], "dash": "dot"}, name="Target",
                hovertemplate="Target: %{y:.2f}<extra></extra>", showlegend=number == 1,
            ), number))
        if estimate.isna().all():
            fig["layout"].setdefault("annotations", []).append({
                "text": "estimates suppressed or not available", "showarrow": False,
                "xref": "x domain" if number == 1 else f"x{number} domain",
                "yref": "y domain" if number == 1 else f"y{number} domain", "x": 0.5, "y": 0.2, "bgcolor": "#ffffff",
                "font": {"color": "#555555"}})
        axis(fig, "x", number).update(type="category")
    return standard_layout(fig, height=100 + 180 * len(labels))


def _transparent(hex_colour: str, alpha: float) -> str:
    red, green, blue = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def calibration_plot(deciles: pd.DataFrame) -> Figure:
    """Observed share reoffending against mean predicted risk per decile (percent), with 95% intervals
    and the diagonal of perfect calibration.

    `deciles`: decile, mean_predicted, observed, observed_lower, observed_upper (shares 0..1).
    """
    predicted = numeric(deciles["mean_predicted"]) * 100
    observed, lower, upper = (numeric(deciles[c]) * 100 for c in ("observed", "observed_lower", "observed_upper"))
    top = float(np.nanmax([predicted.max(), upper.max(), 1.0])) * 1.05
    fig = figure(
        scatter(x=[0, top], y=[0, top], mode="lines", name="Perfect calibration",
                line={"color": OKABE_ITO["black"], "dash": "dot", "width": 1}, hoverinfo="skip"),
        scatter(
            x=floats(predicted), y=floats(observed), mode="markers", name="Decile of predicted risk",
            marker={"symbol": "circle", "size": 9, "color": OKABE_ITO["blue"]},
            error_y={"type": "data", "symmetric": False, "array": floats(upper - observed),
                     "arrayminus": floats(observed - lower), "color": OKABE_ITO["blue"], "thickness": 1.5},
            customdata=deciles["decile"].to_numpy(),
            hovertemplate="Decile %{customdata}: predicted %{x:.1f}%, observed %{y:.1f}%<extra></extra>",
        ),
    )
    axis(fig, "x").update(title=title("Mean predicted risk (%)"), range=[0, top])
    axis(fig, "y").update(title=title("Observed reoffending (%)"), range=[0, top])
    return standard_layout(fig, height=380)
