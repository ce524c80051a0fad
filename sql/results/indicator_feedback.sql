-- Stakeholder survey responses with the quarter they belong to (the quarter of response_date),
-- one row per response, for the satisfaction indicators. Responses about programmes missing
-- from staging.programmes are left out.
CREATE OR REPLACE TABLE results.indicator_feedback AS
SELECT
    response_id,
    programme_id,
    respondent_type,
    response_date,
    year(response_date)::VARCHAR || 'Q' || quarter(response_date)::VARCHAR AS period,
    satisfaction,
    relationship_quality
FROM staging.feedback
WHERE programme_id IN (SELECT programme_id FROM staging.programmes);
