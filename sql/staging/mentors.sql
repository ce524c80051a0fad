-- staging.mentors: rows of raw.mentors typed by the contract. A row that cannot be typed, or
-- repeats a key already loaded (by source_file, then source_row), goes to quarantine.rows
-- instead, with its first problem as reason and column and every problem in detail.
-- Generated from desist/contract.py by `python -m desist.ingest`: edit the contract, not this file.
CREATE OR REPLACE TABLE staging.mentors (
    mentor_id VARCHAR USING COMPRESSION uncompressed,
    programme_id VARCHAR,
    age_band VARCHAR,
    sex VARCHAR,
    lived_experience BOOLEAN,
    trained_date DATE,
    source_file VARCHAR,
    source_row BIGINT
);

INSERT INTO staging.mentors
WITH trimmed AS (
    SELECT
        *,
        CASE WHEN mentor_id LIKE ' %' OR mentor_id LIKE '% ' OR strlen(mentor_id) <> length(mentor_id) THEN NULLIF(trim(mentor_id), '') ELSE NULLIF(mentor_id, '') END AS v_mentor_id,
        CASE WHEN programme_id LIKE ' %' OR programme_id LIKE '% ' OR strlen(programme_id) <> length(programme_id) THEN NULLIF(trim(programme_id), '') ELSE NULLIF(programme_id, '') END AS v_programme_id,
        CASE WHEN age_band LIKE ' %' OR age_band LIKE '% ' OR strlen(age_band) <> length(age_band) THEN NULLIF(trim(age_band), '') ELSE NULLIF(age_band, '') END AS v_age_band,
        CASE WHEN sex LIKE ' %' OR sex LIKE '% ' OR strlen(sex) <> length(sex) THEN NULLIF(trim(sex), '') ELSE NULLIF(sex, '') END AS v_sex,
        CASE WHEN lived_experience LIKE ' %' OR lived_experience LIKE '% ' OR strlen(lived_experience) <> length(lived_experience) THEN NULLIF(trim(lived_experience), '') ELSE NULLIF(lived_experience, '') END AS v_lived_experience,
        CASE WHEN trained_date LIKE ' %' OR trained_date LIKE '% ' OR strlen(trained_date) <> length(trained_date) THEN NULLIF(trim(trained_date), '') ELSE NULLIF(trained_date, '') END AS v_trained_date
    FROM raw.mentors
), typed AS (
    SELECT
        *,
        v_mentor_id AS t_mentor_id,
        v_programme_id AS t_programme_id,
        lower(v_age_band) AS t_age_band,
        lower(v_sex) AS t_sex,
        CASE WHEN lower(v_lived_experience) IN ('true', 'yes', '1') THEN true WHEN lower(v_lived_experience) IN ('false', 'no', '0') THEN false END AS t_lived_experience,
        CASE WHEN v_trained_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN TRY_CAST(v_trained_date AS DATE) END AS t_trained_date
    FROM trimmed
)
SELECT
    t_mentor_id::VARCHAR AS mentor_id,
    t_programme_id::VARCHAR AS programme_id,
    t_age_band::VARCHAR AS age_band,
    t_sex::VARCHAR AS sex,
    t_lived_experience::BOOLEAN AS lived_experience,
    t_trained_date::DATE AS trained_date,
    source_file,
    source_row
FROM typed
WHERE row_error IS NULL
    AND t_mentor_id IS NOT NULL
    AND t_programme_id IS NOT NULL
    AND t_age_band IS NOT NULL AND list_position(['18-24', '25-34', '35-44', '45-54', '55-64', '65+'], t_age_band) IS NOT NULL
    AND t_sex IS NOT NULL AND list_position(['female', 'male', 'other'], t_sex) IS NOT NULL
    AND t_lived_experience IS NOT NULL
    AND (v_trained_date IS NULL OR (t_trained_date IS NOT NULL));

-- A key loaded again keeps its first row (by source_file, then source_row); the later ones go
-- to quarantine below. Repeats are found by sorting the keys' 64-bit hashes (grouping the keys
-- themselves builds a hash table of millions of texts); only the rows whose hash repeats are
-- then ranked by the key itself, so a hash collision ranks a few rows and changes nothing.
DELETE FROM staging.mentors AS t
USING (
    SELECT s.source_file, s.source_row
    FROM staging.mentors AS s
    SEMI JOIN (
        SELECT key_hash
        FROM (SELECT hash(mentor_id) AS key_hash FROM staging.mentors)
        QUALIFY key_hash = lag(key_hash) OVER (ORDER BY key_hash)
    ) AS repeated ON hash(s.mentor_id) = repeated.key_hash
    QUALIFY row_number() OVER (PARTITION BY s.mentor_id ORDER BY s.source_file, s.source_row) > 1
) AS repeats
WHERE t.source_file = repeats.source_file AND t.source_row = repeats.source_row;

DELETE FROM quarantine.rows WHERE stage = 'ingest' AND table_name = 'mentors';

