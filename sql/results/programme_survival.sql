-- The survival results of every estimated programme, filled by the results/survival asset from
-- models/evaluation.py. Declared here so each table keeps its columns and types even when no
-- programme could be estimated.
CREATE OR REPLACE TABLE results.km_curves (
    programme_id VARCHAR, grp VARCHAR, time_days DOUBLE, n_at_risk BIGINT, n_events BIGINT, survival DOUBLE,
    lower DOUBLE, upper DOUBLE, cum_incidence DOUBLE, cum_incidence_lower DOUBLE, cum_incidence_upper DOUBLE);
CREATE OR REPLACE TABLE results.km_horizons (
    programme_id VARCHAR, grp VARCHAR, horizon_days BIGINT, horizon_label VARCHAR, n_at_risk BIGINT,
    cumulative_reoffending DOUBLE, lower DOUBLE, upper DOUBLE);
CREATE OR REPLACE TABLE results.logrank (
    programme_id VARCHAR, chi2 DOUBLE, df BIGINT, p DOUBLE);
CREATE OR REPLACE TABLE results.cox (
    programme_id VARCHAR, model VARCHAR, term VARCHAR, coef DOUBLE, se DOUBLE, robust_se DOUBLE, hr DOUBLE,
    hr_lower DOUBLE, hr_upper DOUBLE, p DOUBLE);
CREATE OR REPLACE TABLE results.ph_tests (
    programme_id VARCHAR, model VARCHAR, term VARCHAR, statistic DOUBLE, df BIGINT, p DOUBLE, warning VARCHAR);
CREATE OR REPLACE TABLE results.rmst (
    programme_id VARCHAR, horizon_days BIGINT, rmst_treated DOUBLE, rmst_comparison DOUBLE, difference DOUBLE,
    se DOUBLE, ci_lower DOUBLE, ci_upper DOUBLE, p DOUBLE, note VARCHAR);
