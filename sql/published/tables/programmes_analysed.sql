SELECT programme_id, name, status, NULLIF(message, '')::VARCHAR AS message, n_treated_analysed, n_comparison_pool
FROM results.programmes_analysed
ORDER BY programme_id
