-- staging.participation: rows of raw.participation typed by the contract. A row that cannot be typed, or
-- repeats a key already loaded (by source_file, then source_row), goes to quarantine.rows
-- instead, with its first problem as reason and column and every problem in detail.
-- Generated from desist/contract.py by `python -m desist.ingest`: edit the contract, not this file.
CREATE OR REPLACE TABLE staging.participation (
    person_id VARCHAR,
    programme_id VARCHAR,
    start_date DATE,
    end_date DATE,
    status VARCHAR,
    sessions_offered BIGINT,
    sessions_attended BIGINT,
    mentor_id VARCHAR,
    source_file VARCHAR,
    source_row BIGINT
);

INSERT INTO staging.participation
WITH trimmed AS (
    SELECT
        *,
        CASE WHEN person_id LIKE ' %' OR person_id LIKE '% ' OR strlen(person_id) <> length(person_id) THEN NULLIF(trim(person_id), '') ELSE NULLIF(person_id, '') END AS v_person_id,
        CASE WHEN programme_id LIKE ' %' OR programme_id LIKE '% ' OR strlen(programme_id) <> length(programme_id) THEN NULLIF(trim(programme_id), '') ELSE NULLIF(programme_id, '') END AS v_programme_id,
        CASE WHEN start_date LIKE ' %' OR start_date LIKE '% ' OR strlen(start_date) <> length(start_date) THEN NULLIF(trim(start_date), '') ELSE NULLIF(start_date, '') END AS v_start_date,
        CASE WHEN end_date LIKE ' %' OR end_date LIKE '% ' OR strlen(end_date) <> length(end_date) THEN NULLIF(trim(end_date), '') ELSE NULLIF(end_date, '') END AS v_end_date,
        CASE WHEN status LIKE ' %' OR status LIKE '% ' OR strlen(status) <> length(status) THEN NULLIF(trim(status), '') ELSE NULLIF(status, '') END AS v_status,
        CASE WHEN sessions_offered LIKE ' %' OR sessions_offered LIKE '% ' OR strlen(sessions_offered) <> length(sessions_offered) THEN NULLIF(trim(sessions_offered), '') ELSE NULLIF(sessions_offered, '') END AS v_sessions_offered,
        CASE WHEN sessions_attended LIKE ' %' OR sessions_attended LIKE '% ' OR strlen(sessions_attended) <> length(sessions_attended) THEN NULLIF(trim(sessions_attended), '') ELSE NULLIF(sessions_attended, '') END AS v_sessions_attended,
        CASE WHEN mentor_id LIKE ' %' OR mentor_id LIKE '% ' OR strlen(mentor_id) <> length(mentor_id) THEN NULLIF(trim(mentor_id), '') ELSE NULLIF(mentor_id, '') END AS v_mentor_id
    FROM raw.participation
), typed AS (
    SELECT
        *,
        v_person_id AS t_person_id,
        v_programme_id AS t_programme_id,
        CASE WHEN v_start_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN TRY_CAST(v_start_date AS DATE) END AS t_start_date,
        CASE WHEN v_end_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN TRY_CAST(v_end_date AS DATE) END AS t_end_date,
        lower(v_status) AS t_status,
        CASE WHEN NOT v_sessions_offered GLOB '*[!0-9]*' THEN TRY_CAST(v_sessions_offered AS BIGINT) WHEN regexp_full_match(v_sessions_offered, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_sessions_offered, '\.0*$', '') AS BIGINT) END AS t_sessions_offered,
        CASE WHEN NOT v_sessions_attended GLOB '*[!0-9]*' THEN TRY_CAST(v_sessions_attended AS BIGINT) WHEN regexp_full_match(v_sessions_attended, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_sessions_attended, '\.0*$', '') AS BIGINT) END AS t_sessions_attended,
        v_mentor_id AS t_mentor_id
    FROM trimmed
)
SELECT
    t_person_id::VARCHAR AS person_id,
    t_programme_id::VARCHAR AS programme_id,
    t_start_date::DATE AS start_date,
    t_end_date::DATE AS end_date,
    t_status::VARCHAR AS status,
    t_sessions_offered::BIGINT AS sessions_offered,
    t_sessions_attended::BIGINT AS sessions_attended,
    t_mentor_id::VARCHAR AS mentor_id,
    source_file,
    source_row
