-- The matched-comparison results of every programme, filled by the results/effects asset from
-- models/evaluation.py. Declared here so each table keeps its columns and types even when no
-- programme could be estimated (downstream SQL, reports and the researcher database read them).
CREATE OR REPLACE TABLE results.programmes_analysed (
    programme_id VARCHAR, name VARCHAR, status VARCHAR, message VARCHAR,
    n_treated_analysed BIGINT, n_comparison_pool BIGINT);
CREATE OR REPLACE TABLE results.propensity_model (
    programme_id VARCHAR, term VARCHAR, coef DOUBLE, se DOUBLE, z DOUBLE, p DOUBLE);
CREATE OR REPLACE TABLE results.matched_sets (
    programme_id VARCHAR, person_id VARCHAR, treated BOOLEAN, subclass DOUBLE, weight DOUBLE,
    logit_score DOUBLE, propensity DOUBLE);
CREATE OR REPLACE TABLE results.balance (
    programme_id VARCHAR, covariate VARCHAR, variable VARCHAR, "binary" BOOLEAN, stage VARCHAR,
    mean_treated DOUBLE, mean_comparison DOUBLE, smd DOUBLE, variance_ratio DOUBLE, ecdf_mean DOUBLE,
    ecdf_max DOUBLE, smd_ok BOOLEAN, vr_ok BOOLEAN);
CREATE OR REPLACE TABLE results.sample_sizes (
    programme_id VARCHAR, grp VARCHAR, n_all BIGINT, n_matched BIGINT, n_unmatched BIGINT,
    n_discarded BIGINT, ess DOUBLE);
CREATE OR REPLACE TABLE results.unmatched (
    programme_id VARCHAR, person_id VARCHAR, reason VARCHAR);
CREATE OR REPLACE TABLE results.effects (
    programme_id VARCHAR, measure VARCHAR, window_months BIGINT, estimator VARCHAR, n_treated BIGINT,
    n_comparison BIGINT, treated_value DOUBLE, comparison_value DOUBLE, difference DOUBLE, se DOUBLE,
    ci_lower DOUBLE, ci_upper DOUBLE, p_value DOUBLE, risk_ratio DOUBLE, rr_lower DOUBLE, rr_upper DOUBLE,
    e_value DOUBLE, e_value_ci DOUBLE, gate_status VARCHAR, sentence VARCHAR, note VARCHAR);
