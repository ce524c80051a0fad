SELECT attribute, grp, threshold_name, threshold, n, n_reoffended, observed, mean_predicted,
       calibration_in_the_large, citl_lower, citl_upper, auc, auc_lower, auc_upper, n_negative, fpr, fpr_lower,
       fpr_upper, fnr, fnr_lower, fnr_upper
FROM results.risk_fairness
ORDER BY attribute = 'all' DESC, attribute, grp, threshold
