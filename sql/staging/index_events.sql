-- staging.index_events: rows of raw.index_events typed by the contract. A row that cannot be typed, or
-- repeats a key already loaded (by source_file, then source_row), goes to quarantine.rows
-- instead, with its first problem as reason and column and every problem in detail.
-- Generated from desist/contract.py by `python -m desist.ingest`: edit the contract, not this file.
CREATE OR REPLACE TABLE staging.index_events (
    person_id VARCHAR,
    index_date DATE,
    index_type VARCHAR,
    index_offence_group VARCHAR,
    sentence_months DOUBLE,
    prior_offences BIGINT,
    prior_custody BIGINT,
    age_first_offence BIGINT,
    risk_score DOUBLE,
    employment_at_index BOOLEAN,
    accommodation_at_index BOOLEAN,
    source_file VARCHAR,
    source_row BIGINT
);

INSERT INTO staging.index_events
WITH trimmed AS (
    SELECT
        *,
        CASE WHEN person_id LIKE ' %' OR person_id LIKE '% ' OR strlen(person_id) <> length(person_id) THEN NULLIF(trim(person_id), '') ELSE NULLIF(person_id, '') END AS v_person_id,
        CASE WHEN index_date LIKE ' %' OR index_date LIKE '% ' OR strlen(index_date) <> length(index_date) THEN NULLIF(trim(index_date), '') ELSE NULLIF(index_date, '') END AS v_index_date,
        CASE WHEN index_type LIKE ' %' OR index_type LIKE '% ' OR strlen(index_type) <> length(index_type) THEN NULLIF(trim(index_type), '') ELSE NULLIF(index_type, '') END AS v_index_type,
        CASE WHEN index_offence_group LIKE ' %' OR index_offence_group LIKE '% ' OR strlen(index_offence_group) <> length(index_offence_group) THEN NULLIF(trim(index_offence_group), '') ELSE NULLIF(index_offence_group, '') END AS v_index_offence_group,
        CASE WHEN sentence_months LIKE ' %' OR sentence_months LIKE '% ' OR strlen(sentence_months) <> length(sentence_months) THEN NULLIF(trim(sentence_months), '') ELSE NULLIF(sentence_months, '') END AS v_sentence_months,
        CASE WHEN prior_offences LIKE ' %' OR prior_offences LIKE '% ' OR strlen(prior_offences) <> length(prior_offences) THEN NULLIF(trim(prior_offences), '') ELSE NULLIF(prior_offences, '') END AS v_prior_offences,
        CASE WHEN prior_custody LIKE ' %' OR prior_custody LIKE '% ' OR strlen(prior_custody) <> length(prior_custody) THEN NULLIF(trim(prior_custody), '') ELSE NULLIF(prior_custody, '') END AS v_prior_custody,
        CASE WHEN age_first_offence LIKE ' %' OR age_first_offence LIKE '% ' OR strlen(age_first_offence) <> length(age_first_offence) THEN NULLIF(trim(age_first_offence), '') ELSE NULLIF(age_first_offence, '') END AS v_age_first_offence,
        CASE WHEN risk_score LIKE ' %' OR risk_score LIKE '% ' OR strlen(risk_score) <> length(risk_score) THEN NULLIF(trim(risk_score), '') ELSE NULLIF(risk_score, '') END AS v_risk_score,
        CASE WHEN employment_at_index LIKE ' %' OR employment_at_index LIKE '% ' OR strlen(employment_at_index) <> length(employment_at_index) THEN NULLIF(trim(employment_at_index), '') ELSE NULLIF(employment_at_index, '') END AS v_employment_at_index,
        CASE WHEN accommodation_at_index LIKE ' %' OR accommodation_at_index LIKE '% ' OR strlen(accommodation_at_index) <> length(accommodation_at_index) THEN NULLIF(trim(accommodation_at_index), '') ELSE NULLIF(accommodation_at_index, '') END AS v_accommodation_at_index
    FROM raw.index_events
), typed AS (
    SELECT
        *,
        v_person_id AS t_person_id,
        CASE WHEN v_index_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN TRY_CAST(v_index_date AS DATE) END AS t_index_date,
        lower(v_index_type) AS t_index_type,
        lower(v_index_offence_group) AS t_index_offence_group,
        CASE WHEN regexp_full_match(v_sentence_months, '[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?') AND isfinite(TRY_CAST(v_sentence_months AS DOUBLE)) THEN TRY_CAST(v_sentence_months AS DOUBLE) END AS t_sentence_months,
        CASE WHEN NOT v_prior_offences GLOB '*[!0-9]*' THEN TRY_CAST(v_prior_offences AS BIGINT) WHEN regexp_full_match(v_prior_offences, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_prior_offences, '\.0*$', '') AS BIGINT) END AS t_prior_offences,
        CASE WHEN NOT v_prior_custody GLOB '*[!0-9]*' THEN TRY_CAST(v_prior_custody AS BIGINT) WHEN regexp_full_match(v_prior_custody, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_prior_custody, '\.0*$', '') AS BIGINT) END AS t_prior_custody,
        CASE WHEN NOT v_age_first_offence GLOB '*[!0-9]*' THEN TRY_CAST(v_age_first_offence AS BIGINT) WHEN regexp_full_match(v_age_first_offence, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_age_first_offence, '\.0*$', '') AS BIGINT) END AS t_age_first_offence,
        CASE WHEN regexp_full_match(v_risk_score, '[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?') AND isfinite(TRY_CAST(v_risk_score AS DOUBLE)) THEN TRY_CAST(v_risk_score AS DOUBLE) END AS t_risk_score,
        CASE WHEN lower(v_employment_at_index) IN ('true', 'yes', '1') THEN true WHEN lower(v_employment_at_index) IN ('false', 'no', '0') THEN false END AS t_employment_at_index,
        CASE WHEN lower(v_accommodation_at_index) IN ('true', 'yes', '1') THEN true WHEN lower(v_accommodation_at_index) IN ('false', 'no', '0') THEN false END AS t_accommodation_at_index
    FROM trimmed
)
SELECT
    t_person_id::VARCHAR AS person_id,
    t_index_date::DATE AS index_date,
    t_index_type::VARCHAR AS index_type,
    t_index_offence_group::VARCHAR AS index_offence_group,
    t_sentence_months::DOUBLE AS sentence_months,
    t_prior_offences::BIGINT AS prior_offences,
    t_prior_custody::BIGINT AS prior_custody,
    t_age_first_offence::BIGINT AS age_first_offence,
    t_risk_score::DOUBLE AS risk_score,
    t_employment_at_index::BOOLEAN AS employment_at_index,
    t_accommodation_at_index::BOOLEAN AS accommodation_at_index,
    source_file,
    source_row
