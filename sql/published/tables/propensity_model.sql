SELECT programme_id, term, coef, se, z, p
FROM results.propensity_model
