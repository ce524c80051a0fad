-- The study diagnostics of every programme, filled by the results/diagnostics asset from
-- models/diagnostics.py. Declared here so the tables keep their columns and types even when no
-- programme could be assessed.
CREATE OR REPLACE TABLE results.diagnostics (
    programme_id VARCHAR, diagnostic VARCHAR, value DOUBLE, threshold DOUBLE, status VARCHAR,
    explanation VARCHAR);
CREATE OR REPLACE TABLE results.diagnostic_estimates (
    programme_id VARCHAR, estimate VARCHAR, outcome VARCHAR, label VARCHAR, n_treated BIGINT,
    n_comparison BIGINT, treated_value DOUBLE, comparison_value DOUBLE, difference DOUBLE, se DOUBLE,
    ci_lower DOUBLE, ci_upper DOUBLE, p_value DOUBLE, log_ratio DOUBLE, log_ratio_se DOUBLE);
