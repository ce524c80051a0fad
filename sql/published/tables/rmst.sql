SELECT programme_id, horizon_days, rmst_treated, rmst_comparison, difference, se, ci_lower, ci_upper, p,
       note::VARCHAR AS note
FROM results.rmst
ORDER BY programme_id
