"""`desist run` under real faults, as an evaluator meets them: settings mistakes, blocked and empty runs, crashes.

Each test runs the command as a separate process and asserts its exit code, the exact lines it
prints, and that the published database and reports are left exactly as they were.
"""
from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from conftest import materialize_all
from test_cli import desist

from desist.config import PROJECT_ROOT, write_settings
from desist.contract import TABLES
from desist.generate import write_extract
from desist.runs import failure_reason

TABLE_LIST = ", ".join(TABLES)


def published(settings) -> dict[str, str]:
    """sha256 of every published file: the research database, its Parquet copies and every report page."""
    research = settings.paths.research
    files = [research, *research.with_name(research.stem + "_parquet").rglob("*"),
             *settings.paths.reports.rglob("*")]
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in files if path.is_file()}


@pytest.mark.parametrize("case", ["yaml", "typo", "order", "cutoff", "type", "empty_landing"])
def test_a_settings_mistake_is_one_line_naming_file_line_and_key(tmp_path, case):
    landing = tmp_path / "landing"
    landing.mkdir()
    if case != "empty_landing":
        (landing / "people.csv").write_text("person_id,sex,birth_year,ethnic_group,region\n")
    path = write_settings(tmp_path, landing)
    text = path.read_text()
    edits = {
        "yaml": ("  exact: []\n", "  exact: [\n"),
        "typo": ("  index_from:", "  index_form:"),
        "order": ("index_to: 2024-12-31", "index_to: 2018-12-31"),
        "cutoff": ("data_cutoff: 2025-06-30", "data_cutoff: 2018-06-30"),
        "type": ("  ratio: 1\n", "  ratio: two\n"),
        "empty_landing": ("", ""),
    }
    old, new = edits[case]
    path.write_text(text.replace(old, new))
    lines = text.splitlines()  # the edits change no line count
    exact, ratio = lines.index("  exact: []") + 1, lines.index("  ratio: 1") + 1
    expected = {
        # The flow sequence opened on the `exact` line; the parser fails at the colon of the key two lines on.
        "yaml": f"{path}: line {exact + 2}, column 24: not valid YAML: expected ',' or ']', but got ':' (while "
                f"parsing a flow sequence that starts on line {exact})",
        "typo": f"{path}: line 8: cohort.index_form: unknown key; did you mean 'index_from'?",
        "order": f"{path}: line 7: cohort: index_from 2019-01-01 is after index_to 2018-12-31: the cohort period "
                 "is empty",
        "cutoff": f"{path}: data_cutoff 2018-06-30 is before cohort.index_from 2019-01-01: no index event of the "
                  "cohort period can be in the extract",
        "type": f"{path}: line {ratio}: matching.ratio: Input should be a valid integer, unable to parse string as an "
                "integer (got 'two')",
        "empty_landing": f"{landing}: the landing folder holds no data file; expected files named <table>*.csv or "
                         f"<table>*.parquet for the tables {TABLE_LIST}",
    }[case]

    run = desist("run", "--config", str(path), dagster_home=tmp_path / "home")

    assert run.returncode == 2
    assert run.stderr.splitlines() == [f"desist: {expected}"]
    assert not (tmp_path / "home").exists()  # stopped before the run started


