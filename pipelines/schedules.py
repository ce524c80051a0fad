"""Scheduled operation: a monthly (configurable) run and a sensor for new or changed landing files."""

import hashlib
import json
from pathlib import Path

import dagster as dg

from desist.config import Settings

EVALUATION_JOB = dg.define_asset_job("evaluation", selection=dg.AssetSelection.all(),
                                     description="The whole evaluation: ingest to published outputs.")


def landing_state(landing: Path, previous: dict[str, dict]) -> dict[str, dict]:
    """(size, mtime, sha256) of every landing file; the hash is recomputed only when size or mtime moved."""
    state = {}
    for path in sorted(p for p in Path(landing).iterdir() if p.suffix in {".csv", ".parquet"}):
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


def build_schedule_and_sensor(settings: Settings) -> tuple[dg.ScheduleDefinition, dg.SensorDefinition]:
    schedule = dg.ScheduleDefinition(
        name="evaluation_schedule", job=EVALUATION_JOB, cron_schedule=settings.schedule.cron,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )

    @dg.sensor(name="landing_files_sensor", job=EVALUATION_JOB, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def landing_files_sensor(context: dg.SensorEvaluationContext):
        previous = json.loads(context.cursor) if context.cursor else {}
        current = landing_state(settings.paths.landing, previous)
        changed = sorted(
            name for name, entry in current.items()
            if previous.get(name, {}).get("sha256") != entry["sha256"]
        )
        context.update_cursor(json.dumps(current, sort_keys=True))
        if not changed:
            return dg.SkipReason("no new or changed landing file")
        fingerprint = hashlib.sha256("".join(current[n]["sha256"] for n in sorted(current)).encode()).hexdigest()
        return dg.RunRequest(run_key=fingerprint, tags={"desist/changed_files": ",".join(changed)[:1000]})

    return schedule, landing_files_sensor
