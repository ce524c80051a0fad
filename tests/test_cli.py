"""The `desist` command as an evaluator runs it: a separate process, its exit code and what it prints."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from test_pipeline_validation import write_landing
from test_validation import clean_tables

from desist.serve import WORKSPACE
from desist.config import PROJECT_ROOT
from desist.generate import write_extract
from pipelines.schedules import build_schedule_and_sensor


def desist(*args: str, dagster_home) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    env.pop("DESIST_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "desist.cli", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env=env, timeout=600)


def python_process(script: str) -> subprocess.CompletedProcess:
    """``script`` run by a Python process of its own (what it freezes or imports stays there), its output
    buffered as it is into a pipe whatever PYTHONUNBUFFERED says here."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          timeout=120, env=env)


def test_run_prints_the_summary_and_status_lists_the_runs(make_settings, tmp_path):
    settings = make_settings()
    write_extract(settings.paths.landing, people=3_000, seed=5)
    home = tmp_path / "dagster_home"

    run = desist("run", "--config", str(settings.source), dagster_home=home)

    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "Ingest summary (rows per file):" in out
    people = next(line.split() for line in out.splitlines() if "people.csv" in line)
    assert people == ["people", "people.csv", "loaded", "3000", "3000", "0", "0"]
    assert "Headline: 12-month proven reoffending, participants vs matched comparison:" in out
    assert sum(line.split()[0] in {"P01", "P02", "P03", "P04"} for line in out.splitlines()
               if line.strip()) == 4
    for name in ("index", "P01", "P02", "P03", "P04"):
        assert f"  report: {settings.paths.reports / name}.html" in out
    assert f"  research database: {settings.paths.research}" in out
    assert (home / "dagster.yaml").exists()

    status = desist("status", "--config", str(settings.source), dagster_home=home)

    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0] == "Last 1 runs:"
    run_id = out.splitlines()[1].split()[2].rstrip(";")  # desist: run <id>; full log: ...
    assert lines[1].split()[:2] == [run_id[:8], "SUCCESS"]
    assert lines[-1] == "  (none)"
    assert lines[-2] == f"Quarantined rows (from {settings.paths.research}):"

    with dg.DagsterInstance.from_config(str(home)) as instance:
        # The runs are the named jobs the UI, the schedule and the sensors start.
        assert sorted(run.job_name for run in instance.get_runs()) == [
            "evaluation", "evaluation_publish", *["programme_evaluation"] * 4]
        # `desist ui` on files this run already published starts no run.
        _, sensor = build_schedule_and_sensor(settings)
        tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=None))
        assert tick.run_requests == []
        assert tick.skip_message == "the landing files are those the last successful run published"

        # The effects asset says what it estimated, in the UI.
        effects = instance.get_latest_materialization_event(dg.AssetKey(["results", "effects"]))
        metadata = {key: getattr(value, "value", value) for key, value in effects.asset_materialization.metadata.items()}
    with duckdb.connect(str(settings.paths.research), read_only=True) as research:
        max_smd, matched, estimated, not_estimated = research.execute(
            "SELECT (SELECT max(abs(smd)) FROM balance WHERE stage = 'after'), "
            "(SELECT count(*) FROM matched_sets WHERE treated AND weight > 0), "
            "(SELECT count(*) FILTER (status = 'ok') FROM programmes_analysed), "
            "(SELECT string_agg(programme_id || ': ' || status, '; ' ORDER BY programme_id) "
            " FROM programmes_analysed WHERE status <> 'ok')").fetchone()
    assert metadata["programmes estimated"] == estimated
    assert metadata["programmes not estimated"] == (not_estimated or "none")
    assert metadata["max |SMD| after matching"] == pytest.approx(max_smd)
    assert metadata["participants matched"] == matched


def test_a_failed_run_exits_non_zero_with_one_line_naming_the_step_and_reason(make_settings, tmp_path):
    settings = make_settings()
    tables = clean_tables()
    tables["offences"].loc[[0, 1, 2, 3], "person_id"] = "S999"  # 36 of 40 resolve: below 99%
    write_landing(settings, tables)
    home = tmp_path / "dagster_home"

    run = desist("run", "--config", str(settings.source), dagster_home=home)

    reason = ("desist: run failed: step 'validate_staging' failed: Data validation blocked the run: "
              "offences.person_id expect_column_values_to_be_in_set: not found in people.person_id for 4 of 40 rows; "
              "90.00% resolve, below min_reference_rate")
    assert run.returncode == 1
    run_id = run.stdout.splitlines()[1].split()[2].rstrip(";")
    log = settings.paths.warehouse.parent / "logs" / f"run-{run_id}.log"
    assert run.stderr.splitlines() == [reason, f"desist: full log: {log}"]  # no stack trace
    assert "Outputs:" not in run.stdout
    assert not settings.paths.research.exists()
    text = log.read_text()
    assert "STEP_FAILURE" in text and 'raise dg.Failure(' in text  # the full log keeps the stack trace

    verbose = desist("run", "--config", str(settings.source), "--verbose", dagster_home=home)
    assert verbose.returncode == 1
    assert verbose.stderr.splitlines()[-2] == reason
    assert "STEP_FAILURE" in verbose.stderr and 'raise dg.Failure(' in verbose.stderr  # shown live

    status = desist("status", "--config", str(settings.source), dagster_home=home)
    assert status.stdout.splitlines()[0] == "Last 2 runs:"
    assert status.stdout.splitlines()[1].split()[1] == "FAILURE"
    assert status.stdout.splitlines()[2] == f"            reason: {reason.removeprefix('desist: run failed: ')}"
    assert status.stdout.splitlines()[-1] == f"No published database yet at {settings.paths.research}."


