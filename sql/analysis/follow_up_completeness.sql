-- How many people each fixed window could measure, and how many it excluded because the
-- window plus waiting period had not ended by the data cut-off.
CREATE OR REPLACE TABLE analysis.follow_up_completeness AS
SELECT
    programme_id,
    treated,
    window_months,
    count(*) AS people,
    count(*) FILTER (WHERE complete) AS complete_people,
    count(*) FILTER (WHERE NOT complete) AS excluded_incomplete
FROM analysis.measures
GROUP BY programme_id, treated, window_months;