FROM typed
WHERE row_error IS NULL
    AND t_person_id IS NOT NULL
    AND t_programme_id IS NOT NULL
    AND t_start_date IS NOT NULL
    AND (v_end_date IS NULL OR (t_end_date IS NOT NULL))
    AND t_status IS NOT NULL AND list_position(['completed', 'withdrawn', 'ongoing'], t_status) IS NOT NULL
    AND t_sessions_offered IS NOT NULL AND t_sessions_offered >= 0 AND t_sessions_offered <= 1000
    AND t_sessions_attended IS NOT NULL AND t_sessions_attended >= 0 AND t_sessions_attended <= 1000
    AND (v_mentor_id IS NULL OR (t_mentor_id IS NOT NULL));

-- A key loaded again keeps its first row (by source_file, then source_row); the later ones go
-- to quarantine below. Repeats are found by sorting the keys' 64-bit hashes (grouping the keys
-- themselves builds a hash table of millions of texts); only the rows whose hash repeats are
-- then ranked by the key itself, so a hash collision ranks a few rows and changes nothing.
DELETE FROM staging.participation AS t
USING (
    SELECT s.source_file, s.source_row
    FROM staging.participation AS s
    SEMI JOIN (
        SELECT key_hash
        FROM (SELECT hash(person_id, programme_id, start_date) AS key_hash FROM staging.participation)
        QUALIFY key_hash = lag(key_hash) OVER (ORDER BY key_hash)
    ) AS repeated ON hash(s.person_id, s.programme_id, s.start_date) = repeated.key_hash
    QUALIFY row_number() OVER (PARTITION BY s.person_id, s.programme_id, s.start_date ORDER BY s.source_file, s.source_row) > 1
) AS repeats
WHERE t.source_file = repeats.source_file AND t.source_row = repeats.source_row;

DELETE FROM quarantine.rows WHERE stage = 'ingest' AND table_name = 'participation';

