SELECT programme_id, variable, n_levels, q, df, p_value
FROM results.subgroup_heterogeneity
ORDER BY programme_id, variable