def test_a_missing_settings_file_is_one_line_and_exit_code_2(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    run = desist("run", "--config", str(missing), dagster_home=tmp_path / "home")
    assert run.returncode == 2
    assert len(run.stderr.splitlines()) == 1
    assert run.stderr.startswith("desist: ") and str(missing) in run.stderr


def test_the_command_runs_the_exit_handlers_and_exits_with_mains_code(tmp_path):
    # It leaves through os._exit (no teardown of the modules imported): what an exit handler
    # prints must still reach the pipe, and main's code be the process's.
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print('exit handler', end=''))\n"
              "from desist import cli\n"
              f"sys.argv = ['desist', 'status', '--config', {str(tmp_path / 'absent.yaml')!r}]\n"
              "cli.entry()\n")
    finished = python_process(script)
    assert finished.returncode == 2
    assert finished.stdout == "exit handler"
    assert finished.stderr.startswith("desist: ")


def test_a_librarys_root_logging_call_leaves_stderr_to_desists_own_lines(tmp_path):
    # Dagster's SQLite storage calls logging.info() when two processes create its tables at once. Without a
    # handler of the command's own on the root logger, that call installs one writing to stderr, and a later
    # Great Expectations record landed there, before the command's one line (seen under load).
    script = ("import logging, sys\n"
              "from desist import cli\n"
              "logging.getLogger('great_expectations').setLevel(logging.INFO)\n"
              f"sys.argv = ['desist', 'status', '--config', {str(tmp_path / 'absent.yaml')!r}]\n"
              "code = cli.main()\n"
              "logging.info('concurrent init, retrying')\n"
              "logging.warning('a library warning')\n"
              "logging.getLogger('great_expectations').info('Created temporary directory')\n"
              "sys.exit(code)\n")
    finished = python_process(script)
    assert finished.returncode == 2
    assert finished.stderr.splitlines() == [f"desist: settings file not found: {tmp_path / 'absent.yaml'}"]


def test_imports_uncollected_turns_the_collector_off_then_freezes_what_was_imported():
    script = ("import gc\n"
              "from desist.collector import imports_uncollected\n"
              "with imports_uncollected():\n"
              "    off = not gc.isenabled()\n"
              "    import fractions\n"
              "walked = {id(o) for o in gc.get_objects()}\n"
              "print(off, gc.isenabled(), id(fractions.Fraction) in walked)\n"
              "gc.disable()\n"
              "with imports_uncollected():\n"
              "    import decimal\n"
              "print(gc.isenabled())\n")
    finished = python_process(script)
    # Off inside, on after, the imported class out of the collector's walk; a collector off before stays off.
    assert finished.stdout.split() == ["True", "True", "False", "False"], finished.stderr


def test_freeze_survivors_collects_the_garbage_before_freezing():
    # A cycle frozen while unreachable would never be freed: freeze_survivors collects it first.
    script = ("import gc, weakref\n"
              "from desist.collector import freeze_survivors\n"
              "class Held: pass\n"
              "gc.disable()\n"
              "cycle = Held(); cycle.me = cycle; alive = Held(); alive.me = alive\n"
              "gone = weakref.ref(cycle); kept = weakref.ref(alive)\n"
              "del cycle\n"
              "freeze_survivors()\n"
              "walked = {id(o) for o in gc.get_objects()}\n"
              "print(gone() is None, kept() is alive, id(alive) in walked)\n")
    finished = python_process(script)
    assert finished.stdout.split() == ["True", "True", "False"], finished.stderr


def test_the_programme_workers_server_imports_uncollected_and_freezes_what_it_imported():
    # The workers forked from it inherit the frozen objects: their collections skip what it imported.
    script = ("import gc\n"
              "from pipelines import worker_server\n"
              "worker_server.start([])\n"
              "with worker_server.WORKER_CONTEXT.Pool(1) as pool:\n"
              "    print(pool.apply(gc.get_freeze_count), pool.apply(gc.isenabled))\n")
    finished = python_process(script)
    # What the server imported (Dagster, pandas, the pipeline): a few hundred thousand objects. The collector,
    # off while it imported, is on again.
    frozen, enabled = finished.stdout.split()
    assert int(frozen) > 100_000, finished.stderr
    assert enabled == "True"


def test_the_ui_code_location_loads(make_settings, tmp_path):
    """What `desist ui` hands to `dagster dev`: the workspace naming the code location `desist`, with the
    settings file from DESIST_CONFIG."""
    settings = make_settings()
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "DESIST_CONFIG": str(settings.source)}
    check = subprocess.run([str(dagster), "definitions", "validate", "-w", str(WORKSPACE)],
                           capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=300)
    assert check.returncode == 0, check.stderr
    assert "Validation successful for code location desist." in check.stderr + check.stdout
    assert "All code locations passed validation." in check.stderr + check.stdout
