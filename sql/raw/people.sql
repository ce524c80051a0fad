-- raw.people: every row of every people landing file, as text.
-- source_row counts data records from 1 (the header is not counted); row_error says why a
-- row's field count differs from its header's (such rows are quarantined as malformed_row).
-- Generated from desist/contract.py by `python -m desist.ingest`: edit the contract, not this file.
CREATE TABLE IF NOT EXISTS raw.people (
    person_id VARCHAR USING COMPRESSION uncompressed,
    sex VARCHAR,
    birth_year VARCHAR,
    ethnic_group VARCHAR,
    region VARCHAR,
    source_file VARCHAR NOT NULL,
    source_row BIGINT NOT NULL,
    row_error VARCHAR,
    loaded_at TIMESTAMPTZ NOT NULL
);
