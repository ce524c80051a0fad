-- staging.assessments: rows of raw.assessments typed by the contract. A row that cannot be typed, or
-- repeats a key already loaded (by source_file, then source_row), goes to quarantine.rows
-- instead, with its first problem as reason and column and every problem in detail.
-- Generated from desist/contract.py by `python -m desist.ingest`: edit the contract, not this file.
CREATE OR REPLACE TABLE staging.assessments (
    person_id VARCHAR,
    programme_id VARCHAR,
    assessment_date DATE,
    stage VARCHAR,
    employment_status VARCHAR,
    accommodation_status VARCHAR,
    life_skills_score BIGINT,
    community_integration_score BIGINT,
    source_file VARCHAR,
    source_row BIGINT
);

INSERT INTO staging.assessments
WITH trimmed AS (
    SELECT
        *,
        CASE WHEN person_id LIKE ' %' OR person_id LIKE '% ' OR strlen(person_id) <> length(person_id) THEN NULLIF(trim(person_id), '') ELSE NULLIF(person_id, '') END AS v_person_id,
        CASE WHEN programme_id LIKE ' %' OR programme_id LIKE '% ' OR strlen(programme_id) <> length(programme_id) THEN NULLIF(trim(programme_id), '') ELSE NULLIF(programme_id, '') END AS v_programme_id,
        CASE WHEN assessment_date LIKE ' %' OR assessment_date LIKE '% ' OR strlen(assessment_date) <> length(assessment_date) THEN NULLIF(trim(assessment_date), '') ELSE NULLIF(assessment_date, '') END AS v_assessment_date,
        CASE WHEN stage LIKE ' %' OR stage LIKE '% ' OR strlen(stage) <> length(stage) THEN NULLIF(trim(stage), '') ELSE NULLIF(stage, '') END AS v_stage,
        CASE WHEN employment_status LIKE ' %' OR employment_status LIKE '% ' OR strlen(employment_status) <> length(employment_status) THEN NULLIF(trim(employment_status), '') ELSE NULLIF(employment_status, '') END AS v_employment_status,
        CASE WHEN accommodation_status LIKE ' %' OR accommodation_status LIKE '% ' OR strlen(accommodation_status) <> length(accommodation_status) THEN NULLIF(trim(accommodation_status), '') ELSE NULLIF(accommodation_status, '') END AS v_accommodation_status,
        CASE WHEN life_skills_score LIKE ' %' OR life_skills_score LIKE '% ' OR strlen(life_skills_score) <> length(life_skills_score) THEN NULLIF(trim(life_skills_score), '') ELSE NULLIF(life_skills_score, '') END AS v_life_skills_score,
        CASE WHEN community_integration_score LIKE ' %' OR community_integration_score LIKE '% ' OR strlen(community_integration_score) <> length(community_integration_score) THEN NULLIF(trim(community_integration_score), '') ELSE NULLIF(community_integration_score, '') END AS v_community_integration_score
    FROM raw.assessments
), typed AS (
    SELECT
        *,
        v_person_id AS t_person_id,
        v_programme_id AS t_programme_id,
        CASE WHEN v_assessment_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN TRY_CAST(v_assessment_date AS DATE) END AS t_assessment_date,
        lower(v_stage) AS t_stage,
        lower(v_employment_status) AS t_employment_status,
        lower(v_accommodation_status) AS t_accommodation_status,
        CASE WHEN NOT v_life_skills_score GLOB '*[!0-9]*' THEN TRY_CAST(v_life_skills_score AS BIGINT) WHEN regexp_full_match(v_life_skills_score, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_life_skills_score, '\.0*$', '') AS BIGINT) END AS t_life_skills_score,
        CASE WHEN NOT v_community_integration_score GLOB '*[!0-9]*' THEN TRY_CAST(v_community_integration_score AS BIGINT) WHEN regexp_full_match(v_community_integration_score, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_community_integration_score, '\.0*$', '') AS BIGINT) END AS t_community_integration_score
    FROM trimmed
)
SELECT
    t_person_id::VARCHAR AS person_id,
    t_programme_id::VARCHAR AS programme_id,
    t_assessment_date::DATE AS assessment_date,
    t_stage::VARCHAR AS stage,
    t_employment_status::VARCHAR AS employment_status,
    t_accommodation_status::VARCHAR AS accommodation_status,
    t_life_skills_score::BIGINT AS life_skills_score,
    t_community_integration_score::BIGINT AS community_integration_score,
    source_file,
    source_row
FROM typed
WHERE row_error IS NULL
    AND t_person_id IS NOT NULL
    AND t_programme_id IS NOT NULL
    AND t_assessment_date IS NOT NULL
    AND t_stage IS NOT NULL AND list_position(['baseline', 'exit', 'follow_up'], t_stage) IS NOT NULL
    AND t_employment_status IS NOT NULL AND list_position(['employed', 'training', 'unemployed', 'inactive'], t_employment_status) IS NOT NULL
    AND t_accommodation_status IS NOT NULL AND list_position(['settled', 'unsettled'], t_accommodation_status) IS NOT NULL
    AND t_life_skills_score IS NOT NULL AND t_life_skills_score >= 1 AND t_life_skills_score <= 10
    AND t_community_integration_score IS NOT NULL AND t_community_integration_score >= 1 AND t_community_integration_score <= 10;

