-- staging.offences: rows of raw.offences typed by the contract. A row that cannot be typed, or
-- repeats a key already loaded (by source_file, then source_row), goes to quarantine.rows
-- instead, with its first problem as reason and column and every problem in detail.
-- Generated from desist/contract.py by `python -m desist.ingest`: edit the contract, not this file.
CREATE OR REPLACE TABLE staging.offences (
    offence_id VARCHAR USING COMPRESSION uncompressed,
    person_id VARCHAR,
    offence_date DATE,
    proven_date DATE,
    offence_group VARCHAR,
    severity BIGINT,
    disposal VARCHAR,
    source_file VARCHAR,
    source_row BIGINT
);

INSERT INTO staging.offences
WITH trimmed AS (
    SELECT
        *,
        CASE WHEN offence_id LIKE ' %' OR offence_id LIKE '% ' OR strlen(offence_id) <> length(offence_id) THEN NULLIF(trim(offence_id), '') ELSE NULLIF(offence_id, '') END AS v_offence_id,
        CASE WHEN person_id LIKE ' %' OR person_id LIKE '% ' OR strlen(person_id) <> length(person_id) THEN NULLIF(trim(person_id), '') ELSE NULLIF(person_id, '') END AS v_person_id,
        CASE WHEN offence_date LIKE ' %' OR offence_date LIKE '% ' OR strlen(offence_date) <> length(offence_date) THEN NULLIF(trim(offence_date), '') ELSE NULLIF(offence_date, '') END AS v_offence_date,
        CASE WHEN proven_date LIKE ' %' OR proven_date LIKE '% ' OR strlen(proven_date) <> length(proven_date) THEN NULLIF(trim(proven_date), '') ELSE NULLIF(proven_date, '') END AS v_proven_date,
        CASE WHEN offence_group LIKE ' %' OR offence_group LIKE '% ' OR strlen(offence_group) <> length(offence_group) THEN NULLIF(trim(offence_group), '') ELSE NULLIF(offence_group, '') END AS v_offence_group,
        CASE WHEN severity LIKE ' %' OR severity LIKE '% ' OR strlen(severity) <> length(severity) THEN NULLIF(trim(severity), '') ELSE NULLIF(severity, '') END AS v_severity,
        CASE WHEN disposal LIKE ' %' OR disposal LIKE '% ' OR strlen(disposal) <> length(disposal) THEN NULLIF(trim(disposal), '') ELSE NULLIF(disposal, '') END AS v_disposal
    FROM raw.offences
), typed AS (
    SELECT
        *,
        v_offence_id AS t_offence_id,
        v_person_id AS t_person_id,
        CASE WHEN v_offence_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN TRY_CAST(v_offence_date AS DATE) END AS t_offence_date,
        CASE WHEN v_proven_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN TRY_CAST(v_proven_date AS DATE) END AS t_proven_date,
        lower(v_offence_group) AS t_offence_group,
        CASE WHEN NOT v_severity GLOB '*[!0-9]*' THEN TRY_CAST(v_severity AS BIGINT) WHEN regexp_full_match(v_severity, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_severity, '\.0*$', '') AS BIGINT) END AS t_severity,
        lower(v_disposal) AS t_disposal
    FROM trimmed
)
SELECT
    t_offence_id::VARCHAR AS offence_id,
    t_person_id::VARCHAR AS person_id,
    t_offence_date::DATE AS offence_date,
    t_proven_date::DATE AS proven_date,
    t_offence_group::VARCHAR AS offence_group,
    t_severity::BIGINT AS severity,
    t_disposal::VARCHAR AS disposal,
    source_file,
    source_row
FROM typed
WHERE row_error IS NULL
    AND t_offence_id IS NOT NULL
    AND t_person_id IS NOT NULL
    AND t_offence_date IS NOT NULL
    AND t_proven_date IS NOT NULL
    AND t_offence_group IS NOT NULL AND list_position(['violence', 'sexual', 'robbery', 'theft', 'burglary', 'criminal_damage', 'drugs', 'public_order', 'fraud', 'motoring', 'other'], t_offence_group) IS NOT NULL
    AND t_severity IS NOT NULL AND t_severity >= 1 AND t_severity <= 5
    AND t_disposal IS NOT NULL AND list_position(['custody', 'community', 'fine', 'caution', 'other'], t_disposal) IS NOT NULL;

