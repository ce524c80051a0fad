-- Engagement of each participant with the enrolment that put them in the cohort.
-- attendance_share = sessions attended / sessions offered, NULL when none were offered.
CREATE OR REPLACE TABLE analysis.engagement AS
SELECT
    cohort.programme_id,
    cohort.person_id,
    cohort.index_date,
    cohort.enrolment_start_date,
    enrolment.end_date AS enrolment_end_date,
    enrolment.status,
    enrolment.status = 'completed' AS completed,
    enrolment.sessions_offered,
    enrolment.sessions_attended,
    CASE WHEN enrolment.sessions_offered > 0
         THEN enrolment.sessions_attended / enrolment.sessions_offered
    END AS attendance_share,
    enrolment.mentor_id
FROM analysis.cohort AS cohort
JOIN staging.participation AS enrolment
  ON enrolment.programme_id = cohort.programme_id
 AND enrolment.person_id = cohort.person_id
 AND enrolment.start_date = cohort.enrolment_start_date
WHERE cohort.treated;
