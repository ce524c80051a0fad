-- raw.offences: every row of every offences landing file, as text.
-- source_row counts data records from 1 (the header is not counted); row_error says why a
-- row's field count differs from its header's (such rows are quarantined as malformed_row).
-- Generated from desist/contract.py by `python -m desist.ingest`: edit the contract, not this file.
CREATE TABLE IF NOT EXISTS raw.offences (
    offence_id VARCHAR USING COMPRESSION uncompressed,
    person_id VARCHAR,
    offence_date VARCHAR,
    proven_date VARCHAR,
    offence_group VARCHAR,
    severity VARCHAR,
    disposal VARCHAR,
    source_file VARCHAR NOT NULL,
    source_row BIGINT NOT NULL,
    row_error VARCHAR,
    loaded_at TIMESTAMPTZ NOT NULL
);
