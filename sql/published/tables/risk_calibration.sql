SELECT decile, n, n_reoffended, mean_predicted, observed, observed_lower, observed_upper
FROM results.risk_calibration
ORDER BY decile
