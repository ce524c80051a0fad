"""The `desist` command: run the pipeline, generate synthetic data, start the UI."""
from __future__ import annotations

import argparse
import atexit
import logging
import os
import signal
import sys
import threading
import uuid
from pathlib import Path

from desist.collector import imports_uncollected
from desist.config import PROJECT_ROOT, Settings, load_settings
from desist.serve import WORKSPACE

DAGSTER_HOME = PROJECT_ROOT / ".dagster_home"
DAGSTER_YAML = """\
# Local Dagster instance for desist (created on demand, not committed).
concurrency:
  runs:
    max_concurrent_runs: 2   # `desist ui`: programme runs side by side (they only read the warehouse)
  pools:
    default_limit: 1   # DuckDB allows one writer: warehouse assets run one at a time
telemetry:
  enabled: false
# Dagster's SQLite storages in WAL mode with their connections kept open (desist/event_log.py)
run_storage:
  module: desist.event_log
  class: OpenSqliteRunStorage
  config:
    base_dir: {home}/history
event_log_storage:
  module: desist.event_log
  class: OpenSqliteEventLogStorage
  config:
    base_dir: {home}/history/runs
schedule_storage:
  module: desist.event_log
  class: OpenSqliteScheduleStorage
  config:
    base_dir: {home}/schedules
"""


def dagster_home() -> Path:
    """A local DAGSTER_HOME (sqlite storage) inside the project, created on first use."""
    home = Path(os.environ.get("DAGSTER_HOME") or DAGSTER_HOME)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(DAGSTER_YAML.format(home=home.resolve()))
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def log_path(settings: Settings, run_id: str) -> Path:
    """Where a run's full log goes: beside the warehouse, one file per run."""
    return settings.paths.warehouse.parent / "logs" / f"run-{run_id}.log"


def run_pipeline(settings: Settings, verbose: bool = False) -> tuple[bool, str, str]:
    """Run the whole evaluation (pipelines/stages.py): (success, first run id, failure reason or "").

    The runs execute in a worker thread so this (main) thread keeps the SIGINT/SIGTERM handlers:
    Dagster defers interrupts to its own checkpoints, which a step busy in DuckDB, or a step
    waiting for a pool slot, may not reach for a long time. On a signal the runs are recorded as
    canceled, their pool slots are freed, the programme workers are stopped and the process exits
    at once: the warehouse is left as a crash would leave it, which the next run repairs, and the
    published outputs, swapped in whole, are untouched.
    """
    from pipelines import worker_server

    home = dagster_home()
    # Dagster then stores a new run's planned materialisations and checks as one batch (desist/event_log.py
    # writes a batch in one transaction per database); the workers inherit it from their server.
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
    # First thing: the programme workers' server imports the pipeline on the other core while this process does.
    worker_server.start(worker_server.configured_modules(home / "dagster.yaml"))
    with imports_uncollected():
        import dagster as dg

        from desist import runs
        from pipelines import definitions  # noqa: F401 - imported here, with the collector off
        from pipelines.stages import WORKERS, run_evaluation

        instance = dg.DagsterInstance.get()  # imports the storages' modules

    run_id = str(uuid.uuid4())
    log = log_path(settings, run_id)
    tags = runs.process_tags()
    with instance:
        for note in runs.recover_stale_runs(instance):
            print(f"desist: {note}", flush=True)
        print(f"desist: run {run_id}; full log: {log}", flush=True)
        outcome: dict = {}

        def execute() -> None:
            try:
                outcome["result"] = run_evaluation(str(settings.source), instance, run_id=run_id, tags=tags,
                                                   verbose=verbose)
            except BaseException as error:  # reported by the main thread
                outcome["error"] = error

        def this_process_runs() -> list[str]:
            started = instance.get_runs(filters=dg.RunsFilter(tags=tags))
            return sorted((run.run_id for run in started), key=lambda r: r != run_id)

        def stop(signum, _frame) -> None:
            name = signal.Signals(signum).name
            for worker_process in list(WORKERS):
                worker_process.kill()
            started = this_process_runs()
            for started_run in started:
                runs.stop_run(instance, started_run, f"stopped by {name}")
            runs.write_log(instance, started, log)
            print(f"desist: run {run_id} stopped by {name}; nothing half-written was published "
                  f"(run again to finish); full log: {log}", file=sys.stderr, flush=True)
            os._exit(128 + signum)

        worker = threading.Thread(target=execute, name="desist-run", daemon=True)
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            worker.start()
            while worker.is_alive():
                worker.join(0.2)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if "error" in outcome:
            runs.write_log(instance, this_process_runs(), log)
            error = outcome["error"]
            first = (str(error).strip().splitlines() or [""])[0]
            return False, run_id, f"{type(error).__name__}: {first}"
        result = outcome["result"]
        runs.write_log(instance, result.run_ids, log)
        return result.success, run_id, result.reason


def print_outputs(settings: Settings) -> None:
    from desist import outputs

    outputs.print_summary(settings)