INSERT INTO quarantine.rows
WITH counts AS (
    -- staging is a subset of raw: as many rows in both, and no row is left to quarantine
    SELECT (SELECT count(*) FROM raw.mentors) <> (SELECT count(*) FROM staging.mentors) AS any_unstaged
), unstaged AS (
    SELECT r.*
    FROM raw.mentors AS r
    ANTI JOIN (SELECT source_file, source_row FROM staging.mentors WHERE (SELECT any_unstaged FROM counts)) AS s
        USING (source_file, source_row)
    WHERE (SELECT any_unstaged FROM counts)
), trimmed AS (
    SELECT
        *,
        CASE WHEN mentor_id LIKE ' %' OR mentor_id LIKE '% ' OR strlen(mentor_id) <> length(mentor_id) THEN NULLIF(trim(mentor_id), '') ELSE NULLIF(mentor_id, '') END AS v_mentor_id,
        CASE WHEN programme_id LIKE ' %' OR programme_id LIKE '% ' OR strlen(programme_id) <> length(programme_id) THEN NULLIF(trim(programme_id), '') ELSE NULLIF(programme_id, '') END AS v_programme_id,
        CASE WHEN age_band LIKE ' %' OR age_band LIKE '% ' OR strlen(age_band) <> length(age_band) THEN NULLIF(trim(age_band), '') ELSE NULLIF(age_band, '') END AS v_age_band,
        CASE WHEN sex LIKE ' %' OR sex LIKE '% ' OR strlen(sex) <> length(sex) THEN NULLIF(trim(sex), '') ELSE NULLIF(sex, '') END AS v_sex,
        CASE WHEN lived_experience LIKE ' %' OR lived_experience LIKE '% ' OR strlen(lived_experience) <> length(lived_experience) THEN NULLIF(trim(lived_experience), '') ELSE NULLIF(lived_experience, '') END AS v_lived_experience,
        CASE WHEN trained_date LIKE ' %' OR trained_date LIKE '% ' OR strlen(trained_date) <> length(trained_date) THEN NULLIF(trim(trained_date), '') ELSE NULLIF(trained_date, '') END AS v_trained_date
    FROM unstaged
), typed AS (
    SELECT
        *,
        v_mentor_id AS t_mentor_id,
        v_programme_id AS t_programme_id,
        lower(v_age_band) AS t_age_band,
        lower(v_sex) AS t_sex,
        CASE WHEN lower(v_lived_experience) IN ('true', 'yes', '1') THEN true WHEN lower(v_lived_experience) IN ('false', 'no', '0') THEN false END AS t_lived_experience,
        CASE WHEN v_trained_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN TRY_CAST(v_trained_date AS DATE) END AS t_trained_date
    FROM trimmed
), checked AS (
    SELECT
        *,
        CASE WHEN row_error IS NOT NULL THEN [{'column_name': NULL::VARCHAR, 'reason': 'malformed_row', 'raw_value': NULL::VARCHAR, 'note': row_error}]
        ELSE list_filter([
            CASE
                WHEN v_mentor_id IS NULL THEN {'column_name': 'mentor_id', 'reason': 'missing_key', 'raw_value': mentor_id, 'note': 'the value is empty'}
            END,
            CASE
                WHEN v_programme_id IS NULL THEN {'column_name': 'programme_id', 'reason': 'missing_value', 'raw_value': programme_id, 'note': 'the value is empty'}
            END,
            CASE
                WHEN v_age_band IS NULL THEN {'column_name': 'age_band', 'reason': 'missing_value', 'raw_value': age_band, 'note': 'the value is empty'}
                WHEN NOT (list_position(['18-24', '25-34', '35-44', '45-54', '55-64', '65+'], t_age_band) IS NOT NULL) THEN {'column_name': 'age_band', 'reason': 'out_of_domain', 'raw_value': age_band, 'note': 'expected one of 18-24, 25-34, 35-44, 45-54, 55-64, 65+'}
            END,
            CASE
                WHEN v_sex IS NULL THEN {'column_name': 'sex', 'reason': 'missing_value', 'raw_value': sex, 'note': 'the value is empty'}
                WHEN NOT (list_position(['female', 'male', 'other'], t_sex) IS NOT NULL) THEN {'column_name': 'sex', 'reason': 'out_of_domain', 'raw_value': sex, 'note': 'expected one of female, male, other'}
            END,
            CASE
                WHEN v_lived_experience IS NULL THEN {'column_name': 'lived_experience', 'reason': 'missing_value', 'raw_value': lived_experience, 'note': 'the value is empty'}
                WHEN t_lived_experience IS NULL THEN {'column_name': 'lived_experience', 'reason': 'bad_boolean', 'raw_value': lived_experience, 'note': 'expected true/false, yes/no or 1/0'}
            END,
            CASE
                WHEN v_trained_date IS NULL THEN NULL
                WHEN t_trained_date IS NULL THEN {'column_name': 'trained_date', 'reason': 'bad_date', 'raw_value': trained_date, 'note': 'expected a date written yyyy-mm-dd'}
            END
        ], lambda p: p IS NOT NULL) END AS found
    FROM typed
), explained AS (
    SELECT
        checked.*,
        CASE WHEN len(found) > 0 THEN found ELSE [{'column_name': 'mentor_id', 'reason': 'duplicate_key', 'raw_value': checked.mentor_id, 'note': 'key already loaded from ' || kept.source_file || ' row ' || kept.source_row}] END AS problems
    FROM checked
    LEFT JOIN staging.mentors AS kept ON len(checked.found) = 0 AND kept.mentor_id = checked.t_mentor_id
)
SELECT
    'mentors' AS table_name,
    source_file,
    source_row,
    problems[1].column_name,
    problems[1].raw_value,
    problems[1].reason,
    array_to_string(list_transform(problems, lambda p: concat_ws(' ',
        p.column_name || ':', p.reason, '''' || p.raw_value || '''', '(' || p.note || ')')), '; ') AS detail,
    to_json({'mentor_id': mentor_id, 'programme_id': programme_id, 'age_band': age_band, 'sex': sex, 'lived_experience': lived_experience, 'trained_date': trained_date, 'source_file': source_file, 'source_row': source_row})::VARCHAR AS raw_record,
    'ingest' AS stage,
    loaded_at AS quarantined_at
FROM explained
ORDER BY source_file, source_row;
