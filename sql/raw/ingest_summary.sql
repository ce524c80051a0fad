-- raw.ingest_summary: one row per landing file: what was read, loaded, quarantined and rejected.
-- For every file rows_loaded + rows_quarantined + rows_rejected = rows_read; a rejected file's
-- rows are all rejected, an ignored or removed file has no rows. sha256 is NULL for a removed file.
-- A CSV file's physical lines: lines = header_lines + blank_lines + continued_lines + rows_read.
-- Generated from desist/contract.py by `python -m desist.ingest`: edit the contract, not this file.
CREATE OR REPLACE TABLE raw.ingest_summary AS
WITH staged AS (
    SELECT 'people' AS table_name, source_file, count(*) AS n FROM staging.people GROUP BY source_file
    UNION ALL SELECT 'index_events' AS table_name, source_file, count(*) AS n FROM staging.index_events GROUP BY source_file
    UNION ALL SELECT 'offences' AS table_name, source_file, count(*) AS n FROM staging.offences GROUP BY source_file
    UNION ALL SELECT 'programmes' AS table_name, source_file, count(*) AS n FROM staging.programmes GROUP BY source_file
    UNION ALL SELECT 'participation' AS table_name, source_file, count(*) AS n FROM staging.participation GROUP BY source_file
    UNION ALL SELECT 'mentors' AS table_name, source_file, count(*) AS n FROM staging.mentors GROUP BY source_file
    UNION ALL SELECT 'assessments' AS table_name, source_file, count(*) AS n FROM staging.assessments GROUP BY source_file
    UNION ALL SELECT 'feedback' AS table_name, source_file, count(*) AS n FROM staging.feedback GROUP BY source_file
), by_reason AS (
    SELECT table_name, source_file, reason, count(*) AS n
    FROM quarantine.rows
    WHERE stage = 'ingest'
    GROUP BY ALL
), quarantined AS (
    SELECT table_name, source_file, sum(n)::BIGINT AS n, string_agg(reason || ' ' || n, ', ' ORDER BY reason) AS reasons
    FROM by_reason
    GROUP BY ALL
)
SELECT
    f.table_name,
    f.file_name,
    CASE WHEN f.status <> 'removed' THEN f.sha256 END AS sha256,
    f.status,
    f.rows_read,
    coalesce(s.n, 0) AS rows_loaded,
    coalesce(q.n, 0) AS rows_quarantined,
    f.rows_rejected,
    f.lines,
    f.header_lines,
    f.blank_lines,
    f.continued_lines,
    NULLIF(concat_ws('; ', f.reason, 'quarantined: ' || q.reasons), '') AS reason
FROM raw.files AS f
LEFT JOIN staged AS s ON s.table_name = f.table_name AND s.source_file = f.file_name
LEFT JOIN quarantined AS q ON q.table_name = f.table_name AND q.source_file = f.file_name
ORDER BY f.table_name NULLS LAST, f.file_name;
