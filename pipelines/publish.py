"""Provenance of the run and the published researcher database.

The researcher database only reads the warehouse, as the reports do: once only such readers are left to run,
it is built in a thread of the run's process (``research_build_hooks``) while the reports are written, and
the research_db step waits for it and swaps it in. A failed step discards the build; the published files
change only when every step before has succeeded.
"""

import datetime as dt
import threading
from collections.abc import Collection, Sequence
from concurrent.futures import Future
from pathlib import Path

import dagster as dg

from desist import provenance
from desist import warehouse as wh
from desist.config import Settings
from desist.publish import build, discard_build, extra_covariate_columns, swap_in
from pipelines.resources import WAREHOUSE_POOL, Warehouse

RUN_INFO = dg.AssetKey(["results", "run_info"])
RESEARCH_DB = dg.AssetKey(["published", "research_db"])
RESEARCH_STEP = RESEARCH_DB.to_python_identifier()


def parquet_folder(settings: Settings) -> Path:
    research = settings.paths.research
    return research.with_name(research.stem + "_parquet")


class ResearchBuild:
    """The researcher database and its Parquet copies built beside the published ones (desist.publish.build)
    in a thread, on its own read-only connection to the warehouse (several readers may share it)."""

    def __init__(self, warehouse: Warehouse):
        self.settings = warehouse.settings
        self.connection = wh.connect(self.settings, read_only=True)
        self.outcome: Future = Future()
        self.thread = threading.Thread(target=self._build, name="desist-research-db", daemon=True)
        self.thread.start()

    def _build(self) -> None:
        settings = self.settings
        try:
            with self.connection as con:
                counts = build(con, settings.paths.research, parquet_dir=parquet_folder(settings),
                               extra_covariates=extra_covariate_columns(settings.tables),
                               person_level=settings.publish.person_level, min_count=settings.disclosure.min_count)
        except BaseException as error:  # raised where the build is waited for (result)
            self.outcome.set_exception(error)
        else:
            self.outcome.set_result(counts)

    def result(self) -> dict[str, int]:
        """Wait for the build: the row count of every table built; raises what stopped it."""
        try:
            return self.outcome.result()
        except BaseException:
            self.cancel()
            raise

    def cancel(self) -> None:
        """Stop the build and remove what it left; the published files stay as they are."""
        if self.thread.is_alive():
            self.connection.interrupt()
            self.thread.join()
        discard_build(self.settings.paths.research, parquet_folder(self.settings))


# Run id -> the researcher database being built for it (started by research_build_hooks).
BUILDS: dict[str, ResearchBuild] = {}


def _steps_to_execute(context: dg.HookContext) -> set[str]:
    """The steps of the hook's run, as its execution plan stored in the instance lists them (a run may be
    a subset of the job)."""
    run = context.instance.get_run_by_id(context.run_id)
    return set(context.instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id).step_keys_to_execute)


def research_build_hooks(readers: Collection[dg.AssetKey]) -> set[dg.HookDefinition]:
    """Hooks for a job that publishes the researcher database: once the steps of a run left to run are all
    `readers` (assets that only read the warehouse, the research database among them), the build starts while
    they run; a failed step stops and discards it."""
    reader_steps = {key.to_python_identifier() for key in readers} | {RESEARCH_STEP}
    succeeded: dict[str, set[str]] = {}

    @dg.success_hook(name="start_research_build", required_resource_keys={"warehouse"})
    def start_research_build(context: dg.HookContext) -> None:
        if context.step_key == RESEARCH_STEP:  # published: nothing left to start
            succeeded.pop(context.run_id, None)
            return
        done = succeeded.setdefault(context.run_id, set())
        done.add(context.step_key)
        left = _steps_to_execute(context) - done
        if RESEARCH_STEP in left and left <= reader_steps and context.run_id not in BUILDS:
            BUILDS[context.run_id] = ResearchBuild(context.resources.warehouse)
            context.log.info("the researcher database is being built while "
                             f"{', '.join(sorted(left - {RESEARCH_STEP})) or 'nothing else'} runs")

    @dg.failure_hook(name="discard_research_build")
    def discard_research_build(context: dg.HookContext) -> None:
        succeeded.pop(context.run_id, None)
        started = BUILDS.pop(context.run_id, None)
        if started is not None:
            started.cancel()

    return {start_research_build, discard_research_build}


def build_publish_assets(upstream: Sequence[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    """The provenance asset (after ingest) and the publish asset (after everything else)."""
    raw_keys = [key for key in upstream if key.path[0] == "raw"]

    @dg.asset(key=RUN_INFO, deps=raw_keys, pool=WAREHOUSE_POOL, group_name="publish",
              description="Run id, time, code version, input fingerprint and the analysis settings with their hash, "
                          "carried by every output.")
    def run_info(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            hashes = con.execute(
                "SELECT file_name, sha256 FROM raw.ingest_summary WHERE sha256 IS NOT NULL"
            ).fetchall()
            settings_json, settings_hash = provenance.settings_record(warehouse.settings)
            row = (
                context.run.run_id,
                dt.datetime.now(dt.timezone.utc).replace(microsecond=0),
                provenance.code_version(),
                provenance.input_fingerprint(hashes),
                warehouse.settings.data_cutoff,
                warehouse.settings.follow_up.headline_months,
                settings_json,
                settings_hash,
            )
            con.execute(
                "CREATE OR REPLACE TABLE results.run_info AS SELECT ?::VARCHAR AS run_id, "
                "?::TIMESTAMPTZ AS started_at, ?::VARCHAR AS code_version, "
                "?::VARCHAR AS input_fingerprint, ?::DATE AS data_cutoff, ?::INTEGER AS headline_months, "
                "?::JSON AS settings, ?::VARCHAR AS settings_hash",
                list(row),
            )
        return dg.MaterializeResult(metadata={"code_version": row[2], "input_fingerprint": row[3],
                                              "settings_hash": settings_hash})

    @dg.asset(key=RESEARCH_DB, deps=[*upstream, RUN_INFO], pool=WAREHOUSE_POOL, group_name="publish",
              description="The documented researcher database, swapped in atomically, and its Parquet export.")
    def research_db(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        settings = warehouse.settings
        research = settings.paths.research
        started = BUILDS.pop(context.run.run_id, None) or ResearchBuild(warehouse)  # built meanwhile, or now
        counts = started.result()
        swap_in(research, parquet_folder(settings))
        with warehouse.connect(read_only=True) as con:
            fingerprint, settings_hash = con.execute(
                "SELECT input_fingerprint, settings_hash FROM results.run_info").fetchone()
        context.log.info(f"published {len(counts)} tables and views to {research}")
        # The landing sensor reads input_fingerprint to tell files already published from new ones.
        return dg.MaterializeResult(metadata={
            "path": str(research), "input_fingerprint": fingerprint, "settings_hash": settings_hash,
            **{f"rows/{k}": v for k, v in counts.items()}})

    return [run_info, research_db]