def cmd_run(args: argparse.Namespace) -> int:
    from desist.ingest import check_landing

    settings = load_settings(args.config)
    check_landing(settings.paths.landing)
    print(f"desist: running the pipeline with {settings.source}", flush=True)
    ok, run_id, reason = run_pipeline(settings, verbose=args.verbose)
    if not ok:
        lines = reason.splitlines()
        print(f"desist: run failed: {lines[0]}", file=sys.stderr)
        for line in lines[1:]:
            print(f"desist:   {line}", file=sys.stderr)
        print(f"desist: full log: {log_path(settings, run_id)}", file=sys.stderr)
        return 1
    print(f"desist: run {run_id} succeeded")
    print_outputs(settings)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from desist.check import check

    settings = load_settings(args.config)
    report = check(settings)
    print(report.text())
    for reason in report.reasons:
        print(f"desist: {reason}", file=sys.stderr)
    if not report.ok:
        print("desist: a run would estimate nothing", file=sys.stderr)
        return 1
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from desist.generate import write_extract

    summary = write_extract(Path(args.out), people=args.people, seed=args.seed, fmt=args.format)
    print(f"desist: wrote a synthetic extract of {args.people:,} people to {args.out}")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    os.environ["DESIST_CONFIG"] = str(settings.source)
    dagster_home()
    dagster = Path(sys.executable).with_name("dagster")
    os.execv(str(dagster), [str(dagster), "dev", "-w", str(WORKSPACE), "-p", str(args.port)])
    return 0  # not reached


def cmd_serve(args: argparse.Namespace) -> int:
    from desist.serve import serve

    return serve(load_settings(args.config), port=args.port, host=args.host)


def cmd_status(args: argparse.Namespace) -> int:
    from desist import outputs

    settings = load_settings(args.config)
    dagster_home()
    outputs.print_status(settings, limit=args.limit)
    return 0


def cmd_dictionary(args: argparse.Namespace) -> int:
    from desist.publish import DATA_DICTIONARY, write_data_dictionary

    settings = load_settings(args.config)
    out = write_data_dictionary(settings.paths.research, Path(args.out) if args.out else DATA_DICTIONARY)
    print(f"desist: wrote the data dictionary of {settings.paths.research} to {out}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="desist", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="materialise the whole pipeline in-process")
    run.add_argument("--config", help="settings file (default: $DESIST_CONFIG or evaluation.yaml)")
    run.add_argument("--verbose", action="store_true", help="show the run's log live (it is always written to a file)")
    run.set_defaults(func=cmd_run)

    pre = sub.add_parser("check", help="what the extract would produce, before any model runs")
    pre.add_argument("--config", help="settings file (default: $DESIST_CONFIG or evaluation.yaml)")
    pre.set_defaults(func=cmd_check)

    gen = sub.add_parser("generate", help="write a synthetic extract with its ground truth")
    gen.add_argument("--people", type=int, default=20_000)
    gen.add_argument("--seed", type=int, default=2026)
    gen.add_argument("--out", required=True)
    gen.add_argument("--format", choices=("csv", "parquet"), default="csv")
    gen.set_defaults(func=cmd_generate)

    ui = sub.add_parser("ui", help="start the Dagster UI on this evaluation")
    ui.add_argument("--config")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    serve = sub.add_parser("serve", help="production: dagster-webserver and dagster-daemon, instance in PostgreSQL")
    serve.add_argument("--config")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--host", default="127.0.0.1")
    serve.set_defaults(func=cmd_serve)

    status = sub.add_parser("status", help="the last runs, their outcome, and quarantine counts")
    status.add_argument("--config")
    status.add_argument("--limit", type=int, default=10)
    status.set_defaults(func=cmd_status)

    dictionary = sub.add_parser("dictionary", help="write the data dictionary of the published researcher database")
    dictionary.add_argument("--config")
    dictionary.add_argument("--out", help="Markdown file to write (default: docs/data-dictionary.md)")
    dictionary.set_defaults(func=cmd_dictionary)
    return top


def keep_library_logs_off_stderr() -> None:
    """Give the root logger a handler that drops records, so a library calling ``logging.info()`` and the like
    (Dagster's SQLite storage does, when two processes create its tables at once) does not install one
    writing to stderr, where every later record of every library would follow desist's own lines. The runs'
    records are kept in Dagster's event log and the run's log file."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.NullHandler())


def main(argv: list[str] | None = None) -> int:
    keep_library_logs_off_stderr()
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"desist: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before or after a run: the run itself handles its own signals
        print("desist: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The `desist` command: ``main``, then exit without tearing down the interpreter.

    The commands close their own files and databases, so nothing waits on a finaliser; the exit
    handlers still run (logs are flushed). What is skipped is the interpreter's teardown of every
    module a run imported (Dagster, Great Expectations, pandas): a collection across all of them,
    1.3 s after a 100,000-person run, and then freeing each module, 0.1 s more.
    """
    code = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
