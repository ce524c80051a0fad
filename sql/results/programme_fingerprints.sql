-- One row per programme named in $programme_ids: a hash of every warehouse row that programme's
-- partitioned steps read (its staging.programmes row, its analysis rows, the risk scores of the
-- people it analyses).
-- The sum of row hashes does not depend on row order, and a row added, removed or changed moves
-- it; the row count is kept beside it so rows cancelling out would need equal counts too.
WITH programme_rows AS (
    SELECT programme_id, hash(programme) AS row_hash
    FROM (SELECT * EXCLUDE (source_file, source_row) FROM staging.programmes) AS programme
    UNION ALL SELECT programme_id, hash(covariates) FROM analysis.covariates AS covariates
    UNION ALL SELECT programme_id, hash(measures) FROM analysis.measures AS measures
    UNION ALL SELECT programme_id, hash(survival) FROM analysis.survival AS survival
    UNION ALL SELECT programme_id, hash(controls) FROM analysis.negative_controls AS controls
    UNION ALL SELECT programme_id, hash(attrition) FROM analysis.attrition AS attrition
    UNION ALL
    SELECT covariates.programme_id, hash(scores)
    FROM analysis.covariates AS covariates
    JOIN results.risk_scores AS scores USING (person_id, index_date)
)
SELECT programme_id, sum(row_hash::HUGEINT)::VARCHAR || '/' || count(*)::VARCHAR AS rows_hash
FROM programme_rows
WHERE programme_id IN (SELECT unnest($programme_ids::VARCHAR[]))
GROUP BY programme_id
ORDER BY programme_id
