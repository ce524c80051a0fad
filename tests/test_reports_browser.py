"""The reports in a real browser: headless Chromium with the network off.

Each page must load with no console errors, draw every chart, fit a phone's width and show a
programme named like a script as plain text.
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from playwright.sync_api import Browser, sync_playwright

from test_reports import HOSTILE, build_example

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
CHARTS = {"index.html": 1, "P01.html": 7, "P02.html": 2}


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
    page.wait_for_function(
        "() => [...document.querySelectorAll('.chart')].every(chart => chart.querySelector('.main-svg'))",
        timeout=30_000)
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


def test_programme_page_fits_a_phone(browser, report_dir, tmp_path):
    context, page, events = open_offline(browser, report_dir / "P01.html", width=375, height=740)
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
        ["index.html", *(f"{programme_id}.html" for programme_id in headlines)])
    for name, charts in [("index.html", 1), *((f"{programme_id}.html", 7) for programme_id in headlines)]:
        context, page, events = open_offline(browser, reports / name)
        try:
            drawn = page.eval_on_selector_all(
                ".chart", "charts => charts.map(chart => chart.querySelectorAll('.main-svg').length > 0)")
            assert drawn == [True] * charts, name
            assert events == {"errors": [], "requests": [], "dialogs": []}, name
            assert page.inner_text("dl.provenance dd >> nth=0") == run_id
            assert page.inner_text("dl.provenance dd >> nth=4") == settings_hash
            assert page.inner_text("dl.provenance dd >> nth=5") == sample_run.data_cutoff.isoformat()
            if name != "index.html":
                assert page.inner_text(".headline .sentence") == headlines[name.removesuffix(".html")]
        finally:
            context.close()