INSERT INTO quarantine.rows
WITH counts AS (
    -- staging is a subset of raw: as many rows in both, and no row is left to quarantine
    SELECT (SELECT count(*) FROM raw.participation) <> (SELECT count(*) FROM staging.participation) AS any_unstaged
), unstaged AS (
    SELECT r.*
    FROM raw.participation AS r
    ANTI JOIN (SELECT source_file, source_row FROM staging.participation WHERE (SELECT any_unstaged FROM counts)) AS s
        USING (source_file, source_row)
    WHERE (SELECT any_unstaged FROM counts)
), trimmed AS (
    SELECT
        *,
        CASE WHEN person_id LIKE ' %' OR person_id LIKE '% ' OR strlen(person_id) <> length(person_id) THEN NULLIF(trim(person_id), '') ELSE NULLIF(person_id, '') END AS v_person_id,
        CASE WHEN programme_id LIKE ' %' OR programme_id LIKE '% ' OR strlen(programme_id) <> length(programme_id) THEN NULLIF(trim(programme_id), '') ELSE NULLIF(programme_id, '') END AS v_programme_id,
        CASE WHEN start_date LIKE ' %' OR start_date LIKE '% ' OR strlen(start_date) <> length(start_date) THEN NULLIF(trim(start_date), '') ELSE NULLIF(start_date, '') END AS v_start_date,
        CASE WHEN end_date LIKE ' %' OR end_date LIKE '% ' OR strlen(end_date) <> length(end_date) THEN NULLIF(trim(end_date), '') ELSE NULLIF(end_date, '') END AS v_end_date,
        CASE WHEN status LIKE ' %' OR status LIKE '% ' OR strlen(status) <> length(status) THEN NULLIF(trim(status), '') ELSE NULLIF(status, '') END AS v_status,
        CASE WHEN sessions_offered LIKE ' %' OR sessions_offered LIKE '% ' OR strlen(sessions_offered) <> length(sessions_offered) THEN NULLIF(trim(sessions_offered), '') ELSE NULLIF(sessions_offered, '') END AS v_sessions_offered,
        CASE WHEN sessions_attended LIKE ' %' OR sessions_attended LIKE '% ' OR strlen(sessions_attended) <> length(sessions_attended) THEN NULLIF(trim(sessions_attended), '') ELSE NULLIF(sessions_attended, '') END AS v_sessions_attended,
        CASE WHEN mentor_id LIKE ' %' OR mentor_id LIKE '% ' OR strlen(mentor_id) <> length(mentor_id) THEN NULLIF(trim(mentor_id), '') ELSE NULLIF(mentor_id, '') END AS v_mentor_id
    FROM unstaged
), typed AS (
    SELECT
        *,
        v_person_id AS t_person_id,
        v_programme_id AS t_programme_id,
        CASE WHEN v_start_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN TRY_CAST(v_start_date AS DATE) END AS t_start_date,
        CASE WHEN v_end_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN TRY_CAST(v_end_date AS DATE) END AS t_end_date,
        lower(v_status) AS t_status,
        CASE WHEN NOT v_sessions_offered GLOB '*[!0-9]*' THEN TRY_CAST(v_sessions_offered AS BIGINT) WHEN regexp_full_match(v_sessions_offered, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_sessions_offered, '\.0*$', '') AS BIGINT) END AS t_sessions_offered,
        CASE WHEN NOT v_sessions_attended GLOB '*[!0-9]*' THEN TRY_CAST(v_sessions_attended AS BIGINT) WHEN regexp_full_match(v_sessions_attended, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_sessions_attended, '\.0*$', '') AS BIGINT) END AS t_sessions_attended,
        v_mentor_id AS t_mentor_id
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
                WHEN v_start_date IS NULL THEN {'column_name': 'start_date', 'reason': 'missing_key', 'raw_value': start_date, 'note': 'the value is empty'}
                WHEN t_start_date IS NULL THEN {'column_name': 'start_date', 'reason': 'bad_date', 'raw_value': start_date, 'note': 'expected a date written yyyy-mm-dd'}
            END,
            CASE
                WHEN v_end_date IS NULL THEN NULL
                WHEN t_end_date IS NULL THEN {'column_name': 'end_date', 'reason': 'bad_date', 'raw_value': end_date, 'note': 'expected a date written yyyy-mm-dd'}
            END,
            CASE
                WHEN v_status IS NULL THEN {'column_name': 'status', 'reason': 'missing_value', 'raw_value': status, 'note': 'the value is empty'}
                WHEN NOT (list_position(['completed', 'withdrawn', 'ongoing'], t_status) IS NOT NULL) THEN {'column_name': 'status', 'reason': 'out_of_domain', 'raw_value': status, 'note': 'expected one of completed, withdrawn, ongoing'}
            END,
            CASE
                WHEN v_sessions_offered IS NULL THEN {'column_name': 'sessions_offered', 'reason': 'missing_value', 'raw_value': sessions_offered, 'note': 'the value is empty'}
                WHEN t_sessions_offered IS NULL THEN {'column_name': 'sessions_offered', 'reason': 'bad_integer', 'raw_value': sessions_offered, 'note': 'expected a whole number'}
                WHEN t_sessions_offered < 0 OR t_sessions_offered > 1000 THEN {'column_name': 'sessions_offered', 'reason': 'out_of_range', 'raw_value': sessions_offered, 'note': 'expected 0 to 1000'}
            END,
            CASE
                WHEN v_sessions_attended IS NULL THEN {'column_name': 'sessions_attended', 'reason': 'missing_value', 'raw_value': sessions_attended, 'note': 'the value is empty'}
                WHEN t_sessions_attended IS NULL THEN {'column_name': 'sessions_attended', 'reason': 'bad_integer', 'raw_value': sessions_attended, 'note': 'expected a whole number'}
                WHEN t_sessions_attended < 0 OR t_sessions_attended > 1000 THEN {'column_name': 'sessions_attended', 'reason': 'out_of_range', 'raw_value': sessions_attended, 'note': 'expected 0 to 1000'}
            END,
            CASE
                WHEN v_mentor_id IS NULL THEN NULL
            END
        ], lambda p: p IS NOT NULL) END AS found
    FROM typed
), explained AS (
    SELECT
        checked.*,
        CASE WHEN len(found) > 0 THEN found ELSE [{'column_name': 'person_id,programme_id,start_date', 'reason': 'duplicate_key', 'raw_value': checked.person_id || ',' || checked.programme_id || ',' || checked.start_date, 'note': 'key already loaded from ' || kept.source_file || ' row ' || kept.source_row}] END AS problems
    FROM checked
    LEFT JOIN staging.participation AS kept ON len(checked.found) = 0 AND kept.person_id = checked.t_person_id AND kept.programme_id = checked.t_programme_id AND kept.start_date = checked.t_start_date
)
SELECT
    'participation' AS table_name,
    source_file,
    source_row,
    problems[1].column_name,
    problems[1].raw_value,
    problems[1].reason,
    array_to_string(list_transform(problems, lambda p: concat_ws(' ',
        p.column_name || ':', p.reason, '''' || p.raw_value || '''', '(' || p.note || ')')), '; ') AS detail,
    to_json({'person_id': person_id, 'programme_id': programme_id, 'start_date': start_date, 'end_date': end_date, 'status': status, 'sessions_offered': sessions_offered, 'sessions_attended': sessions_attended, 'mentor_id': mentor_id, 'source_file': source_file, 'source_row': source_row})::VARCHAR AS raw_record,
    'ingest' AS stage,
    loaded_at AS quarantined_at
FROM explained
ORDER BY source_file, source_row;