def test_blocked_and_empty_runs_exit_non_zero_and_keep_the_published_outputs(make_settings, tmp_path):
    settings = make_settings()
    landing = settings.paths.landing
    write_extract(landing, people=3_000, seed=5)
    home = tmp_path / "dagster_home"
    assert desist("run", "--config", str(settings.source), dagster_home=home).returncode == 0
    before = published(settings)
    assert len(before) > 10
    good = {name: (landing / f"{name}.csv").read_text() for name in ("index_events", "offences")}

    def run_with(table: str, change) -> subprocess.CompletedProcess:
        frame = pd.read_csv(landing / f"{table}.csv", dtype=str, keep_default_na=False)
        change(frame).to_csv(landing / f"{table}.csv", index=False)
        result = desist("run", "--config", str(settings.source), dagster_home=home)
        (landing / f"{table}.csv").write_text(good[table])
        return result

    # Every index date written dd/mm/yyyy: all quarantined at ingest.
    run = run_with("index_events", lambda f: f.assign(
        index_date=pd.to_datetime(f["index_date"]).dt.strftime("%d/%m/%Y")))
    n = len(good["index_events"].splitlines()) - 1
    assert run.returncode == 1
    assert run.stderr.splitlines()[0] == (
        f"desist: run failed: step 'validate_staging' failed: Data validation blocked the run: index_events: {n} "
        f"of {n} rows (100.00%) fail at ingest or critical expectations, more than max_failing_row_share 5.00%: "
        f"bad_date at ingest ({n} rows)")
    assert run.stderr.splitlines()[1].startswith(f"desist: full log: {settings.paths.warehouse.parent}/logs/run-")
    assert published(settings) == before

    # Half the disposals relabelled.
    run = run_with("offences", lambda f: f.assign(disposal=["community_order" if i % 2 == 0 else d
                                                            for i, d in enumerate(f["disposal"])]))
    n = len(good["offences"].splitlines()) - 1
    assert run.returncode == 1
    assert run.stderr.splitlines()[0] == (
        f"desist: run failed: step 'validate_staging' failed: Data validation blocked the run: offences: "
        f"{(n + 1) // 2} of {n} rows (50.00%) fail at ingest or critical expectations, more than "
        f"max_failing_row_share 5.00%: out_of_domain at ingest ({(n + 1) // 2} rows)")
    assert published(settings) == before

    # An optional covariate absent from the extract: nobody can be analysed.
    run = run_with("index_events", lambda f: f.drop(columns=["risk_score"]))
    assert run.returncode == 1
    lines = run.stderr.splitlines()
    assert lines[0] == ("desist: run failed: step 'assembled_results' failed: no programme could be estimated, so "
                        "the published database and reports were kept as they were")
    assert [line.split(": ")[1] for line in lines[1:5]] == ["  P01", "  P02", "  P03", "  P04"]
    for line in lines[1:5]:
        assert line.endswith(": no participant with complete follow-up has every complete-case covariate; "
                             "missing: risk_score (drop them from covariates, or set covariates.missing to "
                             "missing_indicator for them)")
    assert lines[5].startswith("desist: full log: ")
    assert published(settings) == before

    status = desist("status", "--config", str(settings.source), dagster_home=home).stdout.splitlines()
    assert [line.split()[1] for line in status if re.match(r"  [0-9a-f]{8}  ", line)] == [
        "FAILURE", "FAILURE", "FAILURE", "SUCCESS"]
    assert status[2] == f"            reason: {lines[0].removeprefix('desist: run failed: ')}"
    assert status[3:7] == [f"              {line.removeprefix('desist:   ')}" for line in lines[1:5]]


def test_a_file_refused_or_quarantined_is_listed_by_status(make_settings, tmp_path):
    settings = make_settings()
    landing = settings.paths.landing
    write_extract(landing, people=3_000, seed=5)
    (landing / "mentors.csv").write_text((landing / "mentors.csv").read_text(), encoding="utf-16")
    people = (landing / "people.csv").read_text().splitlines(keepends=True)
    people[2] = people[2].replace(",", ',"', 1)
    (landing / "people.csv").write_text("".join(people))
    home = tmp_path / "dagster_home"
    desist("run", "--config", str(settings.source), dagster_home=home)

    status = desist("status", "--config", str(settings.source), dagster_home=home).stdout
    problems = status.split("Files refused, ignored or partly quarantined")[1].splitlines()
    assert problems[0] == f" (from {settings.paths.warehouse}):"
    assert problems[1].startswith("  mentors.csv  rejected: ")
    assert problems[1].endswith("rejected; mentors.csv: the file is UTF-16 encoded, not UTF-8; save it as UTF-8 "
                                "and send it again")
    assert problems[2] == (f"  people.csv  loaded: 3000 rows read, 1 quarantined, 0 rejected; 1 line(s) read alone "
                           "as malformed rows: line 3 opens a quoted value that it does not close; quarantined: "
                           "malformed_row 1")


