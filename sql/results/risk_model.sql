-- The reoffending-risk model's results, filled by the results/risk_model asset from models/risk.py.
-- Declared here so every table keeps its columns and types when the model cannot be fitted.
CREATE OR REPLACE TABLE results.risk_model_status (status VARCHAR, message VARCHAR);
CREATE OR REPLACE TABLE results.risk_coefficients (term VARCHAR, coef DOUBLE, se DOUBLE, z DOUBLE, p DOUBLE);
CREATE OR REPLACE TABLE results.risk_performance (
    train_from VARCHAR, train_to VARCHAR, test_from VARCHAR, test_to VARCHAR, n_train BIGINT, n_test BIGINT,
    reoffended_train DOUBLE, reoffended_test DOUBLE, auc DOUBLE, auc_lower DOUBLE, auc_upper DOUBLE,
    auc_train DOUBLE, brier DOUBLE, calibration_intercept DOUBLE, calibration_intercept_se DOUBLE,
    calibration_slope DOUBLE, calibration_slope_se DOUBLE);
CREATE OR REPLACE TABLE results.risk_calibration (
    decile BIGINT, n BIGINT, n_reoffended BIGINT, mean_predicted DOUBLE, observed DOUBLE,
    observed_lower DOUBLE, observed_upper DOUBLE);
CREATE OR REPLACE TABLE results.risk_fairness (
    attribute VARCHAR, grp VARCHAR, threshold_name VARCHAR, threshold DOUBLE, n BIGINT, n_reoffended BIGINT,
    observed DOUBLE, mean_predicted DOUBLE, calibration_in_the_large DOUBLE, citl_lower DOUBLE,
    citl_upper DOUBLE, auc DOUBLE, auc_lower DOUBLE, auc_upper DOUBLE, n_negative BIGINT, fpr DOUBLE,
    fpr_lower DOUBLE, fpr_upper DOUBLE, fnr DOUBLE, fnr_lower DOUBLE, fnr_upper DOUBLE);
CREATE OR REPLACE TABLE results.risk_scores (
    person_id VARCHAR, index_date DATE, predicted_risk DOUBLE, risk_band VARCHAR, model_sample VARCHAR);
CREATE OR REPLACE TABLE results.risk_model_card (section VARCHAR, item VARCHAR, text VARCHAR);
