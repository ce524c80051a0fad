SELECT programme_id, grp, horizon_days, horizon_label, n_at_risk, cumulative_reoffending, lower, upper
FROM results.km_horizons
ORDER BY programme_id, grp DESC, horizon_days