-- A key loaded again keeps its first row (by source_file, then source_row); the later ones go
-- to quarantine below. Repeats are found by sorting the keys' 64-bit hashes (grouping the keys
-- themselves builds a hash table of millions of texts); only the rows whose hash repeats are
-- then ranked by the key itself, so a hash collision ranks a few rows and changes nothing.
DELETE FROM staging.assessments AS t
USING (
    SELECT s.source_file, s.source_row
    FROM staging.assessments AS s
    SEMI JOIN (
        SELECT key_hash
        FROM (SELECT hash(person_id, programme_id, stage) AS key_hash FROM staging.assessments)
        QUALIFY key_hash = lag(key_hash) OVER (ORDER BY key_hash)
    ) AS repeated ON hash(s.person_id, s.programme_id, s.stage) = repeated.key_hash
    QUALIFY row_number() OVER (PARTITION BY s.person_id, s.programme_id, s.stage ORDER BY s.source_file, s.source_row) > 1
) AS repeats
WHERE t.source_file = repeats.source_file AND t.source_row = repeats.source_row;

DELETE FROM quarantine.rows WHERE stage = 'ingest' AND table_name = 'assessments';

INSERT INTO quarantine.rows
WITH counts AS (
    -- staging is a subset of raw: as many rows in both, and no row is left to quarantine
    SELECT (SELECT count(*) FROM raw.assessments) <> (SELECT count(*) FROM staging.assessments) AS any_unstaged
), unstaged AS (
    SELECT r.*
    FROM raw.assessments AS r
    ANTI JOIN (SELECT source_file, source_row FROM staging.assessments WHERE (SELECT any_unstaged FROM counts)) AS s
        USING (source_file, source_row)
    WHERE (SELECT any_unstaged FROM counts)
), trimmed AS (
    SELECT
        *,
        CASE WHEN person_id LIKE ' %' OR person_id LIKE '% ' OR strlen(person_id) <> length(person_id) THEN NULLIF(trim(person_id), '') ELSE NULLIF(person_id, '') END AS v_person_id,
        CASE WHEN programme_id LIKE ' %' OR programme_id LIKE '% ' OR strlen(programme_id) <> length(programme_id) THEN NULLIF(trim(programme_id), '') ELSE NULLIF(programme_id, '') END AS v_programme_id,
        CASE WHEN assessment_date LIKE ' %' OR assessment_date LIKE '% ' OR strlen(assessment_date) <> length(assessment_date) THEN NULLIF(trim(assessment_date), '') ELSE NULLIF(assessment_date, '') END AS v_assessment_date,
        CASE WHEN stage LIKE ' %' OR stage LIKE '% ' OR strlen(stage) <> length(stage) THEN NULLIF(trim(stage), '') ELSE NULLIF(stage, '') END AS v_stage,
        CASE WHEN employment_status LIKE ' %' OR employment_status LIKE '% ' OR strlen(employment_status) <> length(employment_status) THEN NULLIF(trim(employment_status), '') ELSE NULLIF(employment_status, '') END AS v_employment_status,
        CASE WHEN accommodation_status LIKE ' %' OR accommodation_status LIKE '% ' OR strlen(accommodation_status) <> length(accommodation_status) THEN NULLIF(trim(accommodation_status), '') ELSE NULLIF(accommodation_status, '') END AS v_accommodation_status,
        CASE WHEN life_skills_score LIKE ' %' OR life_skills_score LIKE '% ' OR strlen(life_skills_score) <> length(life_skills_score) THEN NULLIF(trim(life_skills_score), '') ELSE NULLIF(life_skills_score, '') END AS v_life_skills_score,
        CASE WHEN community_integration_score LIKE ' %' OR community_integration_score LIKE '% ' OR strlen(community_integration_score) <> length(community_integration_score) THEN NULLIF(trim(community_integration_score), '') ELSE NULLIF(community_integration_score, '') END AS v_community_integration_score
    FROM unstaged
), typed AS (
    SELECT
        *,
        v_person_id AS t_person_id,
        v_programme_id AS t_programme_id,
        CASE WHEN v_assessment_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN TRY_CAST(v_assessment_date AS DATE) END AS t_assessment_date,
        lower(v_stage) AS t_stage,
        lower(v_employment_status) AS t_employment_status,
        lower(v_accommodation_status) AS t_accommodation_status,
        CASE WHEN NOT v_life_skills_score GLOB '*[!0-9]*' THEN TRY_CAST(v_life_skills_score AS BIGINT) WHEN regexp_full_match(v_life_skills_score, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_life_skills_score, '\.0*$', '') AS BIGINT) END AS t_life_skills_score,
        CASE WHEN NOT v_community_integration_score GLOB '*[!0-9]*' THEN TRY_CAST(v_community_integration_score AS BIGINT) WHEN regexp_full_match(v_community_integration_score, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_community_integration_score, '\.0*$', '') AS BIGINT) END AS t_community_integration_score
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
                WHEN v_programme_id IS NULL THEN {'column_name': 'programme_id', 'reason': 'missing_key', 'raw_value': programme_id, 'note': 'the value is empty'}
            END,
            CASE
                WHEN v_assessment_date IS NULL THEN {'column_name': 'assessment_date', 'reason': 'missing_value', 'raw_value': assessment_date, 'note': 'the value is empty'}
                WHEN t_assessment_date IS NULL THEN {'column_name': 'assessment_date', 'reason': 'bad_date', 'raw_value': assessment_date, 'note': 'expected a date written yyyy-mm-dd'}
            END,
            CASE
                WHEN v_stage IS NULL THEN {'column_name': 'stage', 'reason': 'missing_key', 'raw_value': stage, 'note': 'the value is empty'}
                WHEN NOT (list_position(['baseline', 'exit', 'follow_up'], t_stage) IS NOT NULL) THEN {'column_name': 'stage', 'reason': 'out_of_domain', 'raw_value': stage, 'note': 'expected one of baseline, exit, follow_up'}
            END,
            CASE
                WHEN v_employment_status IS NULL THEN {'column_name': 'employment_status', 'reason': 'missing_value', 'raw_value': employment_status, 'note': 'the value is empty'}
                WHEN NOT (list_position(['employed', 'training', 'unemployed', 'inactive'], t_employment_status) IS NOT NULL) THEN {'column_name': 'employment_status', 'reason': 'out_of_domain', 'raw_value': employment_status, 'note': 'expected one of employed, training, unemployed, inactive'}
            END,
            CASE
                WHEN v_accommodation_status IS NULL THEN {'column_name': 'accommodation_status', 'reason': 'missing_value', 'raw_value': accommodation_status, 'note': 'the value is empty'}
                WHEN NOT (list_position(['settled', 'unsettled'], t_accommodation_status) IS NOT NULL) THEN {'column_name': 'accommodation_status', 'reason': 'out_of_domain', 'raw_value': accommodation_status, 'note': 'expected one of settled, unsettled'}
            END,
            CASE
                WHEN v_life_skills_score IS NULL THEN {'column_name': 'life_skills_score', 'reason': 'missing_value', 'raw_value': life_skills_score, 'note': 'the value is empty'}
                WHEN t_life_skills_score IS NULL THEN {'column_name': 'life_skills_score', 'reason': 'bad_integer', 'raw_value': life_skills_score, 'note': 'expected a whole number'}
                WHEN t_life_skills_score < 1 OR t_life_skills_score > 10 THEN {'column_name': 'life_skills_score', 'reason': 'out_of_range', 'raw_value': life_skills_score, 'note': 'expected 1 to 10'}
            END,
            CASE
                WHEN v_community_integration_score IS NULL THEN {'column_name': 'community_integration_score', 'reason': 'missing_value', 'raw_value': community_integration_score, 'note': 'the value is empty'}
                WHEN t_community_integration_score IS NULL THEN {'column_name': 'community_integration_score', 'reason': 'bad_integer', 'raw_value': community_integration_score, 'note': 'expected a whole number'}
                WHEN t_community_integration_score < 1 OR t_community_integration_score > 10 THEN {'column_name': 'community_integration_score', 'reason': 'out_of_range', 'raw_value': community_integration_score, 'note': 'expected 1 to 10'}
            END
        ], lambda p: p IS NOT NULL) END AS found
    FROM typed
), explained AS (
    SELECT
        checked.*,
        CASE WHEN len(found) > 0 THEN found ELSE [{'column_name': 'person_id,programme_id,stage', 'reason': 'duplicate_key', 'raw_value': checked.person_id || ',' || checked.programme_id || ',' || checked.stage, 'note': 'key already loaded from ' || kept.source_file || ' row ' || kept.source_row}] END AS problems
    FROM checked
    LEFT JOIN staging.assessments AS kept ON len(checked.found) = 0 AND kept.person_id = checked.t_person_id AND kept.programme_id = checked.t_programme_id AND kept.stage = checked.t_stage
)
SELECT
    'assessments' AS table_name,
    source_file,
    source_row,
    problems[1].column_name,
    problems[1].raw_value,
    problems[1].reason,
    array_to_string(list_transform(problems, lambda p: concat_ws(' ',
        p.column_name || ':', p.reason, '''' || p.raw_value || '''', '(' || p.note || ')')), '; ') AS detail,
    to_json({'person_id': person_id, 'programme_id': programme_id, 'assessment_date': assessment_date, 'stage': stage, 'employment_status': employment_status, 'accommodation_status': accommodation_status, 'life_skills_score': life_skills_score, 'community_integration_score': community_integration_score, 'source_file': source_file, 'source_row': source_row})::VARCHAR AS raw_record,
    'ingest' AS stage,
    loaded_at AS quarantined_at
FROM explained
ORDER BY source_file, source_row;
