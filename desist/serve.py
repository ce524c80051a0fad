"""Production deployment: dagster-webserver and dagster-daemon over a Dagster instance kept in PostgreSQL.

`make serve` runs deploy/postgres.sh (starts PostgreSQL, creates the role and database if absent),
then `desist serve`, which writes the instance settings and starts both processes. Runs queue and
start one at a time (DuckDB allows one writer); the schedule, the landing-file sensor and the
run-failure alert run in the daemon. `make run` keeps the embedded, in-process default.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from desist.config import PROJECT_ROOT, Settings

PRODUCTION_HOME = PROJECT_ROOT / ".dagster_production"
WORKSPACE = PROJECT_ROOT / "workspace.yaml"  # names the code location `desist`

INSTANCE_YAML = """\
# desist production instance (written by `desist serve`, not committed).
storage:
  postgres:
    postgres_db:
      hostname: {host}
      port: {port}
      username: {user}
      password:
        env: DESIST_PG_PASSWORD
      db_name: {database}
      scheme: postgresql+psycopg2  # the driver dagster-postgres installs
run_coordinator:                 # runs wait in a queue ...
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
concurrency:
  runs:
    max_concurrent_runs: 2       # ... two at a time: programme runs only read the warehouse and run side
                                 # by side; the sensors start the writing runs alone (one DuckDB writer)
  pools:
    default_limit: 1             # the warehouse pool: one writing step at a time
telemetry:
  enabled: false
"""


def postgres_settings(database: str | None = None) -> dict[str, str]:
    """Where the instance lives: DESIST_PG_HOST, _PORT, _USER, _PASSWORD and _DB, with local defaults."""
    env = os.environ
    return {
        "host": env.get("DESIST_PG_HOST", "localhost"),
        "port": env.get("DESIST_PG_PORT", "5432"),
        "user": env.get("DESIST_PG_USER", "desist"),
        "password": env.get("DESIST_PG_PASSWORD", "desist"),
        "database": database or env.get("DESIST_PG_DB", "desist"),
    }


def write_instance(home: Path, database: str | None = None) -> dict[str, str]:
    """Write home/dagster.yaml for a PostgreSQL-backed instance; returns the environment it needs."""
    pg = postgres_settings(database)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(INSTANCE_YAML.format(**pg))
    return {"DAGSTER_HOME": str(home), "DESIST_PG_PASSWORD": pg["password"]}


def daemon_command() -> list[str]:
    return [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(WORKSPACE)]


def webserver_command(port: int, host: str) -> list[str]:
    return [str(Path(sys.executable).with_name("dagster-webserver")), "-w", str(WORKSPACE),
            "-h", host, "-p", str(port)]


def serve(settings: Settings, port: int, host: str = "127.0.0.1") -> int:
    """Start the daemon and the webserver; stop both when either ends or on Ctrl-C / SIGTERM."""
    home = Path(os.environ.get("DESIST_PRODUCTION_HOME") or PRODUCTION_HOME)
    env = {**os.environ, **write_instance(home), "DESIST_CONFIG": str(settings.source)}
    processes = [subprocess.Popen(command, env=env, cwd=PROJECT_ROOT)
                 for command in (daemon_command(), webserver_command(port, host))]
    print(f"desist: serving {settings.source} at http://{host}:{port} (instance in PostgreSQL, home {home})",
          flush=True)

    def stop(*_):
        for process in processes:
            if process.poll() is None:
                process.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(process.poll() is None for process in processes):
            try:
                processes[0].wait(timeout=1)
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        for process in processes:
            process.wait(timeout=30)
    failed = [p.returncode for p in processes if p.returncode not in (0, -signal.SIGTERM, -signal.SIGINT)]
    return 1 if failed else 0
