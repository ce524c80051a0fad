SELECT status.status, status.message, performance.*
FROM results.risk_model_status AS status
LEFT JOIN results.risk_performance AS performance ON true
