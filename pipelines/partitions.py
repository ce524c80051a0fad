"""Programmes as partitions: the dynamic partitions, where each partition keeps its result frames,
and the fingerprint that tells a changed programme from an unchanged one.

A programme's partition runs only read the warehouse (DuckDB allows one writer process, but any
number of readers while nobody writes), so several programmes run at once in separate processes.
Each writes its frames as Parquet files, one per results table, beside the warehouse; the
assembly asset loads every programme's files into the results tables in one transaction.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import duckdb
import pandas as pd
import pyarrow.parquet as pq

from desist import provenance
from desist import warehouse as wh
from desist.config import Settings

PROGRAMMES = dg.DynamicPartitionsDefinition(name="programme")
PROGRAMME_GROUP = "programmes"
PROGRAMME_EFFECTS = dg.AssetKey(["programmes", "effects"])
PROGRAMME_SURVIVAL = dg.AssetKey(["programmes", "survival"])
PROGRAMME_DIAGNOSTICS = dg.AssetKey(["programmes", "diagnostics"])
PROGRAMME_SUBGROUP_EFFECTS = dg.AssetKey(["programmes", "subgroup_effects"])
PROGRAMME_ASSETS = (PROGRAMME_EFFECTS, PROGRAMME_SURVIVAL, PROGRAMME_DIAGNOSTICS, PROGRAMME_SUBGROUP_EFFECTS)
# The tag of a programme run started after a plan: the programme's input fingerprint, hashed once by the plan.
FINGERPRINT_TAG = "desist/input_fingerprint"
# The tag of the publish run `desist run` starts after its plan: every programme's fingerprint and the state of
# the warehouse files they were hashed from (planned_fingerprints).
PLANNED_FINGERPRINTS_TAG = "desist/planned_fingerprints"
# The effects step's private file of everyone it analysed (in its matched_sets file's order), which the
# programme's later steps read instead of the analysis tables it was read from; not a results table.
ANALYSED_PEOPLE_FILE = "analysed_people"
# The Parquet key holding the input fingerprint the file was written from.
FINGERPRINT_KEY = b"desist_input_fingerprint"


def partitions_folder(settings: Settings) -> Path:
    """data/warehouse_partitions beside data/warehouse.duckdb: one folder per results table (and
    ANALYSED_PEOPLE_FILE)."""
    warehouse = Path(settings.paths.warehouse)
    return warehouse.with_name(f"{warehouse.stem}_partitions")


def partition_file(settings: Settings, table: str, programme_id: str) -> Path:
    return partitions_folder(settings) / table / f"{quote(programme_id, safe='')}.parquet"


def write_partition(con: duckdb.DuckDBPyConnection, settings: Settings, programme_id: str,
                    tables: tuple[str, ...], frames: dict[str, pd.DataFrame], inputs: str | None = None) -> None:
    """The programme's Parquet file of each of a step's tables: written under a temporary name and
    renamed, so a reader never sees half a file; a table with no rows this time loses its old file.
    ``inputs``, an input fingerprint, is kept in each file's metadata (FINGERPRINT_KEY)."""
    metadata = "" if inputs is None else f", KV_METADATA {{{FINGERPRINT_KEY.decode()}: '{inputs}'}}"
    for table in tables:
        path = partition_file(settings, table, programme_id)
        frame = frames.get(table)
        if frame is None or frame.empty:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        with con.cursor() as writer:  # its own statement state: the caller may hold an unfinished result
            writer.register("partition_frame", frame)
            writer.execute(f"COPY (SELECT * FROM partition_frame) TO '{partial}' (FORMAT parquet{metadata})")
        try:
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)


def existing_partition_file(settings: Settings, table: str, programme_id: str) -> Path:
    """The file of a table one of this programme's earlier partitioned steps wrote; stops if it is missing."""
    path = partition_file(settings, table, programme_id)
    if not path.exists():
        raise dg.Failure(description=f"programme {programme_id}: {path} is missing (the step that writes "
                                     f"{table} has not run for it)")
    return path


