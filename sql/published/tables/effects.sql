SELECT programme_id, measure, window_months, estimator, n_treated, n_comparison, treated_value, comparison_value,
       difference, se, ci_lower, ci_upper, p_value, risk_ratio, rr_lower, rr_upper, e_value, e_value_ci,
       gate_status, sentence::VARCHAR AS sentence, note::VARCHAR AS note
FROM results.effects
