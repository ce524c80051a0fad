-- quarantine.rows: one row per input row kept out of staging, with where it came from and why.
-- stage 'ingest': the row could not be typed by the contract (reason codes: desist.ingest.REASONS);
-- stage 'validation': data validation moved the row out of staging. column_name and raw_value
-- name the row's first problem; detail lists them all; raw_record is the whole raw row as JSON.
-- source_row counts data records from 1 (the header is not counted).
CREATE TABLE IF NOT EXISTS quarantine.rows (
    table_name VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    source_row BIGINT NOT NULL,
    column_name VARCHAR,
    raw_value VARCHAR,
    reason VARCHAR NOT NULL,
    detail VARCHAR,
    raw_record VARCHAR,
    stage VARCHAR NOT NULL,
    quarantined_at TIMESTAMPTZ NOT NULL
);
