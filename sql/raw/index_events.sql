-- raw.index_events: every row of every index_events landing file, as text.
-- source_row counts data records from 1 (the header is not counted); row_error says why a
-- row's field count differs from its header's (such rows are quarantined as malformed_row).
-- Generated from desist/contract.py by `python -m desist.ingest`: edit the contract, not this file.
CREATE TABLE IF NOT EXISTS raw.index_events (
    person_id VARCHAR,
    index_date VARCHAR,
    index_type VARCHAR,
    index_offence_group VARCHAR,
    sentence_months VARCHAR,
    prior_offences VARCHAR,
    prior_custody VARCHAR,
    age_first_offence VARCHAR,
    risk_score VARCHAR,
    employment_at_index VARCHAR,
    accommodation_at_index VARCHAR,
    source_file VARCHAR NOT NULL,
    source_row BIGINT NOT NULL,
    row_error VARCHAR,
    loaded_at TIMESTAMPTZ NOT NULL
);