def analysed_people_file(settings: Settings, programme_id: str, inputs: str) -> Path:
    """The effects step's file of the people it analysed (ANALYSED_PEOPLE_FILE); stops, naming the
    programme, if it is missing or was written from inputs other than ``inputs`` (this run's fingerprint)."""
    path = existing_partition_file(settings, ANALYSED_PEOPLE_FILE, programme_id)
    written_from = (pq.read_metadata(path).metadata or {}).get(FINGERPRINT_KEY, b"").decode()
    if written_from != inputs:
        raise dg.Failure(description=f"programme {programme_id}: {path} was written from other inputs "
                                     f"(fingerprint {written_from or 'none'}, this run's {inputs}): "
                                     "run the programme's effects step again")
    return path


def read_partition(con: duckdb.DuckDBPyConnection, settings: Settings, table: str,
                   programme_id: str) -> pd.DataFrame:
    """A table one of this programme's earlier partitioned steps wrote."""
    path = existing_partition_file(settings, table, programme_id)
    return con.execute("SELECT * FROM read_parquet($path)", {"path": str(path)}).df()


def partition_files(settings: Settings, table: str, programme_ids: list[str]) -> list[Path]:
    """The files of one table that exist for these programmes (a table a programme has no rows in has none)."""
    return [path for path in (partition_file(settings, table, p) for p in programme_ids) if path.exists()]


def remove_partition_files(settings: Settings, programme_ids: list[str]) -> None:
    for folder in partitions_folder(settings).glob("*"):
        for programme_id in programme_ids:
            partition_file(settings, folder.name, programme_id).unlink(missing_ok=True)


def programme_fingerprints(con: duckdb.DuckDBPyConnection, settings: Settings,
                           programme_ids: list[str] | None = None) -> dict[str, str]:
    """Per programme in staging.programmes (or those of them named): a hash of every warehouse row its
    partitions read, the settings and the code version. Equal fingerprints mean equal results."""
    if programme_ids is None:
        programme_ids = [row[0] for row in con.execute("SELECT programme_id FROM staging.programmes").fetchall()]
    _, settings_hash = provenance.settings_record(settings)
    salt = f"{settings_hash}:{provenance.code_version()}"
    rows = dict(con.execute(wh.sql_text("results/programme_fingerprints.sql"),
                            {"programme_ids": programme_ids}).fetchall())
    return {programme_id: hashlib.sha256(f"{salt}:{rows.get(programme_id, 'no rows')}".encode()).hexdigest()[:16]
            for programme_id in programme_ids}


def warehouse_state(settings: Settings) -> str:
    """The warehouse files' inode, size and modification time: the same before and after means nothing
    wrote the warehouse in between (read-only connections leave its files as they are)."""
    warehouse = Path(settings.paths.warehouse)
    return ";".join(f"{path.name}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
                    for path in (warehouse, warehouse.with_name(f"{warehouse.name}.wal")) if path.exists()
                    for stat in [path.stat()])


def planned_fingerprints(settings: Settings, tags: dict) -> dict[str, str] | None:
    """The programme fingerprints the plan before this run hashed, when the run carries them and nothing
    has written the warehouse since; otherwise None (hash them again: programme_fingerprints)."""
    planned = tags.get(PLANNED_FINGERPRINTS_TAG)
    if not planned:
        return None
    plan = json.loads(planned)
    return plan["fingerprints"] if plan["warehouse"] == warehouse_state(settings) else None


def recorded_fingerprint(instance: dg.DagsterInstance, key: dg.AssetKey, programme_id: str) -> str | None:
    """The input fingerprint the last materialisation of one programme's partition of an asset recorded."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[programme_id]), limit=1).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get("input_fingerprint")
    return getattr(value, "value", value)


def stale_programmes(instance: dg.DagsterInstance, fingerprints: dict[str, str]) -> list[str]:
    """The programmes whose partitions were never materialised, or not from the current inputs
    (the programme's rows, the settings or the code changed since)."""
    return [programme_id for programme_id, current in fingerprints.items()
            if any(recorded_fingerprint(instance, key, programme_id) != current for key in PROGRAMME_ASSETS)]
