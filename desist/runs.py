"""Runs as the Dagster instance records them: why one failed, its full log, and recovery after a crash.

`desist run` tags every run with the process that executes it (``desist/pid``, ``desist/host``).
A process killed mid-run (kill -9, power cut, out of memory) leaves its run STARTED and its
slot in the ``warehouse`` concurrency pool taken, so every later run would wait forever. Before
it starts, the next `desist run` finds such runs whose process is gone, records them as failed
with the reason, and frees their slots.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Iterable
from pathlib import Path

PID_TAG, HOST_TAG = "desist/pid", "desist/host"
# An evaluation's runs (pipelines/stages.py): the first, then the ones tagged with its run id.
EVALUATION_JOB_NAME, PUBLISH_JOB_NAME, BATCH_TAG = "evaluation", "evaluation_publish", "desist/batch"


def process_tags() -> dict[str, str]:
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    # A reused pid belongs to some other program.
    return cmdline.exists() and b"desist" not in cmdline.read_bytes()


def recover_stale_runs(instance) -> list[str]:
    """Mark failed the unfinished runs of this host whose process is gone; free their pool slots.

    Returns one note per run recovered.
    """
    import dagster as dg

    unfinished = instance.get_runs(filters=dg.RunsFilter(statuses=[
        dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING]))
    notes = []
    for run in unfinished:
        pid, host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
        if pid is None or host != socket.gethostname() or not _process_gone(int(pid)):
            continue
        reason = (f"the process running it (pid {pid}) stopped before the run finished "
                  "(killed or crashed); marked failed by the next desist run")
        instance.report_run_failed(run, reason)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        notes.append(f"run {run.run_id[:8]} was left unfinished: {reason}")
    return notes


def stop_run(instance, run_id: str, why: str) -> None:
    """Record a run stopped by a signal as canceled and give back its pool slots."""
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_canceled(run, why)
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def _one_line_error(error) -> str:
    """An exception as Dagster serialised it, as the evaluator should read it."""
    cause = error.cause or error
    text = (cause.message or error.message).strip()
    # Dagster prefixes the exception's dotted class path: keep the class name only, and drop it
    # for a deliberate dagster Failure, whose (possibly several-line) description is the reason.
    prefix, _, rest = text.partition(": ")
    if rest and prefix.endswith(cause.cls_name or ""):
        if cause.cls_name == "Failure":
            return rest.strip()
        text = f"{cause.cls_name}: {rest}"
    return text.splitlines()[0]


def failure_reason(events: Iterable) -> str:
    """Why a run failed, from its events (DagsterEvents or event log entries): the failed step and its reason.

    A Failure raised on purpose may say it in several lines (one per table or programme).
    """
    run_failure = None
    for event in events:
        event = getattr(event, "dagster_event", event)
        if event is None:
            continue
        if event.is_step_failure:
            return f"step '{event.step_key}' failed: {_one_line_error(event.step_failure_data.error)}"
        if event.event_type_value in ("PIPELINE_FAILURE", "PIPELINE_CANCELED") and event.message:
            run_failure = event.message
    return run_failure or "the run failed without a step failure (see the run's log)"


def write_log(instance, run_ids: list[str], path: Path) -> Path:
    """The whole event log of one evaluation's runs, one after another, stack traces included."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        lines.append(f"== run {run_id} ({run.job_name if run else 'unknown job'}"
                     + (f", programme {run.tags['dagster/partition']}" if run and "dagster/partition" in run.tags
                        else "") + ")")
        for entry in instance.all_logs(run_id):
            when = dt.datetime.fromtimestamp(entry.timestamp, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            level = logging.getLevelName(entry.level) if isinstance(entry.level, int) else str(entry.level)
            event = entry.dagster_event
            message = entry.user_message or (event.message if event else "") or ""
            kind = f"{event.event_type_value} " if event else ""
            lines.append(f"{when} {level:<7} {entry.step_key or '-'} {kind}{message}")
            errors = [entry.error_info]
            if event is not None and event.is_step_failure:
                errors.append(event.step_failure_data.error)
            for error in filter(None, errors):
                lines.append("    " + str(error.to_string()).replace("\n", "\n    "))
    path.write_text("\n".join(lines) + "\n")
    return path
