SELECT programme_id, person_id, treated, subclass::INTEGER AS subclass, weight, logit_score, propensity
FROM results.matched_sets
