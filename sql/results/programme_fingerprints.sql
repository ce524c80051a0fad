-- One row per programme named in $programme_ids: a hash of every warehouse row that programme's
-- partitioned steps read (its staging.programmes row, its analysis rows, the risk scores of the
-- people it analyses).
-- The sum of row hashes does not depend on row order, and a row added, removed or changed moves
-- it; the row count is kept beside it so rows cancelling out would need equal counts too.
-- Covariates, measures, negative controls, survival times and risk scores are stored once per
-- person and index date: their rows are hashed and summed once per person and index date, and each
-- programme takes the sums of the people and index dates of its cohort (whose own rows it hashes
-- too).
WITH index_rows AS (
    SELECT person_id, index_date, sum(row_hash) AS row_hash, sum(row_count) AS row_count
    FROM (
        SELECT person_id, index_date, hash(covariates)::HUGEINT AS row_hash, 1 AS row_count
        FROM analysis.covariates_by_index AS covariates
        UNION ALL SELECT person_id, index_date, hash(measures)::HUGEINT, 1 FROM analysis.measures_by_index AS measures
        UNION ALL
        SELECT person_id, index_date, hash(controls)::HUGEINT, 1 FROM analysis.negative_controls_by_index AS controls
        UNION ALL SELECT person_id, index_date, hash(survival)::HUGEINT, 1 FROM analysis.survival_by_index AS survival
        UNION ALL SELECT person_id, index_date, hash(scores)::HUGEINT, 1 FROM results.risk_scores AS scores
    )
    GROUP BY person_id, index_date
),
programme_rows AS (
    SELECT programme_id, hash(programme)::HUGEINT AS row_hash, 1 AS row_count
    FROM (SELECT * EXCLUDE (source_file, source_row) FROM staging.programmes) AS programme
    UNION ALL SELECT programme_id, hash(cohort), 1 FROM analysis.cohort AS cohort
    UNION ALL SELECT programme_id, hash(attrition), 1 FROM analysis.attrition AS attrition
    UNION ALL
    SELECT cohort.programme_id, index_rows.row_hash, index_rows.row_count
    FROM analysis.cohort AS cohort
    JOIN index_rows USING (person_id, index_date)
)
SELECT programme_id, sum(row_hash)::VARCHAR || '/' || sum(row_count)::VARCHAR AS rows_hash
FROM programme_rows
WHERE programme_id IN (SELECT unnest($programme_ids::VARCHAR[]))
GROUP BY programme_id
ORDER BY programme_id
