"""The reports in a real browser: headless Chromium with the network off.

Each page must load with no console errors, draw every chart, fit a phone's width and show a
programme named like a script as plain text.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest
from playwright.sync_api import Browser, sync_playwright

from desist import validation
from test_reports import HOSTILE, build_example
from test_validation import clean_tables, with_extra_people

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
CHARTS = {"index.html": 1, "P01.html": 8, "P02.html": 2, "risk-model.html": 1}


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("browser")
    assert sorted(build_example(folder)) == sorted(CHARTS)
    return folder / "reports"


@pytest.fixture(scope="module")
def browser() -> Browser:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


def open_offline(browser: Browser, page_file: Path, width: int = 1100, height: int = 900):
    """A report opened from disk with every network request refused and recorded, once its charts are drawn."""
    context, page, events = open_offline_page(browser, page_file, width, height)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.chart')].every(chart => chart.querySelector('.main-svg'))",
        timeout=30_000)
    return context, page, events


def open_offline_page(browser: Browser, page_file: Path, width: int = 1100, height: int = 900):
    """A page opened from disk with every network request refused and recorded."""
    context = browser.new_context(viewport={"width": width, "height": height}, offline=True)
    events = {"errors": [], "requests": [], "dialogs": []}
    def refuse_network(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            events["requests"].append(route.request.url)
            route.abort()

    context.route("**/*", refuse_network)
    page = context.new_page()
    page.on("console", lambda message: message.type == "error" and events["errors"].append(message.text))
    page.on("pageerror", lambda error: events["errors"].append(str(error)))
    page.on("dialog", lambda dialog: (events["dialogs"].append(dialog.message), dialog.dismiss()))
    page.goto(page_file.as_uri(), wait_until="load")
    return context, page, events


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_page_draws_every_chart_offline_without_errors(browser, report_dir, tmp_path, name):
    context, page, events = open_offline(browser, report_dir / name)
    try:
        drawn = page.eval_on_selector_all(
            ".chart", "charts => charts.map(chart => chart.querySelectorAll('.main-svg').length > 0)")
        assert drawn == [True] * CHARTS[name]
        assert events == {"errors": [], "requests": [], "dialogs": []}
        shot = tmp_path / f"{name}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    finally:
        context.close()


DRAWN = """charts => charts.map(chart => ({
    id: chart.id, traces: chart._fullData.length, visible: chart._fullData.filter(t => t.visible === true).length,
    height: chart._fullLayout.height, shapes: chart._fullLayout.shapes.length,
    background: chart._fullLayout.plot_bgcolor, grid: chart._fullLayout.xaxis.showgrid,
    ticks: chart._fullLayout.xaxis.ticks, font: chart._fullLayout.font.family, legend: chart.layout.legend.orientation,
}))"""


def test_plotly_draws_each_chart_as_written_with_the_page_template(browser, report_dir):
    """What plotly.js drew on the programme page: every trace of each chart, its size, its lines, and
    the house template (simple_white: white plot, no grid, ticks outside) the page applies once."""
    context, page, events = open_offline(browser, report_dir / "P01.html")
    try:
        drawn = {chart.pop("id"): chart for chart in page.eval_on_selector_all(".chart", DRAWN)}
        assert events == {"errors": [], "requests": [], "dialogs": []}
    finally:
        context.close()
    traces = {"chart-rates": 2, "chart-estimates": 2, "chart-survival": 6, "chart-balance": 2, "chart-overlap": 6,
              "chart-attrition": 2, "chart-outcomes": 6, "chart-subgroups": 1}
    assert {name: chart["traces"] for name, chart in drawn.items()} == traces
    assert all(chart["visible"] == chart["traces"] for chart in drawn.values())
    assert {name: chart["shapes"] for name, chart in drawn.items()} == {
        **{name: 0 for name in traces}, "chart-estimates": 2, "chart-balance": 3, "chart-subgroups": 1}
    assert drawn["chart-rates"]["height"] == 340 and drawn["chart-survival"]["height"] == 380
    for name, chart in drawn.items():
        assert (chart["background"], chart["grid"], chart["ticks"]) == ("white", False, "outside"), name
        assert chart["font"].startswith("system-ui") and chart["legend"] == "h", name


def test_hostile_name_shows_as_text(browser, report_dir):
    for name in ("P01.html", "index.html"):
        context, page, events = open_offline(browser, report_dir / name)
        try:
            assert events["dialogs"] == []
            assert page.evaluate("() => document.querySelectorAll('script:not([type]), script[type=\"\"]').length") == 2
            if name == "P01.html":
                assert page.inner_text("h1") == HOSTILE
                assert page.title() == f"{HOSTILE} — reoffending evaluation"
            else:
                assert page.inner_text("table a[href='P01.html']") == HOSTILE
                ticks = page.locator("#chart-forest .ytick text").all_text_contents()
                assert sorted(ticks) == sorted([HOSTILE, "Small Steps"])
        finally:
            context.close()


@pytest.mark.parametrize("name", ["P01.html", "risk-model.html"])
def test_page_fits_a_phone(browser, report_dir, tmp_path, name):
    context, page, events = open_offline(browser, report_dir / name, width=375, height=740)
    try:
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
        widths = page.eval_on_selector_all(".chart .main-svg", "svgs => svgs.map(s => s.getBoundingClientRect().width)")
        assert widths and max(widths) <= 375
        page.screenshot(path=str(tmp_path / "phone.png"))
        assert (tmp_path / "phone.png").stat().st_size > 10_000
        assert events["errors"] == []
    finally:
        context.close()


def test_print_layout_hides_navigation(browser, report_dir):
    context, page, _ = open_offline(browser, report_dir / "P01.html")
    try:
        assert page.evaluate("() => getComputedStyle(document.querySelector('nav.contents')).display") == "block"
        page.emulate_media(media="print")
        assert page.evaluate("() => getComputedStyle(document.querySelector('nav.contents')).display") == "none"
        assert len(page.pdf()) > 50_000
    finally:
        context.close()


def test_sample_run_reports_open_offline_with_every_chart(browser, sample_run):
    """The whole pipeline on the committed sample: one page per programme, each drawn in full."""
    with duckdb.connect(str(sample_run.paths.warehouse), read_only=True) as con:
        headlines = dict(con.execute(
            "SELECT programme_id, sentence FROM results.effects WHERE measure = 'reoffended' "
            "AND estimator = 'matched' AND window_months = ?", [sample_run.follow_up.headline_months]).fetchall())
        run_id, settings_hash = con.execute("SELECT run_id, settings_hash FROM results.run_info").fetchone()
    reports = sample_run.paths.reports
    assert sorted(p.name for p in reports.glob("*.html")) == sorted(
        ["index.html", "risk-model.html", *(f"{programme_id}.html" for programme_id in headlines)])
    for name, charts in [("index.html", 1), ("risk-model.html", 1),
                         *((f"{programme_id}.html", 8) for programme_id in headlines)]:
        context, page, events = open_offline(browser, reports / name)
        try:
            drawn = page.eval_on_selector_all(
                ".chart", "charts => charts.map(chart => chart.querySelectorAll('.main-svg').length > 0)")
            assert drawn == [True] * charts, name
            assert events == {"errors": [], "requests": [], "dialogs": []}, name
            assert page.inner_text("dl.provenance dd >> nth=0") == run_id
            assert page.inner_text("dl.provenance dd >> nth=4") == settings_hash
            assert page.inner_text("dl.provenance dd >> nth=5") == sample_run.data_cutoff.isoformat()
            if name not in ("index.html", "risk-model.html"):
                assert page.inner_text(".headline .sentence") == headlines[name.removesuffix(".html")]
            assert page.inner_text(".banner").startswith("Synthetic data.")  # the committed sample is generated
            if name != "index.html":  # a programme page, with its trust and subgroup sections, prints on 8 A4 pages at most
                page.emulate_media(media="print")
                assert len(re.findall(rb"/Type\s*/Page[^s]", page.pdf(format="A4"))) <= 8, name
            assert page.get_attribute("#data-quality + p a", "href") == "data-quality/index.html"
        finally:
            context.close()
        context, page, events = open_offline(browser, reports / name, width=390, height=844)
        try:  # on a phone: nothing wider than the screen, every label whole
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, name
            assert page.eval_on_selector_all(".chart", CLIPPED_LABELS) == [], name
            assert page.eval_on_selector_all("table", WIDE_TABLES) == [], name
            assert events == {"errors": [], "requests": [], "dialogs": []}, name
        finally:
            context.close()
    assert (reports / "data-quality" / "index.html").exists()


def test_sample_run_pages_are_single_files_under_one_and_a_half_megabytes(sample_run):
    sizes = {page.name: page.stat().st_size for page in sample_run.paths.reports.glob("*.html")}
    assert len(sizes) == 6 and max(sizes.values()) < 1_500_000, sizes
    for name in sizes:  # everything is inside the file: no src or href leaves it but the data-quality pages
        page = (sample_run.paths.reports / name).read_text(encoding="utf-8")
        assert re.findall(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=""", page) == [], name
        links = set(re.findall(r'<a\b[^>]*href="([^"#][^"]*)"', page))
        assert links <= {"index.html", "data-quality/index.html", *sizes}, name


