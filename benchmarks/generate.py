"""Time the synthetic generator end to end (simulate + write files) and report peak memory.

    python benchmarks/generate.py --people 1000000 --format csv
"""
from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
from pathlib import Path

from desist.generate import write_extract


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--out", type=Path, help="folder to write to (default: a temporary folder, removed after)")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="desist-generate-"))
    try:
        summary = write_extract(out, people=args.people, seed=args.seed, fmt=args.format)
        size = sum(p.stat().st_size for p in out.iterdir())
    finally:
        if args.out is None:
            shutil.rmtree(out)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(f"people={args.people:,} seed={args.seed} format={args.format}")
    for table, rows in summary["rows"].items():
        print(f"  {table:<14} {rows:>12,} rows")
    print(f"written: {size / 2**20:,.1f} MiB")
    print(f"elapsed: {summary['seconds']:.1f} s")
    print(f"peak memory (max RSS): {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
