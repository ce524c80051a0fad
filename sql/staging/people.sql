-- staging.people: rows of raw.people typed by the contract. A row that cannot be typed, or
-- repeats a key already loaded (by source_file, then source_row), goes to quarantine.rows
-- instead, with its first problem as reason and column and every problem in detail.
-- Generated from desist/contract.py by `python -m desist.ingest`: edit the contract, not this file.
CREATE OR REPLACE TABLE staging.people (
    person_id VARCHAR USING COMPRESSION uncompressed,
    sex VARCHAR,
    birth_year BIGINT,
    ethnic_group VARCHAR,
    region VARCHAR,
    source_file VARCHAR,
    source_row BIGINT
);

INSERT INTO staging.people
WITH trimmed AS (
    SELECT
        *,
        CASE WHEN person_id LIKE ' %' OR person_id LIKE '% ' OR strlen(person_id) <> length(person_id) THEN NULLIF(trim(person_id), '') ELSE NULLIF(person_id, '') END AS v_person_id,
        CASE WHEN sex LIKE ' %' OR sex LIKE '% ' OR strlen(sex) <> length(sex) THEN NULLIF(trim(sex), '') ELSE NULLIF(sex, '') END AS v_sex,
        CASE WHEN birth_year LIKE ' %' OR birth_year LIKE '% ' OR strlen(birth_year) <> length(birth_year) THEN NULLIF(trim(birth_year), '') ELSE NULLIF(birth_year, '') END AS v_birth_year,
        CASE WHEN ethnic_group LIKE ' %' OR ethnic_group LIKE '% ' OR strlen(ethnic_group) <> length(ethnic_group) THEN NULLIF(trim(ethnic_group), '') ELSE NULLIF(ethnic_group, '') END AS v_ethnic_group,
        CASE WHEN region LIKE ' %' OR region LIKE '% ' OR strlen(region) <> length(region) THEN NULLIF(trim(region), '') ELSE NULLIF(region, '') END AS v_region
    FROM raw.people
), typed AS (
    SELECT
        *,
        v_person_id AS t_person_id,
        lower(v_sex) AS t_sex,
        CASE WHEN NOT v_birth_year GLOB '*[!0-9]*' THEN TRY_CAST(v_birth_year AS BIGINT) WHEN regexp_full_match(v_birth_year, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_birth_year, '\.0*$', '') AS BIGINT) END AS t_birth_year,
        lower(v_ethnic_group) AS t_ethnic_group,
        lower(v_region) AS t_region
    FROM trimmed
)
SELECT
    t_person_id::VARCHAR AS person_id,
    t_sex::VARCHAR AS sex,
    t_birth_year::BIGINT AS birth_year,
    t_ethnic_group::VARCHAR AS ethnic_group,
    t_region::VARCHAR AS region,
    source_file,
    source_row
FROM typed
WHERE row_error IS NULL
    AND t_person_id IS NOT NULL
    AND t_sex IS NOT NULL AND list_position(['female', 'male', 'other'], t_sex) IS NOT NULL
    AND t_birth_year IS NOT NULL AND t_birth_year >= 1900 AND t_birth_year <= 2015
    AND (v_ethnic_group IS NULL OR (t_ethnic_group IS NOT NULL AND list_position(['asian', 'black', 'mixed', 'white', 'other', 'not_stated'], t_ethnic_group) IS NOT NULL))
    AND t_region IS NOT NULL AND list_position(['north_east', 'north_west', 'yorkshire', 'east_midlands', 'west_midlands', 'east', 'london', 'south_east', 'south_west', 'wales'], t_region) IS NOT NULL;

-- A key loaded again keeps its first row (by source_file, then source_row); the later ones go
-- to quarantine below. Repeats are found by sorting the keys' 64-bit hashes (grouping the keys
-- themselves builds a hash table of millions of texts); only the rows whose hash repeats are
-- then ranked by the key itself, so a hash collision ranks a few rows and changes nothing.
DELETE FROM staging.people AS t
USING (
    SELECT s.source_file, s.source_row
    FROM staging.people AS s
    SEMI JOIN (
        SELECT key_hash
        FROM (SELECT hash(person_id) AS key_hash FROM staging.people)
        QUALIFY key_hash = lag(key_hash) OVER (ORDER BY key_hash)
    ) AS repeated ON hash(s.person_id) = repeated.key_hash
    QUALIFY row_number() OVER (PARTITION BY s.person_id ORDER BY s.source_file, s.source_row) > 1
) AS repeats
WHERE t.source_file = repeats.source_file AND t.source_row = repeats.source_row;

DELETE FROM quarantine.rows WHERE stage = 'ingest' AND table_name = 'people';