-- A key loaded again keeps its first row (by source_file, then source_row); the later ones go
-- to quarantine below. Repeats are found by sorting the keys' 64-bit hashes (grouping the keys
-- themselves builds a hash table of millions of texts); only the rows whose hash repeats are
-- then ranked by the key itself, so a hash collision ranks a few rows and changes nothing.
DELETE FROM staging.offences AS t
USING (
    SELECT s.source_file, s.source_row
    FROM staging.offences AS s
    SEMI JOIN (
        SELECT key_hash
        FROM (SELECT hash(offence_id) AS key_hash FROM staging.offences)
        QUALIFY key_hash = lag(key_hash) OVER (ORDER BY key_hash)
    ) AS repeated ON hash(s.offence_id) = repeated.key_hash
    QUALIFY row_number() OVER (PARTITION BY s.offence_id ORDER BY s.source_file, s.source_row) > 1
) AS repeats
WHERE t.source_file = repeats.source_file AND t.source_row = repeats.source_row;

DELETE FROM quarantine.rows WHERE stage = 'ingest' AND table_name = 'offences';

INSERT INTO quarantine.rows
WITH counts AS (
    -- staging is a subset of raw: as many rows in both, and no row is left to quarantine
    SELECT (SELECT count(*) FROM raw.offences) <> (SELECT count(*) FROM staging.offences) AS any_unstaged
), unstaged AS (
    SELECT r.*
    FROM raw.offences AS r
    ANTI JOIN (SELECT source_file, source_row FROM staging.offences WHERE (SELECT any_unstaged FROM counts)) AS s
        USING (source_file, source_row)
    WHERE (SELECT any_unstaged FROM counts)
), trimmed AS (
    SELECT
        *,
        CASE WHEN offence_id LIKE ' %' OR offence_id LIKE '% ' OR strlen(offence_id) <> length(offence_id) THEN NULLIF(trim(offence_id), '') ELSE NULLIF(offence_id, '') END AS v_offence_id,
        CASE WHEN person_id LIKE ' %' OR person_id LIKE '% ' OR strlen(person_id) <> length(person_id) THEN NULLIF(trim(person_id), '') ELSE NULLIF(person_id, '') END AS v_person_id,
        CASE WHEN offence_date LIKE ' %' OR offence_date LIKE '% ' OR strlen(offence_date) <> length(offence_date) THEN NULLIF(trim(offence_date), '') ELSE NULLIF(offence_date, '') END AS v_offence_date,
        CASE WHEN proven_date LIKE ' %' OR proven_date LIKE '% ' OR strlen(proven_date) <> length(proven_date) THEN NULLIF(trim(proven_date), '') ELSE NULLIF(proven_date, '') END AS v_proven_date,
        CASE WHEN offence_group LIKE ' %' OR offence_group LIKE '% ' OR strlen(offence_group) <> length(offence_group) THEN NULLIF(trim(offence_group), '') ELSE NULLIF(offence_group, '') END AS v_offence_group,
        CASE WHEN severity LIKE ' %' OR severity LIKE '% ' OR strlen(severity) <> length(severity) THEN NULLIF(trim(severity), '') ELSE NULLIF(severity, '') END AS v_severity,
        CASE WHEN disposal LIKE ' %' OR disposal LIKE '% ' OR strlen(disposal) <> length(disposal) THEN NULLIF(trim(disposal), '') ELSE NULLIF(disposal, '') END AS v_disposal
    FROM unstaged
), typed AS (
    SELECT
        *,
        v_offence_id AS t_offence_id,
        v_person_id AS t_person_id,
        CASE WHEN v_offence_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN TRY_CAST(v_offence_date AS DATE) END AS t_offence_date,
        CASE WHEN v_proven_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN TRY_CAST(v_proven_date AS DATE) END AS t_proven_date,
        lower(v_offence_group) AS t_offence_group,
        CASE WHEN NOT v_severity GLOB '*[!0-9]*' THEN TRY_CAST(v_severity AS BIGINT) WHEN regexp_full_match(v_severity, '[+-]?[0-9]+(\.0*)?') THEN TRY_CAST(regexp_replace(v_severity, '\.0*$', '') AS BIGINT) END AS t_severity,
        lower(v_disposal) AS t_disposal
    FROM trimmed
), checked AS (
    SELECT
        *,
        CASE WHEN row_error IS NOT NULL THEN [{'column_name': NULL::VARCHAR, 'reason': 'malformed_row', 'raw_value': NULL::VARCHAR, 'note': row_error}]
        ELSE list_filter([
            CASE
                WHEN v_offence_id IS NULL THEN {'column_name': 'offence_id', 'reason': 'missing_key', 'raw_value': offence_id, 'note': 'the value is empty'}
            END,
            CASE
                WHEN v_person_id IS NULL THEN {'column_name': 'person_id', 'reason': 'missing_value', 'raw_value': person_id, 'note': 'the value is empty'}
            END,
            CASE
                WHEN v_offence_date IS NULL THEN {'column_name': 'offence_date', 'reason': 'missing_value', 'raw_value': offence_date, 'note': 'the value is empty'}
                WHEN t_offence_date IS NULL THEN {'column_name': 'offence_date', 'reason': 'bad_date', 'raw_value': offence_date, 'note': 'expected a date written yyyy-mm-dd'}
            END,
            CASE
                WHEN v_proven_date IS NULL THEN {'column_name': 'proven_date', 'reason': 'missing_value', 'raw_value': proven_date, 'note': 'the value is empty'}
                WHEN t_proven_date IS NULL THEN {'column_name': 'proven_date', 'reason': 'bad_date', 'raw_value': proven_date, 'note': 'expected a date written yyyy-mm-dd'}
            END,
            CASE
                WHEN v_offence_group IS NULL THEN {'column_name': 'offence_group', 'reason': 'missing_value', 'raw_value': offence_group, 'note': 'the value is empty'}
                WHEN NOT (list_position(['violence', 'sexual', 'robbery', 'theft', 'burglary', 'criminal_damage', 'drugs', 'public_order', 'fraud', 'motoring', 'other'], t_offence_group) IS NOT NULL) THEN {'column_name': 'offence_group', 'reason': 'out_of_domain', 'raw_value': offence_group, 'note': 'expected one of violence, sexual, robbery, theft, burglary, criminal_damage, drugs, public_order, fraud, motoring, other'}
            END,
            CASE
                WHEN v_severity IS NULL THEN {'column_name': 'severity', 'reason': 'missing_value', 'raw_value': severity, 'note': 'the value is empty'}
                WHEN t_severity IS NULL THEN {'column_name': 'severity', 'reason': 'bad_integer', 'raw_value': severity, 'note': 'expected a whole number'}
                WHEN t_severity < 1 OR t_severity > 5 THEN {'column_name': 'severity', 'reason': 'out_of_range', 'raw_value': severity, 'note': 'expected 1 to 5'}
            END,
            CASE
                WHEN v_disposal IS NULL THEN {'column_name': 'disposal', 'reason': 'missing_value', 'raw_value': disposal, 'note': 'the value is empty'}
                WHEN NOT (list_position(['custody', 'community', 'fine', 'caution', 'other'], t_disposal) IS NOT NULL) THEN {'column_name': 'disposal', 'reason': 'out_of_domain', 'raw_value': disposal, 'note': 'expected one of custody, community, fine, caution, other'}
            END
        ], lambda p: p IS NOT NULL) END AS found
    FROM typed
), explained AS (
    SELECT
        checked.*,
        CASE WHEN len(found) > 0 THEN found ELSE [{'column_name': 'offence_id', 'reason': 'duplicate_key', 'raw_value': checked.offence_id, 'note': 'key already loaded from ' || kept.source_file || ' row ' || kept.source_row}] END AS problems
    FROM checked
    LEFT JOIN staging.offences AS kept ON len(checked.found) = 0 AND kept.offence_id = checked.t_offence_id
)
SELECT
    'offences' AS table_name,
    source_file,
    source_row,
    problems[1].column_name,
    problems[1].raw_value,
    problems[1].reason,
    array_to_string(list_transform(problems, lambda p: concat_ws(' ',
        p.column_name || ':', p.reason, '''' || p.raw_value || '''', '(' || p.note || ')')), '; ') AS detail,
    to_json({'offence_id': offence_id, 'person_id': person_id, 'offence_date': offence_date, 'proven_date': proven_date, 'offence_group': offence_group, 'severity': severity, 'disposal': disposal, 'source_file': source_file, 'source_row': source_row})::VARCHAR AS raw_record,
    'ingest' AS stage,
    loaded_at AS quarantined_at
FROM explained
ORDER BY source_file, source_row;
