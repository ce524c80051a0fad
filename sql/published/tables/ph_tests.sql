SELECT programme_id, model, term, statistic, df, p, warning::VARCHAR AS warning
FROM results.ph_tests