INSERT INTO quarantine.rows
WITH counts AS (
    -- staging is a subset of raw: as many rows in both, and no row is left to quarantine
    SELECT (SELECT count(*) FROM raw.people) <> (SELECT count(*) FROM staging.people) AS any_unstaged
), unstaged AS (
    SELECT r.*
    FROM raw.people AS r
    ANTI JOIN (SELECT source_file, source_row FROM staging.people WHERE (SELECT any_unstaged FROM counts)) AS s
        USING (source_file, source_row)
    WHERE (SELECT any_unstaged FROM counts)
), trimmed AS (
    SELECT
        *,
        CASE WHEN person_id LIKE ' %' OR person_id LIKE '% ' OR strlen(person_id) <> length(person_id) THEN NULLIF(trim(person_id), '') ELSE NULLIF(person_id, '') END AS v_person_id,
        CASE WHEN sex LIKE ' %' OR sex LIKE '% ' OR strlen(sex) <> length(sex) THEN NULLIF(trim(sex), '') ELSE NULLIF(sex, '') END AS v_sex,
        CASE WHEN birth_year LIKE ' %' OR birth_year LIKE '% ' OR strlen(birth_year) <> length(birth_year) THEN NULLIF(trim(birth_year), '') ELSE NULLIF(birth_year, '') END AS v_birth_year,
        CASE WHEN ethnic_group LIKE ' %' OR ethnic_group LIKE '% ' OR strlen(ethnic_group) <> length(ethnic_group) THEN NULLIF(trim(ethnic_group), '') ELSE NULLIF(ethnic_group, '') END AS v_ethnic_group,
        CASE WHEN region LIKE ' %' OR region LIKE '% ' OR strlen(region) <> length(region) THEN NULLIF(trim(region), '') ELSE NULLIF(region, '') END AS v_region
    FROM unstaged
), typed AS (
    SELECT
        *,
        v_person_id AS t_person_id,
        lower(v_sex) AS t_sex,
        CASE WHEN NOT v_birth_year GLOB '*[!0-9]*' THEN TRY_CAST(v_birth_year AS BIGINT) WHEN regexp_full_match(v_birth_year, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_birth_year, '\.0*$', '') AS BIGINT) END AS t_birth_year,
        lower(v_ethnic_group) AS t_ethnic_group,
        lower(v_region) AS t_region
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
                WHEN v_sex IS NULL THEN {'column_name': 'sex', 'reason': 'missing_value', 'raw_value': sex, 'note': 'the value is empty'}
                WHEN NOT (list_position(['female', 'male', 'other'], t_sex) IS NOT NULL) THEN {'column_name': 'sex', 'reason': 'out_of_domain', 'raw_value': sex, 'note': 'expected one of female, male, other'}
            END,
            CASE
                WHEN v_birth_year IS NULL THEN {'column_name': 'birth_year', 'reason': 'missing_value', 'raw_value': birth_year, 'note': 'the value is empty'}
                WHEN t_birth_year IS NULL THEN {'column_name': 'birth_year', 'reason': 'bad_integer', 'raw_value': birth_year, 'note': 'expected a whole number'}
                WHEN t_birth_year < 1900 OR t_birth_year > 2015 THEN {'column_name': 'birth_year', 'reason': 'out_of_range', 'raw_value': birth_year, 'note': 'expected 1900 to 2015'}
            END,
            CASE
                WHEN v_ethnic_group IS NULL THEN NULL
                WHEN NOT (list_position(['asian', 'black', 'mixed', 'white', 'other', 'not_stated'], t_ethnic_group) IS NOT NULL) THEN {'column_name': 'ethnic_group', 'reason': 'out_of_domain', 'raw_value': ethnic_group, 'note': 'expected one of asian, black, mixed, white, other, not_stated'}
            END,
            CASE
                WHEN v_region IS NULL THEN {'column_name': 'region', 'reason': 'missing_value', 'raw_value': region, 'note': 'the value is empty'}
                WHEN NOT (list_position(['north_east', 'north_west', 'yorkshire', 'east_midlands', 'west_midlands', 'east', 'london', 'south_east', 'south_west', 'wales'], t_region) IS NOT NULL) THEN {'column_name': 'region', 'reason': 'out_of_domain', 'raw_value': region, 'note': 'expected one of north_east, north_west, yorkshire, east_midlands, west_midlands, east, london, south_east, south_west, wales'}
            END
        ], lambda p: p IS NOT NULL) END AS found
    FROM typed
), explained AS (
    SELECT
        checked.*,
        CASE WHEN len(found) > 0 THEN found ELSE [{'column_name': 'person_id', 'reason': 'duplicate_key', 'raw_value': checked.person_id, 'note': 'key already loaded from ' || kept.source_file || ' row ' || kept.source_row}] END AS problems
    FROM checked
    LEFT JOIN staging.people AS kept ON len(checked.found) = 0 AND kept.person_id = checked.t_person_id
)
SELECT
    'people' AS table_name,
    source_file,
    source_row,
    problems[1].column_name,
    problems[1].raw_value,
    problems[1].reason,
    array_to_string(list_transform(problems, lambda p: concat_ws(' ',
        p.column_name || ':', p.reason, '''' || p.raw_value || '''', '(' || p.note || ')')), '; ') AS detail,
    to_json({'person_id': person_id, 'sex': sex, 'birth_year': birth_year, 'ethnic_group': ethnic_group, 'region': region, 'source_file': source_file, 'source_row': source_row})::VARCHAR AS raw_record,
    'ingest' AS stage,
    loaded_at AS quarantined_at
FROM explained
ORDER BY source_file, source_row;
