SELECT table_name, stage, reason, count(*) AS "rows"
-- Counts only: a quarantined row's raw values could carry anything, so none of them is published.
FROM quarantine.rows
GROUP BY table_name, stage, reason
ORDER BY table_name, stage, reason