# Plotly's text that must be read whole: tick labels, axis titles, subplot titles and legend entries.
LABELS = ".xtick text, .ytick text, .g-xtitle text, .g-ytitle text, .annotation-text, .legendtext"
CLIPPED_LABELS = """charts => charts.flatMap(chart => {
  const svg = chart.querySelector('.main-svg').getBoundingClientRect();
  return [...chart.querySelectorAll(LABELS)].filter(label => label.textContent.trim()).map(label => {
    const box = label.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) return null;  // a tick plotly hides where labels would overlap
    const inside = box.left >= svg.left - 1 && box.right <= svg.right + 1
                && box.top >= svg.top - 1 && box.bottom <= svg.bottom + 1;
    return inside ? null : `${chart.id}: "${label.textContent}" at ${Math.round(box.left)}..${Math.round(box.right)} `
                          + `outside ${Math.round(svg.left)}..${Math.round(svg.right)}`;
  }).filter(Boolean);
})""".replace("LABELS", repr(LABELS))
WIDE_TABLES = """tables => tables.filter(table => table.getBoundingClientRect().width > 0
  && (table.scrollWidth > table.parentElement.clientWidth + 1
      || table.getBoundingClientRect().right > document.documentElement.clientWidth + 1))
  .map(table => table.querySelector('th').textContent)"""


