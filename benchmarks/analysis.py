"""Time and peak memory of building every analysis table for a large synthetic extract.

    .venv/bin/python benchmarks/analysis.py [--people 1000000] [--seed 1]

The extract is generated in memory and loaded straight into staging tables of a warehouse
file in a temporary folder. The analysis build then runs in a fresh child process, so its
peak resident memory is not mixed up with the generator's.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from desist import analysis, warehouse
from desist.config import load_settings, write_settings
from desist.contract import TABLES


def load_staging(settings_file: Path, people: int, seed: int) -> dict[str, int]:
    from desist.generate import generate

    started = time.perf_counter()
    extract = generate(people=people, seed=seed)
    print(f"generated {people:,} people in {time.perf_counter() - started:.1f} s")
    con = warehouse.connect(load_settings(settings_file))
    rows = {}
    for table in TABLES.values():
        typed = ", ".join(f"CAST({c.name} AS {c.duckdb_type}) AS {c.name}" for c in table.columns)
        con.register("frame", extract.tables[table.name])
        con.execute(
            f"CREATE OR REPLACE TABLE staging.{table.name} AS "
            f"SELECT {typed}, 'generated' AS source_file, "
            f"row_number() OVER () AS source_row FROM frame"
        )
        con.unregister("frame")
        rows[table.name] = len(extract.tables[table.name])
    con.close()
    return rows


def build(settings_file: Path) -> None:
    con = warehouse.connect(load_settings(settings_file))
    timings = {}
    started = time.perf_counter()
    for table in analysis.ANALYSIS_TABLES:
        table_started, cpu_started = time.perf_counter(), cpu_seconds()
        rows = analysis.build_table(con, table.name)
        timings[table.name] = (rows, time.perf_counter() - table_started, cpu_seconds() - cpu_started)
    total = time.perf_counter() - started
    con.close()
    for name, (rows, seconds, cpu) in timings.items():
        print(f"  analysis.{name:<24} {rows:>12,} rows  {seconds:6.2f} s  ({cpu:5.1f} s CPU)")
    print(
        f"all analysis tables: {total:.2f} s wall clock, {cpu_seconds():.1f} s CPU, "
        f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB"
    )


def cpu_seconds() -> float:
    """CPU time of this process on all threads: unlike wall-clock time, not inflated when
    other work shares the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.build:
        build(args.build)
        return
    with tempfile.TemporaryDirectory() as folder:
        settings_file = write_settings(Path(folder), Path(folder) / "landing")
        rows = load_staging(settings_file, args.people, args.seed)
        print("staging rows: " + ", ".join(f"{name} {n:,}" for name, n in rows.items()))
        subprocess.run([sys.executable, __file__, "--build", str(settings_file)], check=True)


if __name__ == "__main__":
    main()
