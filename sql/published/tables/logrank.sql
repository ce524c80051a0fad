SELECT programme_id, chi2, df, p
FROM results.logrank
ORDER BY programme_id
