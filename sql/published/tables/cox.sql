SELECT programme_id, model, term, coef, se, robust_se, hr, hr_lower, hr_upper, p
FROM results.cox
