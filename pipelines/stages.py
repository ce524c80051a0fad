"""The evaluation in three stages, one orchestration for `desist run` and for the daemon.

1. ``evaluation``: ingest, validation, analysis tables, risk model, run info (writes the warehouse).
2. ``programme_evaluation``: one run per programme whose inputs changed, several at once; each only
   reads the warehouse and writes its programme's Parquet files (pipelines/partitions.py).
3. ``evaluation_publish``: the results tables assembled from every programme in one transaction,
   then indicators, reports and the researcher database (writes the warehouse).

Between 1 and 2 the programme partitions are brought in step with staging.programmes (new ones
added, removed ones deleted with their files) and the programmes to run are picked by comparing
each one's input fingerprint with the one its partitions last recorded. DuckDB allows one writer
process or several readers, so the writing stages run alone and only stage 2 runs in parallel.
`desist run` drives the stages in-process (stage 2 in worker processes); under the daemon the
landing sensor starts stage 1 and the programme stages sensor starts stages 2 and 3.
"""
from __future__ import annotations

import gc
import json
import multiprocessing
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg
from dagster_shared.serdes import deserialize_value, serialize_value
from threadpoolctl import threadpool_limits

from desist import warehouse as wh
from desist.config import Settings, load_settings
from desist.runs import BATCH_TAG, EVALUATION_JOB_NAME, PUBLISH_JOB_NAME, failure_reason
from models.threads import threads_limited
from pipelines import assembly, indicators, worker_server
from pipelines.partitions import (FINGERPRINT_TAG, PLANNED_FINGERPRINTS_TAG, PROGRAMME_GROUP, PROGRAMMES,
                                  programme_fingerprints, remove_partition_files, stale_programmes, warehouse_state)
from pipelines.publish import BUILDS, ResearchBuild, research_build_hooks
from pipelines.reports import REPORTS
from pipelines.resources import Warehouse, release_free_memory

PROGRAMME_ASSETS = dg.AssetSelection.groups(PROGRAMME_GROUP)
EVALUATION_JOB = dg.define_asset_job(
    EVALUATION_JOB_NAME, selection=dg.AssetSelection.all() - PROGRAMME_ASSETS.downstream(),
    description="The evaluation up to the programmes: ingest, validation, analysis tables, risk model and run "
                "info. When it succeeds, each changed programme is evaluated (programme_evaluation) and the "
                "results are assembled and published (evaluation_publish).")
PROGRAMME_JOB = dg.define_asset_job(
    "programme_evaluation", selection=PROGRAMME_ASSETS,
    description="One programme: matching, effects, survival, diagnostics and subgroup effects (reads the warehouse, "
                "writes the programme's Parquet files; several programmes run at once).")
# The publish job's steps that write the warehouse, in the order they run, with what each writes: the results
# schema only, so the researcher database's person-level tables, read from the analysis schema, are copied while
# they run, and its other tables as soon as the step writing what they read is done (pipelines/publish.py).
# The indicators step writes results.indicators alone: the other results tables are copied beside it.
PUBLISH_WRITERS = {assembly.assembled_results: ("results",), indicators.indicators: ("results.indicators",)}
PUBLISH_JOB = dg.define_asset_job(
    PUBLISH_JOB_NAME, selection=PROGRAMME_ASSETS.downstream() - PROGRAMME_ASSETS,
    description="Every programme's results assembled into the results tables in one transaction, then "
                "indicators, and the reports while the researcher database is built.",
    hooks=research_build_hooks(readers=[REPORTS], writers=PUBLISH_WRITERS))
JOBS = (EVALUATION_JOB, PROGRAMME_JOB, PUBLISH_JOB)
UNFINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


@dataclass
class ProgrammePlan:
    """The programmes of staging.programmes, the partitions to add and delete, the programmes to run,
    each programme's input fingerprint and the state of the warehouse files they were hashed from."""
    programmes: list[str]
    added: list[str]
    removed: list[str]
    changed: list[str]
    fingerprints: dict[str, str] = field(default_factory=dict)
    warehouse: str = ""

    def run_tags(self, programme_id: str, tags: dict) -> dict:
        """A programme run's tags: the batch's, and the fingerprint its partitions record (the warehouse
        is not written between the plan and the programme runs, so it is the fingerprint of what they read)."""
        return {**tags, FINGERPRINT_TAG: self.fingerprints[programme_id]}

    def publish_tags(self, tags: dict) -> dict:
        """The publish run's tags: the batch's, and the fingerprints, so that the assembly need not hash every
        programme's rows again when the warehouse files are as the plan found them."""
        return {**tags, PLANNED_FINGERPRINTS_TAG: json.dumps({"fingerprints": self.fingerprints,
                                                              "warehouse": self.warehouse})}

    def partition_requests(self) -> list:
        return [*([PROGRAMMES.build_add_request(self.added)] if self.added else []),
                *([PROGRAMMES.build_delete_request(self.removed)] if self.removed else [])]


