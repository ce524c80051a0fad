"""What a finished run leaves behind, printed for the evaluator."""
from __future__ import annotations

import duckdb

from desist.config import Settings


def print_summary(settings: Settings) -> None:
    paths = settings.paths
    if paths.warehouse.exists():
        with duckdb.connect(str(paths.warehouse), read_only=True) as con:
            has_summary = con.sql(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = 'raw' AND table_name = 'ingest_summary'"
            ).fetchone()[0]
            if has_summary:
                print("\nIngest summary (rows per file):")
                print(con.sql(
                    "SELECT table_name, file_name, status, rows_read, rows_loaded, rows_quarantined "
                    "FROM raw.ingest_summary ORDER BY table_name, file_name"
                ).df().to_string(index=False))
    print("\nOutputs:")
    print(f"  warehouse: {paths.warehouse}")
    if paths.research.exists():
        print(f"  research database: {paths.research}")
    if paths.reports.exists():
        for report in sorted(paths.reports.glob("*.html")):
            print(f"  report: {report}")
