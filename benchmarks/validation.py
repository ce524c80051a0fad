"""Time the validation of a synthetic extract: Great Expectations suites on every staging table.

    .venv/bin/python benchmarks/validation.py [--people 1000000] [--seed 7]

Generates an extract with desist.generate, writes its frames straight into staging tables of
a throw-away warehouse (no landing files, no ingest) and runs desist.validation.validate_warehouse
on it, including the quarantine transaction, results.data_quality and the Data Docs site.
Prints rows per table, seconds per table (read frame + Great Expectations + quarantine), the
total and the peak memory of the process.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    extract = generate(args.people, args.seed)
    print(f"generated {args.people:,} people in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_in(Path(tmp))
        con = duckdb.connect(str(settings.paths.warehouse))
        started = time.perf_counter()
        validation.stage_frames(con, extract.tables)
        print(f"staged in {time.perf_counter() - started:.1f} s")
        del extract

        started = time.perf_counter()
        run = validation.validate_warehouse(
            con, settings, run_id="benchmark", data_docs=settings.paths.reports / "data-quality")
        total = time.perf_counter() - started

        print(f"\n{'table':<15}{'rows':>12}{'expectations':>14}{'quarantined':>13}{'seconds':>9}")
        for name, table in run.tables.items():
            print(f"{name:<15}{table.row_count:>12,}{len(table.outcomes):>14}"
                  f"{run.quarantined[name]:>13,}{run.seconds[name]:>9.1f}")
        print(f"\nvalidate_warehouse total: {total:.1f} s (tables {sum(run.seconds.values()):.1f} s; "
              "the rest is importing Great Expectations, recording results and Data Docs)")
        print(f"blocked: {run.blocked}")
        print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
