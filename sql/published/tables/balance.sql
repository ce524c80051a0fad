SELECT programme_id, covariate, variable, "binary" AS is_binary, stage, mean_treated, mean_comparison, smd, variance_ratio,
       ecdf_mean, ecdf_max, smd_ok, vr_ok
FROM results.balance
