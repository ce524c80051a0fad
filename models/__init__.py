"""Statistics for desist: pure functions on arrays and DataFrames (no Dagster, no DuckDB, no I/O)."""
