-- The success-criteria and descriptive indicators computed by models/indicators.py, written
-- from the registered frame `indicator_rows` with fixed column types, so the table keeps its
-- columns even when no indicator could be computed.
CREATE OR REPLACE TABLE results.indicators AS
SELECT
    programme_id::VARCHAR AS programme_id,
    period::VARCHAR AS period,
    criterion_id::VARCHAR AS criterion_id,
    label::VARCHAR AS label,
    indicator::VARCHAR AS indicator,
    estimate::DOUBLE AS estimate,
    ci_lower::DOUBLE AS ci_lower,
    ci_upper::DOUBLE AS ci_upper,
    n::BIGINT AS n,
    target::DOUBLE AS target,
    direction::VARCHAR AS direction,
    status::VARCHAR AS status,
    unit::VARCHAR AS unit,
    notes::VARCHAR AS notes
FROM indicator_rows;
