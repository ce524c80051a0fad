"""Time the validation of a synthetic extract: Great Expectations suites on every staging table.

    .venv/bin/python benchmarks/validation.py [--people 1000000] [--seed 7]

Generates an extract with desist.generate, makes a share of its offences fail an order rule
(--bad-offences, default 2%, to time the quarantine), writes the frames straight into staging tables of
a throw-away warehouse (no landing files, no ingest) and runs desist.validation.validate_warehouse
on it, including the quarantine transaction, results.data_quality and the Data Docs site.
Prints rows per table, seconds per table (from its rows being read, which overlaps the checks of
the table before, through Great Expectations and the quarantine), the total, CPU time and the peak
memory of the process.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from desist import validation
from desist.config import DEFAULT_CONFIG, load_settings
from desist.generate import generate


def settings_in(folder: Path):
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["paths"] = {"landing": str(folder / "landing"), "warehouse": str(folder / "warehouse.duckdb"),
                    "research": str(folder / "research.duckdb"), "reports": str(folder / "reports")}
    path = folder / "evaluation.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_settings(path)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bad-offences", type=float, default=0.02,
                        help="share of offences made proven before committed, to time the quarantine")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    extract = generate(args.people, args.seed)
    print(f"generated {args.people:,} people in {time.perf_counter() - started:.1f} s")
    offences = extract.tables["offences"]
    bad = offences.index[:: max(1, round(1 / args.bad_offences))] if args.bad_offences else offences.index[:0]
    offences.loc[bad, "proven_date"] = offences.loc[bad, "offence_date"] - pd.Timedelta(days=1)
    print(f"planted {len(bad):,} offences proven the day before they were committed")
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_in(Path(tmp))
        con = duckdb.connect(str(settings.paths.warehouse))
        started = time.perf_counter()
        validation.stage_frames(con, extract.tables)
        print(f"staged in {time.perf_counter() - started:.1f} s")
        del extract

        started, cpu_started = time.perf_counter(), cpu_seconds()
        run = validation.validate_warehouse(
            con, settings, run_id="benchmark", data_docs=settings.paths.reports / "data-quality")
        total, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started

        print(f"\n{'table':<15}{'rows':>12}{'expectations':>14}{'quarantined':>13}{'seconds':>9}")
        for name, table in run.tables.items():
            print(f"{name:<15}{table.row_count:>12,}{len(table.outcomes):>14}"
                  f"{run.quarantined[name]:>13,}{run.seconds[name]:>9.1f}")
        print(f"\nvalidate_warehouse total: {total:.1f} s (tables {sum(run.seconds.values()):.1f} s; "
              "the rest is importing Great Expectations, recording results and Data Docs)")
        print(f"CPU time (user + system, all threads): {cpu:.1f} s")
        print(f"blocked: {run.blocked}")
        print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
