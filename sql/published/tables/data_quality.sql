SELECT run_id, checked_at, table_name, column_name, expectation, severity, status, element_count, unexpected_count
-- unexpected_sample is left out: it holds values of failing rows, which could carry anything.
FROM results.data_quality
WHERE checked_at = (SELECT max(checked_at) FROM results.data_quality)