FROM typed
WHERE row_error IS NULL
    AND t_person_id IS NOT NULL
    AND t_index_date IS NOT NULL
    AND t_index_type IS NOT NULL AND list_position(['custody_release', 'community_sentence'], t_index_type) IS NOT NULL
    AND t_index_offence_group IS NOT NULL AND list_position(['violence', 'sexual', 'robbery', 'theft', 'burglary', 'criminal_damage', 'drugs', 'public_order', 'fraud', 'motoring', 'other'], t_index_offence_group) IS NOT NULL
    AND t_sentence_months IS NOT NULL AND t_sentence_months >= 0 AND t_sentence_months <= 600
    AND (v_prior_offences IS NULL OR (t_prior_offences IS NOT NULL AND t_prior_offences >= 0 AND t_prior_offences <= 500))
    AND (v_prior_custody IS NULL OR (t_prior_custody IS NOT NULL AND t_prior_custody >= 0 AND t_prior_custody <= 200))
    AND (v_age_first_offence IS NULL OR (t_age_first_offence IS NOT NULL AND t_age_first_offence >= 5 AND t_age_first_offence <= 100))
    AND (v_risk_score IS NULL OR (t_risk_score IS NOT NULL AND t_risk_score >= 0 AND t_risk_score <= 100))
    AND (v_employment_at_index IS NULL OR (t_employment_at_index IS NOT NULL))
    AND (v_accommodation_at_index IS NULL OR (t_accommodation_at_index IS NOT NULL));

-- A key loaded again keeps its first row (by source_file, then source_row); the later ones go
-- to quarantine below. Repeats are found by sorting the keys' 64-bit hashes (grouping the keys
-- themselves builds a hash table of millions of texts); only the rows whose hash repeats are
-- then ranked by the key itself, so a hash collision ranks a few rows and changes nothing.
DELETE FROM staging.index_events AS t
USING (
    SELECT s.source_file, s.source_row
    FROM staging.index_events AS s
    SEMI JOIN (
        SELECT key_hash
        FROM (SELECT hash(person_id, index_date) AS key_hash FROM staging.index_events)
        QUALIFY key_hash = lag(key_hash) OVER (ORDER BY key_hash)
    ) AS repeated ON hash(s.person_id, s.index_date) = repeated.key_hash
    QUALIFY row_number() OVER (PARTITION BY s.person_id, s.index_date ORDER BY s.source_file, s.source_row) > 1
) AS repeats
WHERE t.source_file = repeats.source_file AND t.source_row = repeats.source_row;

