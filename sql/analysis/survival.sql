-- Time to first proven reoffence, for any horizon. An offence is an event when committed on or after the index date and proven by the
-- data cut-off (proven_date <= data_cutoff); the event time is the day it was committed, not
-- the day it was proven. Without such an offence the person is censored at the data cut-off.
-- time_days = event or censoring date - index_date, in days; an offence on the index date
-- gives time_days = 0 with event = 1.
-- Offences committed shortly before the cut-off and proven after it are not yet known, so the
-- last months before the cut-off under-count events; fixed-window measures avoid this with
-- their waiting period.
-- Both depend on the person and index date only: stored once per person and index date in
-- analysis.survival_by_index, and given to every programme whose cohort holds that person and
-- index date by the view analysis.survival (desist/analysis.py), one row per programme x person in
-- analysis.cohort.
CREATE OR REPLACE TABLE analysis.survival_by_index AS
WITH index_points AS (
    SELECT DISTINCT person_id, index_date FROM analysis.cohort
),
first_reoffences AS (
    SELECT point.person_id, point.index_date, min(offence.offence_date) AS first_offence_date
    FROM index_points AS point
    JOIN staging.offences AS offence
      ON offence.person_id = point.person_id
     AND offence.offence_date >= point.index_date
     AND offence.proven_date <= getvariable('data_cutoff')
    GROUP BY point.person_id, point.index_date
)
SELECT
    point.person_id,
    point.index_date,
    coalesce(first_reoffence.first_offence_date, getvariable('data_cutoff')) - point.index_date AS time_days,
    (first_reoffence.first_offence_date IS NOT NULL)::INTEGER AS event
FROM index_points AS point
LEFT JOIN first_reoffences AS first_reoffence USING (person_id, index_date);
