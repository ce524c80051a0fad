"""Provenance of the run and the published researcher database.

The researcher database only reads the warehouse, as the reports do. Once the steps left to run only read it
or write its results schema, it is built in a thread of the run's process (``research_build_hooks``): the
person-level tables, read from the other schemas, while those steps run, the rest once only readers are
left. The research_db step waits for it and swaps it in. A failed step discards the build; the published
files change only when every step before has succeeded.
"""

import datetime as dt
import threading
from collections.abc import Collection, Mapping, Sequence
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
    in a thread, on its own connection to the warehouse.

    ``being_written``: the warehouse schemas or tables steps of the run still write meanwhile, in the order
    those steps finish. A table reading one of them is copied once ``writers_done`` names it; the connection
    is then a read-write one, which those steps' connections share (DuckDB opens a file once per process, in
    one mode). With none, it is read-only (several readers may share it) and nothing is waited for."""

    def __init__(self, warehouse: Warehouse, being_written: Sequence[str] = ()):
        self.warehouse = warehouse
        self.settings = warehouse.settings
        self.being_written = tuple(being_written)
        self.connection = (warehouse.open_shared() if self.being_written
                           else wh.connect(self.settings, read_only=True))
        self.written = {name: threading.Event() for name in self.being_written}
        self.cancelled = False
        self.outcome: Future = Future()
        self.thread = threading.Thread(target=self._build, name="desist-research-db", daemon=True)
        self.thread.start()

    def _build(self) -> None:
        settings = self.settings
        try:
            try:
                counts = build(self.connection, settings.paths.research, parquet_dir=parquet_folder(settings),
                               extra_covariates=extra_covariate_columns(settings.tables),
                               person_level=settings.publish.person_level, min_count=settings.disclosure.min_count,
                               being_written=self.being_written, written=self._wait_for_writer)
            finally:  # before the outcome is known: the research_db step then opens the warehouse itself
                if self.being_written:
                    self.warehouse.close_shared(self.connection)
                else:
                    self.connection.close()
        except BaseException as error:  # raised where the build is waited for (result)
            self.outcome.set_exception(error)
        else:
            self.outcome.set_result(counts)

    def writers_done(self, names: Collection[str] | None = None) -> None:
        """The steps that wrote ``names`` (all of ``being_written`` when None) have finished: the build may copy
        what they wrote."""
        for name in self.being_written if names is None else names:
            if name in self.written:
                self.written[name].set()

    def _wait_for_writer(self, name: str) -> None:
        self.written[name].wait()
        if self.cancelled:
            raise RuntimeError("the researcher database build was cancelled")

    def result(self) -> dict[str, int]:
        """Wait for the build: the row count of every table built; raises what stopped it."""
        try:
            return self.outcome.result()
        except BaseException:
            self.cancel()
            raise

    def cancel(self) -> None:
        """Stop the build and remove what it left; the published files stay as they are."""
        self.cancelled = True
        self.writers_done()
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


def research_build_hooks(readers: Collection[dg.AssetKey],
                         writers: Mapping[dg.AssetsDefinition, Sequence[str]] = {}) -> set[dg.HookDefinition]:
    """Hooks for a job that publishes the researcher database. Once the steps of a run left to run are all
    `readers` (assets that only read the warehouse, the research database among them) or `writers` (assets
    writing warehouse schemas or tables that no person-level table reads, in the order they run, with what
    each writes), the build starts while they run: the person-level tables first, the rest as the writers
    finish. A failed step stops and discards it."""
    reader_steps = {key.to_python_identifier() for key in readers} | {RESEARCH_STEP}
    writer_names = {asset.op.name: tuple(names) for asset, names in writers.items()}
    succeeded: dict[str, set[str]] = {}

    @dg.success_hook(name="start_research_build", required_resource_keys={"warehouse"})
    def start_research_build(context: dg.HookContext) -> None:
        if context.step_key == RESEARCH_STEP:  # published: nothing left to start
            succeeded.pop(context.run_id, None)
            return
        done = succeeded.setdefault(context.run_id, set())
        done.add(context.step_key)
        left = _steps_to_execute(context) - done
        if RESEARCH_STEP not in left or not left <= reader_steps | set(writer_names):
            return
        started = BUILDS.get(context.run_id)
        if started is None:
            BUILDS[context.run_id] = started = ResearchBuild(
                context.resources.warehouse,
                being_written=[name for step, names in writer_names.items() if step in left for name in names])
            context.log.info("the researcher database is being built while "
                             f"{', '.join(sorted(left - {RESEARCH_STEP})) or 'nothing else'} runs")
        started.writers_done([name for step, names in writer_names.items() if step not in left for name in names])

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