DELETE FROM quarantine.rows WHERE stage = 'ingest' AND table_name = 'index_events';

INSERT INTO quarantine.rows
WITH counts AS (
    -- staging is a subset of raw: as many rows in both, and no row is left to quarantine
    SELECT (SELECT count(*) FROM raw.index_events) <> (SELECT count(*) FROM staging.index_events) AS any_unstaged
), unstaged AS (
    SELECT r.*
    FROM raw.index_events AS r
    ANTI JOIN (SELECT source_file, source_row FROM staging.index_events WHERE (SELECT any_unstaged FROM counts)) AS s
        USING (source_file, source_row)
    WHERE (SELECT any_unstaged FROM counts)
), trimmed AS (
    SELECT
        *,
        CASE WHEN person_id LIKE ' %' OR person_id LIKE '% ' OR strlen(person_id) <> length(person_id) THEN NULLIF(trim(person_id), '') ELSE NULLIF(person_id, '') END AS v_person_id,
        CASE WHEN index_date LIKE ' %' OR index_date LIKE '% ' OR strlen(index_date) <> length(index_date) THEN NULLIF(trim(index_date), '') ELSE NULLIF(index_date, '') END AS v_index_date,
        CASE WHEN index_type LIKE ' %' OR index_type LIKE '% ' OR strlen(index_type) <> length(index_type) THEN NULLIF(trim(index_type), '') ELSE NULLIF(index_type, '') END AS v_index_type,
        CASE WHEN index_offence_group LIKE ' %' OR index_offence_group LIKE '% ' OR strlen(index_offence_group) <> length(index_offence_group) THEN NULLIF(trim(index_offence_group), '') ELSE NULLIF(index_offence_group, '') END AS v_index_offence_group,
        CASE WHEN sentence_months LIKE ' %' OR sentence_months LIKE '% ' OR strlen(sentence_months) <> length(sentence_months) THEN NULLIF(trim(sentence_months), '') ELSE NULLIF(sentence_months, '') END AS v_sentence_months,
        CASE WHEN prior_offences LIKE ' %' OR prior_offences LIKE '% ' OR strlen(prior_offences) <> length(prior_offences) THEN NULLIF(trim(prior_offences), '') ELSE NULLIF(prior_offences, '') END AS v_prior_offences,
        CASE WHEN prior_custody LIKE ' %' OR prior_custody LIKE '% ' OR strlen(prior_custody) <> length(prior_custody) THEN NULLIF(trim(prior_custody), '') ELSE NULLIF(prior_custody, '') END AS v_prior_custody,
        CASE WHEN age_first_offence LIKE ' %' OR age_first_offence LIKE '% ' OR strlen(age_first_offence) <> length(age_first_offence) THEN NULLIF(trim(age_first_offence), '') ELSE NULLIF(age_first_offence, '') END AS v_age_first_offence,
        CASE WHEN risk_score LIKE ' %' OR risk_score LIKE '% ' OR strlen(risk_score) <> length(risk_score) THEN NULLIF(trim(risk_score), '') ELSE NULLIF(risk_score, '') END AS v_risk_score,
        CASE WHEN employment_at_index LIKE ' %' OR employment_at_index LIKE '% ' OR strlen(employment_at_index) <> length(employment_at_index) THEN NULLIF(trim(employment_at_index), '') ELSE NULLIF(employment_at_index, '') END AS v_employment_at_index,
        CASE WHEN accommodation_at_index LIKE ' %' OR accommodation_at_index LIKE '% ' OR strlen(accommodation_at_index) <> length(accommodation_at_index) THEN NULLIF(trim(accommodation_at_index), '') ELSE NULLIF(accommodation_at_index, '') END AS v_accommodation_at_index
    FROM unstaged
), typed AS (
    SELECT
        *,
        v_person_id AS t_person_id,
        CASE WHEN v_index_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN TRY_CAST(v_index_date AS DATE) END AS t_index_date,
        lower(v_index_type) AS t_index_type,
        lower(v_index_offence_group) AS t_index_offence_group,
        CASE WHEN regexp_full_match(v_sentence_months, '[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?') AND isfinite(TRY_CAST(v_sentence_months AS DOUBLE)) THEN TRY_CAST(v_sentence_months AS DOUBLE) END AS t_sentence_months,
        CASE WHEN NOT v_prior_offences GLOB '*[!0-9]*' THEN TRY_CAST(v_prior_offences AS BIGINT) WHEN regexp_full_match(v_prior_offences, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_prior_offences, '\.0*$', '') AS BIGINT) END AS t_prior_offences,
        CASE WHEN NOT v_prior_custody GLOB '*[!0-9]*' THEN TRY_CAST(v_prior_custody AS BIGINT) WHEN regexp_full_match(v_prior_custody, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_prior_custody, '\.0*$', '') AS BIGINT) END AS t_prior_custody,
        CASE WHEN NOT v_age_first_offence GLOB '*[!0-9]*' THEN TRY_CAST(v_age_first_offence AS BIGINT) WHEN regexp_full_match(v_age_first_offence, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_age_first_offence, '\.0*$', '') AS BIGINT) END AS t_age_first_offence,
        CASE WHEN regexp_full_match(v_risk_score, '[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?') AND isfinite(TRY_CAST(v_risk_score AS DOUBLE)) THEN TRY_CAST(v_risk_score AS DOUBLE) END AS t_risk_score,
        CASE WHEN lower(v_employment_at_index) IN ('true', 'yes', '1') THEN true WHEN lower(v_employment_at_index) IN ('false', 'no', '0') THEN false END AS t_employment_at_index,
        CASE WHEN lower(v_accommodation_at_index) IN ('true', 'yes', '1') THEN true WHEN lower(v_accommodation_at_index) IN ('false', 'no', '0') THEN false END AS t_accommodation_at_index
    FROM trimmed
), checked AS (
    SELECT
        *,
        CASE WHEN row_error IS NOT NULL THEN [{'column_name': NULL::VARCHAR, 'reason': 'malformed_row', 'raw_value': NULL::VARCHAR, 'note': row_error}]
        ELSE list_filter([
            CASE
                WHEN v_person_id IS NULL THEN {'column_name': 'person_id', 'reason': 'missing_key', 'raw_value': person_id, 'note': 'the value is empty'}
            END,
            CASE
                WHEN v_index_date IS NULL THEN {'column_name': 'index_date', 'reason': 'missing_key', 'raw_value': index_date, 'note': 'the value is empty'}
                WHEN t_index_date IS NULL THEN {'column_name': 'index_date', 'reason': 'bad_date', 'raw_value': index_date, 'note': 'expected a date written yyyy-mm-dd'}
            END,
            CASE
                WHEN v_index_type IS NULL THEN {'column_name': 'index_type', 'reason': 'missing_value', 'raw_value': index_type, 'note': 'the value is empty'}
                WHEN NOT (list_position(['custody_release', 'community_sentence'], t_index_type) IS NOT NULL) THEN {'column_name': 'index_type', 'reason': 'out_of_domain', 'raw_value': index_type, 'note': 'expected one of custody_release, community_sentence'}
            END,
            CASE
                WHEN v_index_offence_group IS NULL THEN {'column_name': 'index_offence_group', 'reason': 'missing_value', 'raw_value': index_offence_group, 'note': 'the value is empty'}
                WHEN NOT (list_position(['violence', 'sexual', 'robbery', 'theft', 'burglary', 'criminal_damage', 'drugs', 'public_order', 'fraud', 'motoring', 'other'], t_index_offence_group) IS NOT NULL) THEN {'column_name': 'index_offence_group', 'reason': 'out_of_domain', 'raw_value': index_offence_group, 'note': 'expected one of violence, sexual, robbery, theft, burglary, criminal_damage, drugs, public_order, fraud, motoring, other'}
            END,
            CASE
                WHEN v_sentence_months IS NULL THEN {'column_name': 'sentence_months', 'reason': 'missing_value', 'raw_value': sentence_months, 'note': 'the value is empty'}
                WHEN t_sentence_months IS NULL THEN {'column_name': 'sentence_months', 'reason': 'bad_number', 'raw_value': sentence_months, 'note': 'expected a finite number'}
                WHEN t_sentence_months < 0 OR t_sentence_months > 600 THEN {'column_name': 'sentence_months', 'reason': 'out_of_range', 'raw_value': sentence_months, 'note': 'expected 0 to 600'}
            END,
            CASE
                WHEN v_prior_offences IS NULL THEN NULL
                WHEN t_prior_offences IS NULL THEN {'column_name': 'prior_offences', 'reason': 'bad_integer', 'raw_value': prior_offences, 'note': 'expected a whole number'}
                WHEN t_prior_offences < 0 OR t_prior_offences > 500 THEN {'column_name': 'prior_offences', 'reason': 'out_of_range', 'raw_value': prior_offences, 'note': 'expected 0 to 500'}
            END,
            CASE
                WHEN v_prior_custody IS NULL THEN NULL
                WHEN t_prior_custody IS NULL THEN {'column_name': 'prior_custody', 'reason': 'bad_integer', 'raw_value': prior_custody, 'note': 'expected a whole number'}
                WHEN t_prior_custody < 0 OR t_prior_custody > 200 THEN {'column_name': 'prior_custody', 'reason': 'out_of_range', 'raw_value': prior_custody, 'note': 'expected 0 to 200'}
            END,
            CASE
                WHEN v_age_first_offence IS NULL THEN NULL
                WHEN t_age_first_offence IS NULL THEN {'column_name': 'age_first_offence', 'reason': 'bad_integer', 'raw_value': age_first_offence, 'note': 'expected a whole number'}
                WHEN t_age_first_offence < 5 OR t_age_first_offence > 100 THEN {'column_name': 'age_first_offence', 'reason': 'out_of_range', 'raw_value': age_first_offence, 'note': 'expected 5 to 100'}
            END,
            CASE
                WHEN v_risk_score IS NULL THEN NULL
                WHEN t_risk_score IS NULL THEN {'column_name': 'risk_score', 'reason': 'bad_number', 'raw_value': risk_score, 'note': 'expected a finite number'}
                WHEN t_risk_score < 0 OR t_risk_score > 100 THEN {'column_name': 'risk_score', 'reason': 'out_of_range', 'raw_value': risk_score, 'note': 'expected 0 to 100'}
            END,
            CASE
                WHEN v_employment_at_index IS NULL THEN NULL
                WHEN t_employment_at_index IS NULL THEN {'column_name': 'employment_at_index', 'reason': 'bad_boolean', 'raw_value': employment_at_index, 'note': 'expected true/false, yes/no or 1/0'}
            END,
            CASE
                WHEN v_accommodation_at_index IS NULL THEN NULL
                WHEN t_accommodation_at_index IS NULL THEN {'column_name': 'accommodation_at_index', 'reason': 'bad_boolean', 'raw_value': accommodation_at_index, 'note': 'expected true/false, yes/no or 1/0'}
            END
        ], lambda p: p IS NOT NULL) END AS found
    FROM typed
), explained AS (
    SELECT
        checked.*,
        CASE WHEN len(found) > 0 THEN found ELSE [{'column_name': 'person_id,index_date', 'reason': 'duplicate_key', 'raw_value': checked.person_id || ',' || checked.index_date, 'note': 'key already loaded from ' || kept.source_file || ' row ' || kept.source_row}] END AS problems
    FROM checked
    LEFT JOIN staging.index_events AS kept ON len(checked.found) = 0 AND kept.person_id = checked.t_person_id AND kept.index_date = checked.t_index_date
)
SELECT
    'index_events' AS table_name,
    source_file,
    source_row,
    problems[1].column_name,
    problems[1].raw_value,
    problems[1].reason,
    array_to_string(list_transform(problems, lambda p: concat_ws(' ',
        p.column_name || ':', p.reason, '''' || p.raw_value || '''', '(' || p.note || ')')), '; ') AS detail,
    to_json({'person_id': person_id, 'index_date': index_date, 'index_type': index_type, 'index_offence_group': index_offence_group, 'sentence_months': sentence_months, 'prior_offences': prior_offences, 'prior_custody': prior_custody, 'age_first_offence': age_first_offence, 'risk_score': risk_score, 'employment_at_index': employment_at_index, 'accommodation_at_index': accommodation_at_index, 'source_file': source_file, 'source_row': source_row})::VARCHAR AS raw_record,
    'ingest' AS stage,
    loaded_at AS quarantined_at
FROM explained
ORDER BY source_file, source_row;
