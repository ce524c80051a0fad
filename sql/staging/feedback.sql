-- staging.feedback: rows of raw.feedback typed by the contract. A row that cannot be typed, or
-- repeats a key already loaded (by source_file, then source_row), goes to quarantine.rows
-- instead, with its first problem as reason and column and every problem in detail.
-- Generated from desist/contract.py by `python -m desist.ingest`: edit the contract, not this file.
CREATE OR REPLACE TABLE staging.feedback (
    response_id VARCHAR USING COMPRESSION uncompressed,
    programme_id VARCHAR,
    respondent_type VARCHAR,
    response_date DATE,
    satisfaction BIGINT,
    relationship_quality BIGINT,
    source_file VARCHAR,
    source_row BIGINT
);

INSERT INTO staging.feedback
WITH trimmed AS (
    SELECT
        *,
        CASE WHEN response_id LIKE ' %' OR response_id LIKE '% ' OR strlen(response_id) <> length(response_id) THEN NULLIF(trim(response_id), '') ELSE NULLIF(response_id, '') END AS v_response_id,
        CASE WHEN programme_id LIKE ' %' OR programme_id LIKE '% ' OR strlen(programme_id) <> length(programme_id) THEN NULLIF(trim(programme_id), '') ELSE NULLIF(programme_id, '') END AS v_programme_id,
        CASE WHEN respondent_type LIKE ' %' OR respondent_type LIKE '% ' OR strlen(respondent_type) <> length(respondent_type) THEN NULLIF(trim(respondent_type), '') ELSE NULLIF(respondent_type, '') END AS v_respondent_type,
        CASE WHEN response_date LIKE ' %' OR response_date LIKE '% ' OR strlen(response_date) <> length(response_date) THEN NULLIF(trim(response_date), '') ELSE NULLIF(response_date, '') END AS v_response_date,
        CASE WHEN satisfaction LIKE ' %' OR satisfaction LIKE '% ' OR strlen(satisfaction) <> length(satisfaction) THEN NULLIF(trim(satisfaction), '') ELSE NULLIF(satisfaction, '') END AS v_satisfaction,
        CASE WHEN relationship_quality LIKE ' %' OR relationship_quality LIKE '% ' OR strlen(relationship_quality) <> length(relationship_quality) THEN NULLIF(trim(relationship_quality), '') ELSE NULLIF(relationship_quality, '') END AS v_relationship_quality
    FROM raw.feedback
), typed AS (
    SELECT
        *,
        v_response_id AS t_response_id,
        v_programme_id AS t_programme_id,
        lower(v_respondent_type) AS t_respondent_type,
        CASE WHEN v_response_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN TRY_CAST(v_response_date AS DATE) END AS t_response_date,
        CASE WHEN NOT v_satisfaction GLOB '*[!0-9]*' THEN TRY_CAST(v_satisfaction AS BIGINT) WHEN regexp_full_match(v_satisfaction, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_satisfaction, '\.0*$', '') AS BIGINT) END AS t_satisfaction,
        CASE WHEN NOT v_relationship_quality GLOB '*[!0-9]*' THEN TRY_CAST(v_relationship_quality AS BIGINT) WHEN regexp_full_match(v_relationship_quality, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_relationship_quality, '\.0*$', '') AS BIGINT) END AS t_relationship_quality
    FROM trimmed
)
SELECT
    t_response_id::VARCHAR AS response_id,
    t_programme_id::VARCHAR AS programme_id,
    t_respondent_type::VARCHAR AS respondent_type,
    t_response_date::DATE AS response_date,
    t_satisfaction::BIGINT AS satisfaction,
    t_relationship_quality::BIGINT AS relationship_quality,
    source_file,
    source_row
FROM typed
WHERE row_error IS NULL
    AND t_response_id IS NOT NULL
    AND t_programme_id IS NOT NULL
    AND t_respondent_type IS NOT NULL AND list_position(['participant', 'mentor', 'partner', 'staff'], t_respondent_type) IS NOT NULL
    AND t_response_date IS NOT NULL
    AND t_satisfaction IS NOT NULL AND t_satisfaction >= 1 AND t_satisfaction <= 5
    AND (v_relationship_quality IS NULL OR (t_relationship_quality IS NOT NULL AND t_relationship_quality >= 1 AND t_relationship_quality <= 5));

