SELECT
    programme.programme_id,
    programme.name AS programme_name,
    analysed.status AS analysis_status,
    matched.n_treated,
    matched.n_comparison,
    treated_sizes.n_unmatched AS n_unmatched_treated,
    matched.treated_value AS treated_rate,
    matched.comparison_value AS comparison_rate,
    matched.difference,
    matched.ci_lower,
    matched.ci_upper,
    matched.p_value,
    matched.risk_ratio,
    matched.rr_lower,
    matched.rr_upper,
    matched.e_value,
    naive.difference AS naive_difference,
    adjusted.difference AS adjusted_difference,
    matched.gate_status,
    matched.sentence,
    verdict.diagnostics_status
FROM programmes AS programme
LEFT JOIN programmes_analysed AS analysed USING (programme_id)
LEFT JOIN sample_sizes AS treated_sizes
  ON treated_sizes.programme_id = programme.programme_id AND treated_sizes.grp = 'treated'
LEFT JOIN effects AS matched
  ON matched.programme_id = programme.programme_id AND matched.measure = 'reoffended'
 AND matched.window_months = (SELECT headline_months FROM run_info) AND matched.estimator = 'matched'
LEFT JOIN effects AS naive
  ON naive.programme_id = programme.programme_id AND naive.measure = 'reoffended'
 AND naive.window_months = (SELECT headline_months FROM run_info) AND naive.estimator = 'naive'
LEFT JOIN effects AS adjusted
  ON adjusted.programme_id = programme.programme_id AND adjusted.measure = 'reoffended'
 AND adjusted.window_months = (SELECT headline_months FROM run_info) AND adjusted.estimator = 'adjusted'
LEFT JOIN (
    SELECT programme_id, CASE WHEN bool_or(status = 'fail') THEN 'fail' ELSE 'pass' END AS diagnostics_status
    FROM programme_diagnostics GROUP BY programme_id
) AS verdict ON verdict.programme_id = programme.programme_id
ORDER BY programme.programme_id
