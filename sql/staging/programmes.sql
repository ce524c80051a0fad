-- staging.programmes: rows of raw.programmes typed by the contract. A row that cannot be typed, or
-- repeats a key already loaded (by source_file, then source_row), goes to quarantine.rows
-- instead, with its first problem as reason and column and every problem in detail.
-- Generated from desist/contract.py by `python -m desist.ingest`: edit the contract, not this file.
CREATE OR REPLACE TABLE staging.programmes (
    programme_id VARCHAR USING COMPRESSION uncompressed,
    name VARCHAR,
    programme_type VARCHAR,
    provider VARCHAR,
    source_file VARCHAR,
    source_row BIGINT
);

INSERT INTO staging.programmes
WITH trimmed AS (
    SELECT
        *,
        CASE WHEN programme_id LIKE ' %' OR programme_id LIKE '% ' OR strlen(programme_id) <> length(programme_id) THEN NULLIF(trim(programme_id), '') ELSE NULLIF(programme_id, '') END AS v_programme_id,
        CASE WHEN name LIKE ' %' OR name LIKE '% ' OR strlen(name) <> length(name) THEN NULLIF(trim(name), '') ELSE NULLIF(name, '') END AS v_name,
        CASE WHEN programme_type LIKE ' %' OR programme_type LIKE '% ' OR strlen(programme_type) <> length(programme_type) THEN NULLIF(trim(programme_type), '') ELSE NULLIF(programme_type, '') END AS v_programme_type,
        CASE WHEN provider LIKE ' %' OR provider LIKE '% ' OR strlen(provider) <> length(provider) THEN NULLIF(trim(provider), '') ELSE NULLIF(provider, '') END AS v_provider
    FROM raw.programmes
), typed AS (
    SELECT
        *,
        v_programme_id AS t_programme_id,
        v_name AS t_name,
        lower(v_programme_type) AS t_programme_type,
        v_provider AS t_provider
    FROM trimmed
)
SELECT
    t_programme_id::VARCHAR AS programme_id,
    t_name::VARCHAR AS name,
    t_programme_type::VARCHAR AS programme_type,
    t_provider::VARCHAR AS provider,
    source_file,
    source_row
FROM typed
WHERE row_error IS NULL
    AND t_programme_id IS NOT NULL
    AND t_name IS NOT NULL
    AND t_programme_type IS NOT NULL AND list_position(['structured_mentoring', 'peer_mentoring', 'community_support', 'rehabilitative_workshop'], t_programme_type) IS NOT NULL
    AND t_provider IS NOT NULL;

-- A key loaded again keeps its first row (by source_file, then source_row); the later ones go
-- to quarantine below. Repeats are found by sorting the keys' 64-bit hashes (grouping the keys
-- themselves builds a hash table of millions of texts); only the rows whose hash repeats are
-- then ranked by the key itself, so a hash collision ranks a few rows and changes nothing.
DELETE FROM staging.programmes AS t
USING (
    SELECT s.source_file, s.source_row
    FROM staging.programmes AS s
    SEMI JOIN (
        SELECT key_hash
        FROM (SELECT hash(programme_id) AS key_hash FROM staging.programmes)
        QUALIFY key_hash = lag(key_hash) OVER (ORDER BY key_hash)
    ) AS repeated ON hash(s.programme_id) = repeated.key_hash
    QUALIFY row_number() OVER (PARTITION BY s.programme_id ORDER BY s.source_file, s.source_row) > 1
) AS repeats
WHERE t.source_file = repeats.source_file AND t.source_row = repeats.source_row;

DELETE FROM quarantine.rows WHERE stage = 'ingest' AND table_name = 'programmes';

