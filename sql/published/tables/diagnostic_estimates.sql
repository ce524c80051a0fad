SELECT programme_id, estimate, outcome, label, n_treated, n_comparison, treated_value, comparison_value, difference,
       se, ci_lower, ci_upper, p_value, log_ratio, log_ratio_se
FROM results.diagnostic_estimates
ORDER BY programme_id, estimate, outcome
