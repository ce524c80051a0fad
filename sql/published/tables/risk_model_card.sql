SELECT row_number() OVER () AS line, section, item, text
FROM results.risk_model_card
