SELECT term, coef, se, z, p FROM results.risk_coefficients