def start_run(settings, home: Path) -> tuple[subprocess.Popen, str, list[str]]:
    """`desist run` in the background; returns the process, its run id and the lines it printed before running."""
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    env.pop("DESIST_CONFIG", None)
    process = subprocess.Popen([sys.executable, "-m", "desist.cli", "run", "--config", str(settings.source)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT, env=env)
    printed = []
    while not printed or "; full log: " not in printed[-1]:
        printed.append(process.stdout.readline().rstrip("\n"))
        assert printed[-1] or process.poll() is None, printed
    run_id = printed[-1].split()[2].rstrip(";")
    return process, run_id, printed


def wait_for_step(instance, run_id: str, step_key: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = {e.step_key for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)}
        if step_key in started:
            return
        time.sleep(0.2)
    raise AssertionError(f"step {step_key} of run {run_id} did not start within {timeout} s")


def test_a_killed_run_does_not_block_the_next_and_sigterm_stops_a_run_cleanly(make_settings, tmp_path, monkeypatch):
    settings = make_settings()
    write_extract(settings.paths.landing, people=3_000, seed=5)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("concurrency:\n  pools:\n    default_limit: 1\ntelemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    with dg.DagsterInstance.get() as instance:
        killed, killed_id, _ = start_run(settings, home)
        wait_for_step(instance, killed_id, "validate_staging")
        killed.send_signal(signal.SIGKILL)  # mid-step: the validation holds the warehouse slot
        killed.wait(timeout=30)
        assert instance.get_run_by_id(killed_id).status == dg.DagsterRunStatus.STARTED
        claimed = instance.event_log_storage.get_concurrency_info("warehouse").claimed_slots
        assert [slot.run_id for slot in claimed] == [killed_id]

        stopped, stopped_id, printed = start_run(settings, home)
        assert printed[1] == (f"desist: run {killed_id[:8]} was left unfinished: the process running it (pid "
                              f"{killed.pid}) stopped before the run finished (killed or crashed); marked failed by "
                              "the next desist run")
        assert instance.get_run_by_id(killed_id).status == dg.DagsterRunStatus.FAILURE
        wait_for_step(instance, stopped_id, "validate_staging")
        signalled = time.monotonic()
        stopped.send_signal(signal.SIGTERM)
        stopped.wait(timeout=10)
        assert time.monotonic() - signalled < 5
        assert stopped.returncode == 128 + signal.SIGTERM
        assert stopped.stderr.read().splitlines() == [
            f"desist: run {stopped_id} stopped by SIGTERM; nothing half-written was published (run again to "
            f"finish); full log: {settings.paths.warehouse.parent}/logs/run-{stopped_id}.log"]
        assert instance.get_run_by_id(stopped_id).status == dg.DagsterRunStatus.CANCELED
        assert instance.event_log_storage.get_concurrency_info("warehouse").claimed_slots == []

    started = time.monotonic()
    finished = desist("run", "--config", str(settings.source), dagster_home=home)
    assert finished.returncode == 0, finished.stderr
    assert time.monotonic() - started < 300
    assert settings.paths.research.exists()

    status = desist("status", "--config", str(settings.source), dagster_home=home).stdout.splitlines()
    assert [line.split()[1] for line in status[1:6] if not line.strip().startswith("reason")] == [
        "SUCCESS", "CANCELED", "FAILURE"]
    assert status[3] == "            reason: stopped by SIGTERM"
    assert status[5] == (f"            reason: the process running it (pid {killed.pid}) stopped before the run "
                         "finished (killed or crashed); marked failed by the next desist run")


def test_a_run_that_estimates_nothing_stops_with_one_line_per_programme(tmp_path):
    write_extract(tmp_path / "landing", people=3_000, seed=5)
    # No index event of the cohort can have 12 + 6 months before the cut-off.
    config = write_settings(tmp_path, tmp_path / "landing",
                            cohort={"index_from": "2024-07-01", "index_to": "2024-12-31"})
    # The earliest participant's index date + 12 + 6 months is the first cut-off that would do.
    events = pd.read_csv(tmp_path / "landing" / "index_events.csv", parse_dates=["index_date"])

    result = materialize_all(config, raise_on_error=False)

    assert not result.success
    lines = failure_reason(result.all_events).splitlines()
    assert lines[0] == ("step 'assembled_results' failed: no programme could be estimated, so the published "
                        "database and reports were kept as they were")
    assert [line.split(": ")[0] for line in lines[1:]] == ["P01", "P02", "P03", "P04"]
    for line in lines[1:]:
        head, needed = line.split("; the first would need a data cut-off of ")
        assert head.endswith(": no participant has complete follow-up: the 12-month window plus 6-month waiting "
                             "period ends after the data cut-off 2025-06-30")
        needed_date = pd.Timestamp(needed.split(" ")[0])
        assert needed_date > pd.Timestamp("2025-06-30")
        in_cohort = events[events["index_date"].between("2024-07-01", "2024-12-31")]
        assert needed_date >= in_cohort["index_date"].min() + pd.DateOffset(months=18)
    assert not (tmp_path / "research.duckdb").exists()
    assert not (tmp_path / "reports").exists()
