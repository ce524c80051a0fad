-- raw.files: every landing file desist has seen, its fingerprint and what became of it.
-- status: loaded / rejected (whole file, reason says why) / ignored (not a table's file) /
-- removed (gone from the landing folder; its rows were deleted). A rejected file's rows are
-- all counted in rows_rejected. loaded_at changes only when the file is (re)read or removed.
CREATE TABLE IF NOT EXISTS raw.files (
    file_name VARCHAR NOT NULL,
    file_path VARCHAR NOT NULL,
    table_name VARCHAR,
    file_format VARCHAR,
    sha256 VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN ('loaded', 'rejected', 'ignored', 'removed')),
    reason VARCHAR,
    rows_read BIGINT NOT NULL,
    rows_rejected BIGINT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL
);
-- A CSV file's physical lines (NULL for Parquet): lines = header_lines + blank_lines +
-- continued_lines (inside a quoted value that began on an earlier line) + rows_read.
ALTER TABLE raw.files ADD COLUMN IF NOT EXISTS lines BIGINT;
ALTER TABLE raw.files ADD COLUMN IF NOT EXISTS header_lines BIGINT;
ALTER TABLE raw.files ADD COLUMN IF NOT EXISTS blank_lines BIGINT;
ALTER TABLE raw.files ADD COLUMN IF NOT EXISTS continued_lines BIGINT;