-- A key loaded again keeps its first row (by source_file, then source_row); the later ones go
-- to quarantine below. Repeats are found by sorting the keys' 64-bit hashes (grouping the keys
-- themselves builds a hash table of millions of texts); only the rows whose hash repeats are
-- then ranked by the key itself, so a hash collision ranks a few rows and changes nothing.
DELETE FROM staging.feedback AS t
USING (
    SELECT s.source_file, s.source_row
    FROM staging.feedback AS s
    SEMI JOIN (
        SELECT key_hash
        FROM (SELECT hash(response_id) AS key_hash FROM staging.feedback)
        QUALIFY key_hash = lag(key_hash) OVER (ORDER BY key_hash)
    ) AS repeated ON hash(s.response_id) = repeated.key_hash
    QUALIFY row_number() OVER (PARTITION BY s.response_id ORDER BY s.source_file, s.source_row) > 1
) AS repeats
WHERE t.source_file = repeats.source_file AND t.source_row = repeats.source_row;

DELETE FROM quarantine.rows WHERE stage = 'ingest' AND table_name = 'feedback';

INSERT INTO quarantine.rows
WITH counts AS (
    -- staging is a subset of raw: as many rows in both, and no row is left to quarantine
    SELECT (SELECT count(*) FROM raw.feedback) <> (SELECT count(*) FROM staging.feedback) AS any_unstaged
), unstaged AS (
    SELECT r.*
    FROM raw.feedback AS r
    ANTI JOIN (SELECT source_file, source_row FROM staging.feedback WHERE (SELECT any_unstaged FROM counts)) AS s
        USING (source_file, source_row)
    WHERE (SELECT any_unstaged FROM counts)
), trimmed AS (
    SELECT
        *,
        CASE WHEN response_id LIKE ' %' OR response_id LIKE '% ' OR strlen(response_id) <> length(response_id) THEN NULLIF(trim(response_id), '') ELSE NULLIF(response_id, '') END AS v_response_id,
        CASE WHEN programme_id LIKE ' %' OR programme_id LIKE '% ' OR strlen(programme_id) <> length(programme_id) THEN NULLIF(trim(programme_id), '') ELSE NULLIF(programme_id, '') END AS v_programme_id,
        CASE WHEN respondent_type LIKE ' %' OR respondent_type LIKE '% ' OR strlen(respondent_type) <> length(respondent_type) THEN NULLIF(trim(respondent_type), '') ELSE NULLIF(respondent_type, '') END AS v_respondent_type,
        CASE WHEN response_date LIKE ' %' OR response_date LIKE '% ' OR strlen(response_date) <> length(response_date) THEN NULLIF(trim(response_date), '') ELSE NULLIF(response_date, '') END AS v_response_date,
        CASE WHEN satisfaction LIKE ' %' OR satisfaction LIKE '% ' OR strlen(satisfaction) <> length(satisfaction) THEN NULLIF(trim(satisfaction), '') ELSE NULLIF(satisfaction, '') END AS v_satisfaction,
        CASE WHEN relationship_quality LIKE ' %' OR relationship_quality LIKE '% ' OR strlen(relationship_quality) <> length(relationship_quality) THEN NULLIF(trim(relationship_quality), '') ELSE NULLIF(relationship_quality, '') END AS v_relationship_quality
    FROM unstaged
), typed AS (
    SELECT
        *,
        v_response_id AS t_response_id,
        v_programme_id AS t_programme_id,
        lower(v_respondent_type) AS t_respondent_type,
        CASE WHEN v_response_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN TRY_CAST(v_response_date AS DATE) END AS t_response_date,
        CASE WHEN NOT v_satisfaction GLOB '*[!0-9]*' THEN TRY_CAST(v_satisfaction AS BIGINT) WHEN regexp_full_match(v_satisfaction, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_satisfaction, '\.0*$', '') AS BIGINT) END AS t_satisfaction,
        CASE WHEN NOT v_relationship_quality GLOB '*[!0-9]*' THEN TRY_CAST(v_relationship_quality AS BIGINT) WHEN regexp_full_match(v_relationship_quality, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_relationship_quality, '\.0*$', '') AS BIGINT) END AS t_relationship_quality
    FROM trimmed
), checked AS (
    SELECT
        *,
        CASE WHEN row_error IS NOT NULL THEN [{'column_name': NULL::VARCHAR, 'reason': 'malformed_row', 'raw_value': NULL::VARCHAR, 'note': row_error}]
        ELSE list_filter([
            CASE
                WHEN v_response_id IS NULL THEN {'column_name': 'response_id', 'reason': 'missing_key', 'raw_value': response_id, 'note': 'the value is empty'}
            END,
            CASE
                WHEN v_programme_id IS NULL THEN {'column_name': 'programme_id', 'reason': 'missing_value', 'raw_value': programme_id, 'note': 'the value is empty'}
            END,
            CASE
                WHEN v_respondent_type IS NULL THEN {'column_name': 'respondent_type', 'reason': 'missing_value', 'raw_value': respondent_type, 'note': 'the value is empty'}
                WHEN NOT (list_position(['participant', 'mentor', 'partner', 'staff'], t_respondent_type) IS NOT NULL) THEN {'column_name': 'respondent_type', 'reason': 'out_of_domain', 'raw_value': respondent_type, 'note': 'expected one of participant, mentor, partner, staff'}
            END,
            CASE
                WHEN v_response_date IS NULL THEN {'column_name': 'response_date', 'reason': 'missing_value', 'raw_value': response_date, 'note': 'the value is empty'}
                WHEN t_response_date IS NULL THEN {'column_name': 'response_date', 'reason': 'bad_date', 'raw_value': response_date, 'note': 'expected a date written yyyy-mm-dd'}
            END,
            CASE
                WHEN v_satisfaction IS NULL THEN {'column_name': 'satisfaction', 'reason': 'missing_value', 'raw_value': satisfaction, 'note': 'the value is empty'}
                WHEN t_satisfaction IS NULL THEN {'column_name': 'satisfaction', 'reason': 'bad_integer', 'raw_value': satisfaction, 'note': 'expected a whole number'}
                WHEN t_satisfaction < 1 OR t_satisfaction > 5 THEN {'column_name': 'satisfaction', 'reason': 'out_of_range', 'raw_value': satisfaction, 'note': 'expected 1 to 5'}
            END,
            CASE
                WHEN v_relationship_quality IS NULL THEN NULL
                WHEN t_relationship_quality IS NULL THEN {'column_name': 'relationship_quality', 'reason': 'bad_integer', 'raw_value': relationship_quality, 'note': 'expected a whole number'}
                WHEN t_relationship_quality < 1 OR t_relationship_quality > 5 THEN {'column_name': 'relationship_quality', 'reason': 'out_of_range', 'raw_value': relationship_quality, 'note': 'expected 1 to 5'}
            END
        ], lambda p: p IS NOT NULL) END AS found
    FROM typed
), explained AS (
    SELECT
        checked.*,
        CASE WHEN len(found) > 0 THEN found ELSE [{'column_name': 'response_id', 'reason': 'duplicate_key', 'raw_value': checked.response_id, 'note': 'key already loaded from ' || kept.source_file || ' row ' || kept.source_row}] END AS problems
    FROM checked
    LEFT JOIN staging.feedback AS kept ON len(checked.found) = 0 AND kept.response_id = checked.t_response_id
)
SELECT
    'feedback' AS table_name,
    source_file,
    source_row,
    problems[1].column_name,
    problems[1].raw_value,
    problems[1].reason,
    array_to_string(list_transform(problems, lambda p: concat_ws(' ',
        p.column_name || ':', p.reason, '''' || p.raw_value || '''', '(' || p.note || ')')), '; ') AS detail,
    to_json({'response_id': response_id, 'programme_id': programme_id, 'respondent_type': respondent_type, 'response_date': response_date, 'satisfaction': satisfaction, 'relationship_quality': relationship_quality, 'source_file': source_file, 'source_row': source_row})::VARCHAR AS raw_record,
    'ingest' AS stage,
    loaded_at AS quarantined_at
FROM explained
ORDER BY source_file, source_row;
