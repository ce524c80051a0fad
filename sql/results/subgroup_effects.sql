-- Matched effects on the headline reoffending rate within pre-declared subgroups, filled by the
-- results/subgroup_effects asset from models/subgroups.py. Declared here so both tables keep their
-- columns and types even when no programme could be estimated.
CREATE OR REPLACE TABLE results.subgroup_effects (
    programme_id VARCHAR, variable VARCHAR, level VARCHAR, n_treated BIGINT, n_comparison BIGINT,
    treated_value DOUBLE, comparison_value DOUBLE, difference DOUBLE, se DOUBLE, ci_lower DOUBLE,
    ci_upper DOUBLE, p_value DOUBLE, p_holm DOUBLE, n_clusters BIGINT, gate_status VARCHAR);
CREATE OR REPLACE TABLE results.subgroup_heterogeneity (
    programme_id VARCHAR, variable VARCHAR, n_levels BIGINT, q DOUBLE, df BIGINT, p_value DOUBLE);