def plan_programmes(instance: dg.DagsterInstance, settings: Settings) -> ProgrammePlan:
    """Read staging.programmes and the fingerprints (read-only: stage 1 has finished writing)."""
    with wh.connect(settings, read_only=True) as con:
        fingerprints = programme_fingerprints(con, settings)
    known = set(instance.get_dynamic_partitions(PROGRAMMES.name))
    return ProgrammePlan(programmes=sorted(fingerprints), added=sorted(set(fingerprints) - known),
                         removed=sorted(known - set(fingerprints)),
                         changed=sorted(stale_programmes(instance, fingerprints)), fingerprints=fingerprints,
                         warehouse=warehouse_state(settings))


def apply_plan(instance: dg.DagsterInstance, settings: Settings, plan: ProgrammePlan) -> None:
    """Add the new programmes' partitions; delete the removed ones' partitions and files."""
    if plan.added:
        instance.add_dynamic_partitions(PROGRAMMES.name, plan.added)
    for programme_id in plan.removed:
        instance.delete_dynamic_partition(PROGRAMMES.name, programme_id)
    remove_partition_files(settings, plan.removed)


# ---- `desist run`: the three stages in this process, stage 2 in worker processes -------------------

@dataclass
class EvaluationOutcome:
    """Every run of one evaluation, in order, and why it stopped (empty when it succeeded)."""
    run_ids: list[str] = field(default_factory=list)
    reason: str = ""
    plan: ProgrammePlan | None = None
    programme_runs: dict[str, str] = field(default_factory=dict)  # programme -> its stage 2 run
    all_events: list = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.reason

    def get_asset_check_evaluations(self) -> list:
        return [event.asset_check_evaluation_data for event in self.all_events
                if event.event_type_value == "ASSET_CHECK_EVALUATION"]


# The programme runs' worker processes still running (so `desist run` can stop them on a signal).
WORKERS: set[multiprocessing.Process] = set()


def start_worker_server(instance: dg.DagsterInstance) -> None:
    """Start the server the programme workers are forked from (unless `desist run` already did), importing in
    the background the pipeline and the instance's storage (SQLAlchemy, Alembic and Dagster's storage modules:
    about 1.5 s a worker otherwise)."""
    ref = instance.get_ref()
    worker_server.start([data.module_name for data in (ref.local_artifact_storage_data, ref.storage_data,
                                                       ref.run_storage_data, ref.event_storage_data,
                                                       ref.schedule_storage_data, ref.compute_logs_data,
                                                       ref.run_coordinator_data, ref.run_launcher_data) if data])


