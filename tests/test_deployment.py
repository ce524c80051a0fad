"""The production deployment: the Dagster daemon runs the evaluation over an instance kept in a real
PostgreSQL server (started by .ci/run / deploy/postgres.sh), and a failed run sends exactly one alert."""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import psycopg2
import pytest

from desist.config import PROJECT_ROOT
from desist.generate import write_extract
from desist.serve import daemon_command, postgres_settings, write_instance

FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@pytest.fixture
def postgres_database():
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    pg = postgres_settings()
    name = f"desist_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["user"], password=pg["password"],
                             dbname=pg["database"])
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    yield name
    admin.cursor().execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def alert_receiver():
    """A local HTTP endpoint that keeps the JSON body of every POST it receives."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alert", received
    server.shutdown()


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def finished_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return sorted((run for run in instance.get_runs() if run.status in FINISHED),
                  key=lambda run: instance.get_run_record_by_id(run.run_id).create_timestamp)


def test_the_daemon_runs_the_evaluation_on_postgres_and_a_failed_run_alerts_once(
        make_settings, tmp_path, postgres_database, alert_receiver):
    url, alerts = alert_receiver
    settings = make_settings(alerts={"webhook": url}, schedule={"sensor_interval_seconds": 5})
    write_extract(settings.paths.landing, people=3_000, seed=5)
    home = tmp_path / "instance"
    env = {**os.environ, **write_instance(home, database=postgres_database), "DESIST_CONFIG": str(settings.source)}
    os.environ["DESIST_PG_PASSWORD"] = env["DESIST_PG_PASSWORD"]  # for this process's view of the instance
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(daemon_command(), env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"

            # New landing files: the landing sensor queues the evaluation, the stages sensor then one run per
            # programme (as partitions) and the publishing run, and the daemon starts them.
            publish = wait_for(lambda: [run for run in finished_runs(instance) if run.job_name == "evaluation_publish"
                                        or run.status != dg.DagsterRunStatus.SUCCESS],
                               420, "the first evaluation to be published")[0]
            log_tail = (tmp_path / "daemon.log").read_text()[-3000:]
            assert publish.job_name == "evaluation_publish" and publish.status == dg.DagsterRunStatus.SUCCESS, log_tail
            first, *programmes = [run for run in finished_runs(instance) if run.job_name != "evaluation_publish"]
            assert first.job_name == "evaluation" and first.status == dg.DagsterRunStatus.SUCCESS
            assert first.tags["dagster/sensor_name"] == "landing_files_sensor"
            assert sorted(run.tags["dagster/partition"] for run in programmes) == ["P01", "P02", "P03", "P04"]
            assert all(run.status == dg.DagsterRunStatus.SUCCESS and run.tags["desist/batch"] == first.run_id
                       for run in programmes)
            assert publish.tags["desist/batch"] == first.run_id
            assert settings.paths.research.exists()
            # Every person removed: every reference fails, validation blocks the next run.
            people = settings.paths.landing / "people.csv"
            people.write_text(people.read_text().splitlines()[0] + "\n")
            evaluations = lambda: [run for run in finished_runs(instance) if run.job_name == "evaluation"]  # noqa: E731
            second = wait_for(lambda: len(evaluations()) == 2 and evaluations(), 300, "the second run")[1]
            assert second.status == dg.DagsterRunStatus.FAILURE
            wait_for(lambda: alerts, 60, "the alert")
            time.sleep(15)  # three more sensor intervals: a failed run is reported once, not on every tick
            assert len(alerts) == 1
            assert alerts[0]["run_id"] == second.run_id
            assert alerts[0]["job"] == "evaluation"
            assert alerts[0]["reason"].startswith("step 'validate_staging' failed: Data validation blocked the run")
            assert alerts[0]["settings"] == str(settings.source)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        log.close()


def test_an_alert_by_mail_reaches_the_smtp_server(tmp_path):
    """send_alert speaks SMTP to a minimal local server that records what it is sent."""
    import socketserver

    from desist.config import Alerts
    from pipelines.alerts import send_alert

    mails: list[dict] = []

    class Smtp(socketserver.StreamRequestHandler):
        def reply(self, line: str):
            self.wfile.write(f"{line}\r\n".encode())

        def handle(self):
            mail = {"to": [], "data": []}
            self.reply("220 localhost")
            while line := self.rfile.readline().decode():
                command = line.strip().upper()
                if command.startswith(("EHLO", "HELO")):
                    self.reply("250 localhost")
                elif command.startswith("MAIL FROM:"):
                    mail["from"] = line.strip()[10:]
                    self.reply("250 OK")
                elif command.startswith("RCPT TO:"):
                    mail["to"].append(line.strip()[8:])
                    self.reply("250 OK")
                elif command == "DATA":
                    self.reply("354 end with .")
                    while (body := self.rfile.readline().decode()) not in (".\r\n", ""):
                        mail["data"].append(body)
                    mails.append(mail)
                    self.reply("250 OK")
                elif command == "QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("250 OK")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Smtp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        alerts = Alerts(smtp_host="127.0.0.1", smtp_port=server.server_address[1], email_from="desist@example.org",
                        email_to=["evaluator@example.org", "lead@example.org"])
        sent = send_alert(alerts, {"run_id": "0123456789ab", "job": "evaluation", "settings": "/x/evaluation.yaml",
                                   "reason": "step 'validate_staging' failed: Data validation blocked the run"})
    finally:
        server.shutdown()
        server.server_close()
    assert sent == [f"smtp://127.0.0.1:{server.server_address[1]}"]
    assert len(mails) == 1
    assert mails[0]["from"] == "<desist@example.org>"
    assert mails[0]["to"] == ["<evaluator@example.org>", "<lead@example.org>"]
    text = "".join(mails[0]["data"])
    assert "Subject: desist: run 01234567 failed" in text
    assert "step 'validate_staging' failed: Data validation blocked the run" in text
