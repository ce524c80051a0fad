SELECT programme_id, variable, level, n_treated, n_comparison, treated_value, comparison_value, difference, se,
       ci_lower, ci_upper, p_value, p_holm, n_clusters, gate_status
FROM results.subgroup_effects
ORDER BY programme_id, variable, level
