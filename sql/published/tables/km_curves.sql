SELECT programme_id, grp, time_days::INTEGER AS time_days, n_at_risk, n_events, survival, lower, upper,
       cum_incidence, cum_incidence_lower, cum_incidence_upper
FROM results.km_curves
ORDER BY programme_id, grp DESC, time_days
