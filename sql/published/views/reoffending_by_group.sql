WITH samples AS (
    SELECT programme_id, person_id, treated, 'analysed' AS sample, 1.0 AS weight
    FROM matched_sets
    UNION ALL
    SELECT programme_id, person_id, treated, 'matched', weight
    FROM matched_sets
    WHERE weight > 0
)
SELECT
    sample.programme_id,
    sample.sample,
    CASE WHEN sample.treated THEN 'treated' ELSE 'comparison' END AS grp,
    measure.window_months,
    count(*) AS people,
    sum(sample.weight) AS weighted_people,
    count(*) FILTER (WHERE measure.reoffended = 1) AS reoffenders,
    sum(sample.weight * measure.reoffended) / sum(sample.weight) AS reoffending_rate,
    sum(sample.weight * measure.frequency) / sum(sample.weight) AS reoffences_per_person,
    sum(sample.weight * measure.custodial_reoffence) / sum(sample.weight) AS custodial_reoffending_rate
FROM samples AS sample
JOIN measures AS measure USING (programme_id, person_id)
WHERE measure.complete
GROUP BY ALL
ORDER BY sample.programme_id, sample.sample, grp DESC, measure.window_months
