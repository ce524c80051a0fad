-- Negative-control outcomes: offending before the index date, which taking part (after it)
-- cannot have changed. They depend on the person and index date only: stored once per person and
-- index date in analysis.negative_controls_by_index, and given to every programme whose cohort
-- holds that person and index date by the view analysis.negative_controls (desist/analysis.py),
-- one row per programme x person in analysis.cohort.
--   pre_offences_12     offences committed in the 12 months before the index date
--                       (index_date - 12 months <= offence_date < index_date) and proven before it
--   pre_offended_24_12  1 when an offence was committed 24 to 12 months before the index date
--                       (index_date - 24 months <= offence_date < index_date - 12 months) and
--                       proven before the index date, else 0
-- Neither is a matching covariate (prior_proven_offences counts the whole history), so after
-- matching the groups should differ on them only by chance; a difference signals a bias the
-- covariates missed.
CREATE OR REPLACE TABLE analysis.negative_controls_by_index AS
-- Each index point's window bounds as dates, worked out once per point (a date minus an interval
-- is a timestamp: compared with each offence date it would cast every offence date).
WITH index_points AS (
    SELECT
        person_id,
        index_date,
        (index_date - INTERVAL 24 MONTH)::DATE AS from_24_months,
        (index_date - INTERVAL 12 MONTH)::DATE AS from_12_months
    FROM (SELECT DISTINCT person_id, index_date FROM analysis.cohort)
),
before_index AS (
    SELECT
        point.person_id,
        point.index_date,
        count(*) FILTER (WHERE offence.offence_date >= point.from_12_months) AS pre_offences_12,
        bool_or(offence.offence_date < point.from_12_months) AS offended_24_12
    FROM index_points AS point
    JOIN staging.offences AS offence
      ON offence.person_id = point.person_id
     AND offence.offence_date >= point.from_24_months
     AND offence.offence_date < point.index_date
     AND offence.proven_date < point.index_date
    GROUP BY point.person_id, point.index_date
)
SELECT
    point.person_id,
    point.index_date,
    coalesce(before_index.pre_offences_12, 0) AS pre_offences_12,
    coalesce(before_index.offended_24_12, false)::INTEGER AS pre_offended_24_12
FROM index_points AS point
LEFT JOIN before_index USING (person_id, index_date);
