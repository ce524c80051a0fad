SELECT person_id, index_date, predicted_risk, risk_band, model_sample
FROM results.risk_scores