@pytest.mark.parametrize("width", [390, 800, 1280])
@pytest.mark.parametrize("name", sorted(CHARTS))
def test_pages_fit_the_screen_with_every_label_whole(browser, report_dir, name, width):
    context, page, events = open_offline(browser, report_dir / name, width=width, height=844)
    try:
        page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        assert page.eval_on_selector_all(".chart", CLIPPED_LABELS) == []
        assert page.eval_on_selector_all("table", WIDE_TABLES) == []
        if width < 600:  # tables are stacked cards: each value carries its column's name
            assert page.evaluate("() => getComputedStyle(document.querySelector('table.stack tr')).display") == "block"
            label = page.evaluate("() => getComputedStyle(document.querySelector('table.stack td'), '::before').content")
            assert label.strip('"') == page.evaluate("() => document.querySelector('table.stack td').dataset.label")
        assert events["errors"] == []
    finally:
        context.close()


def test_programme_page_prints_on_few_a4_pages(browser, report_dir):
    context, page, _ = open_offline(browser, report_dir / "P01.html")
    try:
        page.emulate_media(media="print")
        pdf = page.pdf(format="A4")
        assert 2 <= len(re.findall(rb"/Type\s*/Page[^s]", pdf)) < 8
    finally:
        context.close()


VISIBLE_STATUSES = "td .dq-status"


def test_data_docs_show_a_status_for_every_expectation_and_filter_offline(browser, make_settings):
    """Great Expectations' pages, styled offline: each expectation's row says passed or failed, and
    "Failed only" leaves only the failed ones."""
    settings = make_settings()
    tables = with_extra_people(clean_tables(), ["atlantis"] * 3)  # people.region: 3 of 43 fail, over "mostly"
    folder = settings.paths.reports / "data-quality"
    with duckdb.connect(str(settings.paths.warehouse)) as con:
        validation.stage_frames(con, tables)
        validation.validate_warehouse(con, settings, run_id="docs-in-a-browser", data_docs=folder)
    suites = {path.stem: len(json.loads(path.read_text())["expectations"])
              for path in validation.EXPECTATIONS_DIR.glob("*.json")}
    pages = {path.parts[-4]: path for path in (folder / "validations").rglob("*.html")}
    assert sorted(pages) == sorted(suites)
    for table, page_file in sorted(pages.items()):
        context, page, events = open_offline_page(browser, page_file)
        try:
            statuses = page.eval_on_selector_all("td .dq-status", "cells => cells.map(cell => cell.innerText.trim())")
            assert len(statuses) == suites[table], table  # one status per expectation of the suite
            assert set(statuses) <= {"✓ passed", "✗ failed"}, table
            styled = page.evaluate("() => getComputedStyle(document.querySelector('.card')).borderTopStyle")
            assert styled == "solid"  # Bootstrap's card style, from the vendored stylesheet
            page.click("text=Failed Only")
            assert page.eval_on_selector_all(VISIBLE_STATUSES, "cells => cells.filter(c => c.offsetParent !== null)"
                                             ".map(c => c.innerText.trim())") == [
                status for status in statuses if status == "✗ failed"], table
            page.click("text=Show All")
            assert page.eval_on_selector_all(VISIBLE_STATUSES, "cells => cells.filter(c => c.offsetParent !== null)"
                                             ".length") == len(statuses), table
            assert events == {"errors": [], "requests": [], "dialogs": []}, table
            assert page.eval_on_selector_all("a[href^='http'], a[href^='//']", "links => links.length") == 0
        finally:
            context.close()
    people = pages["people"].read_text()
    assert "atlantis" not in people and "✗ failed" in people  # person-level: the count, not the value
