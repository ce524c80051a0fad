SELECT
    indicator.programme_id,
    programme.name AS programme_name,
    indicator.criterion_id,
    indicator.label,
    indicator.indicator,
    indicator.estimate,
    indicator.ci_lower,
    indicator.ci_upper,
    indicator.n,
    indicator.target,
    indicator.direction,
    indicator.status,
    indicator.unit,
    indicator.notes
FROM indicators AS indicator
JOIN programmes AS programme USING (programme_id)
WHERE indicator.period = 'all' AND indicator.criterion_id IS NOT NULL
ORDER BY indicator.programme_id, indicator.criterion_id
