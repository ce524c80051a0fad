"""Ingest benchmark: a synthetic extract (default 1,000,000 people) into a fresh warehouse.

Prints the time of a first ingest and of a second one over the same files, rows read per
second, what the reconciliation of records with physical lines (desist.lines: one vectorised
pass over each CSV file's bytes, part of every first ingest) costs on its own (during ingest it
runs on another core while DuckDB reads the file before, so little of it adds to the wall time),
and peak memory (DuckDB's memory is native, so the process's maxrss is what counts).
The extract is written by `desist generate` in a child process so its memory is not counted.

    .venv/bin/python benchmarks/ingest.py                       # 1,000,000 people, CSV
    .venv/bin/python benchmarks/ingest.py --format parquet --extract /tmp/extract-1m
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from desist import ingest, lines, warehouse
from desist.config import load_settings, write_settings


def peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def ensure_extract(folder: Path, people: int, seed: int, fmt: str) -> None:
    if (folder / f"people.{fmt}").exists():
        print(f"using the extract in {folder}")
        return
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "desist.cli", "generate", "--people", str(people), "--seed", str(seed),
                    "--out", str(folder), "--format", fmt], check=True, stdout=subprocess.DEVNULL)
    print(f"generated {people:,} people ({fmt}) in {time.perf_counter() - started:.1f} s")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_ingest(settings) -> tuple[float, float, ingest.IngestReport]:
    """(wall seconds, CPU seconds of all DuckDB threads, report). On a shared machine wall > CPU / cores."""
    started, cpu = time.perf_counter(), cpu_seconds()
    with warehouse.connect(settings) as con:
        report = ingest.ingest(con, settings.paths.landing)
    return time.perf_counter() - started, cpu_seconds() - cpu, report


def line_reconciliation(landing: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, physical lines) to scan and plan the lines of every CSV file, as a first ingest does."""
    started, cpu, total = time.perf_counter(), cpu_seconds(), 0
    for path in sorted(landing.glob("*.csv")):
        header = ingest._csv_header(path) or []
        total += lines.plan(path, lines.scan(path), len(header)).lines
    return time.perf_counter() - started, cpu_seconds() - cpu, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--extract", type=Path, help="folder holding (or to receive) the extract; default: temporary")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="desist-ingest-") as tmp:
        folder = Path(tmp)
        landing = args.extract or folder / "landing"
        landing.mkdir(parents=True, exist_ok=True)
        ensure_extract(landing, args.people, args.seed, args.format)
        size_mb = sum(p.stat().st_size for p in landing.glob(f"*.{args.format}")) / 1e6
        settings = load_settings(write_settings(folder, landing))

        first, first_cpu, report = timed_ingest(settings)
        read = sum(c.rows_read for c in report.tables.values())
        loaded = sum(c.rows_loaded for c in report.tables.values())
        quarantined = sum(c.rows_quarantined for c in report.tables.values())
        print(f"extract: {size_mb:,.0f} MB of {args.format} in {landing}")
        for table, counts in report.tables.items():
            print(f"  {table:<14} read {counts.rows_read:>10,}  loaded {counts.rows_loaded:>10,}  "
                  f"quarantined {counts.rows_quarantined:>7,}")
        print(f"first ingest:  {first:6.1f} s wall, {first_cpu:6.1f} s CPU  {read:,} rows read, {loaded:,} loaded, "
              f"{quarantined:,} quarantined -> {read / first:,.0f} rows/s")
        if args.format == "csv":
            seconds, cpu, physical = line_reconciliation(landing)
            print(f"line reconciliation: {seconds:6.2f} s wall, {cpu:6.2f} s CPU for {physical:,} physical lines "
                  f"= {seconds / first:.1%} of the first ingest's wall time, {cpu / first_cpu:.1%} of its CPU")
        second, second_cpu, report = timed_ingest(settings)
        unchanged = report.raw.count("action").get("unchanged", 0)
        print(f"second ingest: {second:6.1f} s wall, {second_cpu:6.1f} s CPU  (files unchanged: {unchanged})")
        print(f"load average (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
              f"on {os.cpu_count()} cores")
        print(f"peak memory: {peak_mb(resource.RUSAGE_SELF):,.0f} MB (this process, incl. DuckDB); "
              f"{peak_mb(resource.RUSAGE_CHILDREN):,.0f} MB (largest child: the generator)")


if __name__ == "__main__":
    main()