class ProgrammeWorkers:
    """The worker processes of stage 2, started before the programmes to run are known.

    One worker per core; each loads the programme job and opens the instance once, while this process plans,
    then runs programme after programme as they are handed out, so a second wave of programmes does not pay a
    process start again."""

    def __init__(self, config_file: str, instance: dg.DagsterInstance, verbose: bool = False):
        start_worker_server(instance)
        self.queue = worker_server.WORKER_CONTEXT.SimpleQueue()
        self.stopped = False
        self.processes = [
            worker_server.WORKER_CONTEXT.Process(target=serve_programmes, name=f"desist-programmes-{number}",
                                                 args=(config_file, serialize_value(instance.get_ref()), self.queue,
                                                       "DEBUG" if verbose else "CRITICAL"))
            for number in range(1, (os.cpu_count() or 1) + 1)]
        for worker in self.processes:
            worker.start()
            WORKERS.add(worker)

    def run(self, programme_tags: dict[str, dict], meanwhile: Callable[[], None] = lambda: None) -> dict[str, str]:
        """Each programme's stage 2 run (programme -> its run's tags), then the workers stop: {programme: run id}.
        ``meanwhile`` runs in this process once the programmes are handed out."""
        run_ids = {programme_id: str(uuid.uuid4()) for programme_id in programme_tags}
        blas_threads = max(1, len(self.processes) // max(1, min(len(programme_tags), len(self.processes))))
        try:
            for programme_id, tags in programme_tags.items():
                self.queue.put((programme_id, run_ids[programme_id], tags, blas_threads))
            self.hand_out_stops()
            meanwhile()
        finally:
            self.stop()
        return run_ids

    def hand_out_stops(self) -> None:
        """One stop per worker, after the programmes handed out: each worker exits when it takes one."""
        if not self.stopped:
            self.stopped = True
            for _ in self.processes:
                self.queue.put(None)

    def stop(self) -> None:
        """The workers finish the programmes handed out and exit."""
        self.hand_out_stops()
        for worker in self.processes:
            try:
                worker.join()
            finally:
                WORKERS.discard(worker)


def _events(instance: dg.DagsterInstance, run_id: str) -> list:
    return [entry.dagster_event for entry in instance.all_logs(run_id) if entry.dagster_event is not None]


def run_evaluation(config_file: str, instance: dg.DagsterInstance, run_id: str | None = None,
                   tags: dict | None = None, verbose: bool = False) -> EvaluationOutcome:
    """The whole evaluation, stage after stage; stops at the first stage that fails, before publishing."""
    from pipelines.definitions import build_definitions

    defs = build_definitions(config_file)
    settings = load_settings(config_file)
    tags = dict(tags or {})
    run_config = {"loggers": {"console": {"config": {"log_level": "DEBUG" if verbose else "CRITICAL"}}}}
    outcome = EvaluationOutcome()
    start_worker_server(instance)  # imports in the background while stage 1 runs

    def stage(job: dg.UnresolvedAssetJobDefinition, **options) -> bool:
        result = defs.resolve_job_def(job.name).execute_in_process(
            instance=instance, raise_on_error=False, run_config=run_config, **options)
        outcome.run_ids.append(result.run_id)
        outcome.all_events += result.all_events  # as the instance recorded them, without reading them back
        if not result.success:
            outcome.reason = failure_reason(result.all_events)
        return result.success

    if not stage(EVALUATION_JOB, run_id=run_id, tags=tags):
        return outcome
    # The workers load the programme job while this process plans which programmes to run; this process
    # gives back the memory stage 1 freed once they run (it idles meanwhile).
    workers = ProgrammeWorkers(str(settings.source), instance, verbose)
    try:
        batch = {**tags, BATCH_TAG: outcome.run_ids[0]}
        outcome.plan = plan = plan_programmes(instance, settings)
        apply_plan(instance, settings, plan)
    except BaseException:
        workers.stop()
        raise
    failed = []
    changed = {programme_id: plan.run_tags(programme_id, batch) for programme_id in plan.changed}
    for programme_id, programme_run in workers.run(changed, meanwhile=release_free_memory).items():
        outcome.programme_runs[programme_id] = programme_run
        outcome.run_ids.append(programme_run)
        events = _events(instance, programme_run)
        outcome.all_events += events
        run = instance.get_run_by_id(programme_run)
        if run is None or run.status != dg.DagsterRunStatus.SUCCESS:
            failed.append(f"programme {programme_id}: " + (failure_reason(events) if run else
                                                            "its worker process stopped before the run started"))
    if failed:
        outcome.reason = "\n".join([*failed, "nothing was published: the previous outputs were kept"])
        return outcome
    # The researcher database starts with the publish run, not after its first step (the run's hooks then
    # take it over: research_build_hooks); a run that fails before any step leaves it to discard here.
    publish_run = str(uuid.uuid4())
    BUILDS[publish_run] = ResearchBuild(Warehouse(config_file=str(settings.source)),
                                        being_written=[name for names in PUBLISH_WRITERS.values() for name in names])
    try:
        stage(PUBLISH_JOB, run_id=publish_run, tags=plan.publish_tags(batch))
    finally:
        unfinished = BUILDS.pop(publish_run, None)
        if unfinished is not None:
            unfinished.cancel()
    return outcome


# ---- the daemon: stages 2 and 3 started by a sensor after stage 1 ----------------------------------

def unfinished_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Runs of the evaluation's jobs queued or in progress, and the last successful evaluation run
    while the sensor has not yet started the stages after it."""
    unfinished = [run for job in JOBS
                  for run in instance.get_runs(filters=dg.RunsFilter(job_name=job.name, statuses=UNFINISHED))]
    latest = instance.get_runs(filters=dg.RunsFilter(job_name=EVALUATION_JOB.name,
                                                     statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1)
    if latest and not instance.get_runs(filters=dg.RunsFilter(tags={BATCH_TAG: latest[0].run_id}), limit=1):
        unfinished.append(latest[0])
    return unfinished


def build_stages_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name="programme_stages_sensor", jobs=[PROGRAMME_JOB, PUBLISH_JOB],
        minimum_interval_seconds=settings.schedule.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After each successful evaluation run: brings the programme partitions in step with "
                    "staging.programmes, starts one programme_evaluation run per changed programme, and once "
                    "they all succeed starts evaluation_publish. Publishes nothing when a programme fails.")
    def programme_stages_sensor(context: dg.SensorEvaluationContext):
        instance = context.instance
        state = json.loads(context.cursor) if context.cursor else {}
        latest = instance.get_runs(filters=dg.RunsFilter(job_name=EVALUATION_JOB.name,
                                                         statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1)
        if latest and latest[0].run_id != state.get("batch"):
            batch = latest[0].run_id
            if instance.get_runs(filters=dg.RunsFilter(tags={BATCH_TAG: batch}), limit=1):
                return dg.SensorResult(cursor=json.dumps({"batch": batch, "waiting": []}),
                                       skip_reason=f"the stages after run {batch[:8]} were already started")
            plan = plan_programmes(instance, settings)
            remove_partition_files(settings, plan.removed)
            tags = {BATCH_TAG: batch}
            requests = [dg.RunRequest(job_name=PROGRAMME_JOB.name, partition_key=programme_id,
                                      run_key=f"{batch}:{programme_id}", tags=plan.run_tags(programme_id, tags))
                        for programme_id in plan.changed]
            if not requests:
                requests = [dg.RunRequest(job_name=PUBLISH_JOB.name, run_key=f"{batch}:publish", tags=tags)]
            return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=plan.partition_requests(),
                                   cursor=json.dumps({"batch": batch, "waiting": plan.changed}))
        waiting = state.get("waiting") or []
        if not waiting:
            return dg.SkipReason("no evaluation run waiting for its programmes")
        batch = state["batch"]
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=PROGRAMME_JOB.name, tags={BATCH_TAG: batch}))
        status = {run.tags.get("dagster/partition"): run.status for run in runs}
        failed = [p for p in waiting if status.get(p) in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)]
        if failed:
            return dg.SensorResult(cursor=json.dumps({"batch": batch, "waiting": []}),
                                   skip_reason=f"programme {', '.join(failed)} failed, so nothing was published")
        if all(status.get(p) == dg.DagsterRunStatus.SUCCESS for p in waiting):
            return dg.SensorResult(
                run_requests=[dg.RunRequest(job_name=PUBLISH_JOB.name, run_key=f"{batch}:publish",
                                            tags={BATCH_TAG: batch})],
                cursor=json.dumps({"batch": batch, "waiting": []}))
        return dg.SkipReason(f"waiting for {sum(status.get(p) != dg.DagsterRunStatus.SUCCESS for p in waiting)} "
                             "programme run(s)")

    return programme_stages_sensor


def serve_programmes(config_file: str, instance_ref: str, queue, log_level: str) -> None:
    """In a worker process: the stage 2 run of each programme handed out on ``queue`` (programme, run id, tags,
    BLAS threads) until it hands out None (each run's success or failure is in the instance).

    The models' matrix products, and the work they share among threads, use the BLAS threads given:
    the workers already fill the cores, and threads of two workers competing for them wait on each
    other (at 1,000,000 people the effects models took 6.7 s of CPU with two threads each, 3.9 s
    with one)."""
    from pipelines.definitions import build_definitions

    job = build_definitions(config_file).resolve_job_def(PROGRAMME_JOB.name)
    with dg.DagsterInstance.from_ref(deserialize_value(instance_ref)) as instance:
        # What was loaded stays for the worker's life: the collections before each programme skip it
        # (a full collection of the imported modules' objects takes about 0.4 s).
        gc.freeze()
        while (programme := queue.get()) is not None:
            release_free_memory()  # the programme starts on the heap the one before it gave back
            programme_id, run_id, tags, blas_threads = programme
            with threadpool_limits(limits=blas_threads, user_api="blas"), threads_limited(blas_threads):
                job.execute_in_process(
                    instance=instance, partition_key=programme_id, run_id=run_id, tags=tags,
                    run_config={"loggers": {"console": {"config": {"log_level": log_level}}}}, raise_on_error=False)