INSERT INTO quarantine.rows
WITH counts AS (
    -- staging is a subset of raw: as many rows in both, and no row is left to quarantine
    SELECT (SELECT count(*) FROM raw.programmes) <> (SELECT count(*) FROM staging.programmes) AS any_unstaged
), unstaged AS (
    SELECT r.*
    FROM raw.programmes AS r
    ANTI JOIN (SELECT source_file, source_row FROM staging.programmes WHERE (SELECT any_unstaged FROM counts)) AS s
        USING (source_file, source_row)
    WHERE (SELECT any_unstaged FROM counts)
), trimmed AS (
    SELECT
        *,
        CASE WHEN programme_id LIKE ' %' OR programme_id LIKE '% ' OR strlen(programme_id) <> length(programme_id) THEN NULLIF(trim(programme_id), '') ELSE NULLIF(programme_id, '') END AS v_programme_id,
        CASE WHEN name LIKE ' %' OR name LIKE '% ' OR strlen(name) <> length(name) THEN NULLIF(trim(name), '') ELSE NULLIF(name, '') END AS v_name,
        CASE WHEN programme_type LIKE ' %' OR programme_type LIKE '% ' OR strlen(programme_type) <> length(programme_type) THEN NULLIF(trim(programme_type), '') ELSE NULLIF(programme_type, '') END AS v_programme_type,
        CASE WHEN provider LIKE ' %' OR provider LIKE '% ' OR strlen(provider) <> length(provider) THEN NULLIF(trim(provider), '') ELSE NULLIF(provider, '') END AS v_provider
    FROM unstaged
), typed AS (
    SELECT
        *,
        v_programme_id AS t_programme_id,
        v_name AS t_name,
        lower(v_programme_type) AS t_programme_type,
        v_provider AS t_provider
    FROM trimmed
), checked AS (
    SELECT
        *,
        CASE WHEN row_error IS NOT NULL THEN [{'column_name': NULL::VARCHAR, 'reason': 'malformed_row', 'raw_value': NULL::VARCHAR, 'note': row_error}]
        ELSE list_filter([
            CASE
                WHEN v_programme_id IS NULL THEN {'column_name': 'programme_id', 'reason': 'missing_key', 'raw_value': programme_id, 'note': 'the value is empty'}
            END,
            CASE
                WHEN v_name IS NULL THEN {'column_name': 'name', 'reason': 'missing_value', 'raw_value': name, 'note': 'the value is empty'}
            END,
            CASE
                WHEN v_programme_type IS NULL THEN {'column_name': 'programme_type', 'reason': 'missing_value', 'raw_value': programme_type, 'note': 'the value is empty'}
                WHEN NOT (list_position(['structured_mentoring', 'peer_mentoring', 'community_support', 'rehabilitative_workshop'], t_programme_type) IS NOT NULL) THEN {'column_name': 'programme_type', 'reason': 'out_of_domain', 'raw_value': programme_type, 'note': 'expected one of structured_mentoring, peer_mentoring, community_support, rehabilitative_workshop'}
            END,
            CASE
                WHEN v_provider IS NULL THEN {'column_name': 'provider', 'reason': 'missing_value', 'raw_value': provider, 'note': 'the value is empty'}
            END
        ], lambda p: p IS NOT NULL) END AS found
    FROM typed
), explained AS (
    SELECT
        checked.*,
        CASE WHEN len(found) > 0 THEN found ELSE [{'column_name': 'programme_id', 'reason': 'duplicate_key', 'raw_value': checked.programme_id, 'note': 'key already loaded from ' || kept.source_file || ' row ' || kept.source_row}] END AS problems
    FROM checked
    LEFT JOIN staging.programmes AS kept ON len(checked.found) = 0 AND kept.programme_id = checked.t_programme_id
)
SELECT
    'programmes' AS table_name,
    source_file,
    source_row,
    problems[1].column_name,
    problems[1].raw_value,
    problems[1].reason,
    array_to_string(list_transform(problems, lambda p: concat_ws(' ',
        p.column_name || ':', p.reason, '''' || p.raw_value || '''', '(' || p.note || ')')), '; ') AS detail,
    to_json({'programme_id': programme_id, 'name': name, 'programme_type': programme_type, 'provider': provider, 'source_file': source_file, 'source_row': source_row})::VARCHAR AS raw_record,
    'ingest' AS stage,
    loaded_at AS quarantined_at
FROM explained
ORDER BY source_file, source_row;
