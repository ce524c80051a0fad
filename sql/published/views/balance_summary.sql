SELECT
    programme_id,
    stage,
    count(*) AS terms,
    max(abs(smd)) AS max_abs_smd,
    arg_max(covariate, abs(smd)) AS worst_term,
    count(*) FILTER (WHERE NOT smd_ok) AS terms_smd_over_threshold,
    count(*) FILTER (WHERE NOT vr_ok) AS terms_vr_outside_bounds,
    bool_and(smd_ok) AND bool_and(coalesce(vr_ok, true)) AS balanced
FROM balance
WHERE covariate <> 'distance'
GROUP BY programme_id, stage
ORDER BY programme_id, stage DESC
