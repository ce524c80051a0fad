-- raw.programmes: every row of every programmes landing file, as text.
-- source_row counts data records from 1 (the header is not counted); row_error says why a
-- row's field count differs from its header's (such rows are quarantined as malformed_row).
-- Generated from desist/contract.py by `python -m desist.ingest`: edit the contract, not this file.
CREATE TABLE IF NOT EXISTS raw.programmes (
    programme_id VARCHAR USING COMPRESSION uncompressed,
    name VARCHAR,
    programme_type VARCHAR,
    provider VARCHAR,
    source_file VARCHAR NOT NULL,
    source_row BIGINT NOT NULL,
    row_error VARCHAR,
    loaded_at TIMESTAMPTZ NOT NULL
);
