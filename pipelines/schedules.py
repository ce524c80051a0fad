"""Scheduled operation: a monthly (configurable) run and a sensor for new or changed landing files."""

import hashlib
import json
from pathlib import Path

import dagster as dg

from desist.config import Settings
from desist.ingest import DATA_FORMATS, match_table
from desist.provenance import input_fingerprint
from pipelines.publish import RESEARCH_DB
from pipelines.stages import EVALUATION_JOB, unfinished_runs


def is_landing_file(path: Path) -> bool:
    """A file ingest reads or reports on: a data file, or one named after a table (hidden files aside)."""
    return (path.is_file() and not path.name.startswith(".")
            and (match_table(path.name) is not None or path.suffix.lower() in DATA_FORMATS))


def landing_state(landing: Path, previous: dict[str, dict]) -> dict[str, dict]:
    """(size, mtime, sha256) of every landing file; the hash is recomputed only when size or mtime moved."""
    state = {}
    for path in sorted(p for p in Path(landing).iterdir() if is_landing_file(p)):
        stat = path.stat()
        seen = previous.get(path.name)
        if seen and seen["size"] == stat.st_size and seen["mtime_ns"] == stat.st_mtime_ns:
            state[path.name] = seen
            continue
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        state[path.name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}
    return state


def last_published_fingerprint(instance: dg.DagsterInstance) -> str | None:
    """The input fingerprint of the last run that published the researcher database (the end of a good run)."""
    event = instance.get_latest_materialization_event(RESEARCH_DB)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("input_fingerprint")
    return getattr(value, "value", value)


def build_schedule_and_sensor(settings: Settings) -> tuple[dg.ScheduleDefinition, dg.SensorDefinition]:
    schedule = dg.ScheduleDefinition(
        name="evaluation_schedule", job=EVALUATION_JOB, cron_schedule=settings.schedule.cron,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Runs the whole evaluation on the cron schedule '{settings.schedule.cron}' "
                    "(evaluation.yaml schedule.cron), whether or not the landing files changed.",
    )

    @dg.sensor(name="landing_files_sensor", job=EVALUATION_JOB,
               minimum_interval_seconds=settings.schedule.sensor_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Every {settings.schedule.sensor_interval_seconds} s, looks for new, changed or removed "
                           f"files in {settings.paths.landing} "
                           "and runs the whole evaluation once per new set of files. On its first look it "
                           "starts no run when the files are those the last successful run published.")
    def landing_files_sensor(context: dg.SensorEvaluationContext):
        busy = unfinished_runs(context.instance)
        if busy:  # the warehouse has one writer: look again once the evaluation in progress has finished
            return dg.SkipReason(f"an evaluation is in progress (run {busy[0].run_id[:8]} of {busy[0].job_name})")
        first_look = not context.cursor
        previous = {} if first_look else json.loads(context.cursor)
        current = landing_state(settings.paths.landing, previous)
        fingerprint = input_fingerprint([(name, entry["sha256"]) for name, entry in current.items()])
        context.update_cursor(json.dumps(current, sort_keys=True))
        if first_look and fingerprint == last_published_fingerprint(context.instance):
            return dg.SkipReason("the landing files are those the last successful run published")
        changed = sorted(
            name for name, entry in current.items()
            if previous.get(name, {}).get("sha256") != entry["sha256"]
        )
        removed = sorted(set(previous) - set(current))
        if not changed and not removed:
            return dg.SkipReason("no new or changed landing file")
        return dg.RunRequest(run_key=fingerprint,
                             tags={"desist/changed_files": ",".join([*changed, *removed])[:1000]})

    return schedule, landing_files_sensor
