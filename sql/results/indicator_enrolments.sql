-- Engagement, mentoring-relationship durability and mentor-participant compatibility: one row
-- per enrolment, holding the per-enrolment inputs of the descriptive indicators.
--
--   period                  cohort quarter ('2022Q3') of the enrolment start_date
--   completed               true when completed, false when withdrawn, NULL while ongoing
--   sessions_attended_share sessions attended / sessions offered (NULL when none were offered)
--   relationship_days       end_date - start_date of an ended enrolment with a mentor
--   ended_within_4_weeks    for enrolments with a mentor that started at least 28 days before
--                           the data cut-off: ended no more than 28 days after starting
--   mentor_lived_experience the mentor has lived experience of the justice system
--   mentor_close_in_age     the mentor's age-band midpoint is within 10 years of the
--                           participant's age at enrolment (year of start_date - birth_year);
--                           midpoints: 18-24 -> 21, 25-34 -> 29.5, ..., 55-64 -> 59.5, 65+ -> 70
--   mentor_same_sex         mentor and participant record the same sex
--   reoffended              proven reoffending within the headline window (analysis.measures)
--                           for the enrolment that put the person in the programme's cohort,
--                           when that window is complete; NULL otherwise
-- Enrolments in programmes missing from staging.programmes are left out.
CREATE OR REPLACE TABLE results.indicator_enrolments AS
WITH headline_reoffending AS (
    SELECT cohort.programme_id, cohort.person_id, cohort.enrolment_start_date, measure.reoffended
    FROM analysis.cohort AS cohort
    JOIN analysis.measures AS measure
      ON measure.programme_id = cohort.programme_id
     AND measure.person_id = cohort.person_id
     AND measure.index_date = cohort.index_date
     AND measure.window_months = getvariable('headline_months')
    WHERE cohort.treated AND measure.treated
),
enrolment AS (
    SELECT
        participation.*,
        mentor.lived_experience AS mentor_lived_experience,
        mentor.sex AS mentor_sex,
        person.sex AS participant_sex,
        CASE mentor.age_band
            WHEN '18-24' THEN 21 WHEN '25-34' THEN 29.5 WHEN '35-44' THEN 39.5
            WHEN '45-54' THEN 49.5 WHEN '55-64' THEN 59.5 WHEN '65+' THEN 70
        END::DOUBLE AS mentor_age_midpoint,
        year(participation.start_date) - person.birth_year AS participant_age
    FROM staging.participation AS participation
    LEFT JOIN staging.mentors AS mentor
      ON mentor.mentor_id = participation.mentor_id
    LEFT JOIN staging.people AS person
      ON person.person_id = participation.person_id
    WHERE participation.programme_id IN (SELECT programme_id FROM staging.programmes)
)
SELECT
    enrolment.programme_id,
    enrolment.person_id,
    enrolment.start_date,
    enrolment.end_date,
    year(enrolment.start_date)::VARCHAR || 'Q' || quarter(enrolment.start_date)::VARCHAR AS period,
    enrolment.status,
    enrolment.mentor_id,
    CASE enrolment.status WHEN 'completed' THEN true WHEN 'withdrawn' THEN false END AS completed,
    CASE WHEN enrolment.sessions_offered > 0
         THEN enrolment.sessions_attended::DOUBLE / enrolment.sessions_offered
    END AS sessions_attended_share,
    CASE WHEN enrolment.mentor_id IS NOT NULL AND enrolment.end_date IS NOT NULL
         THEN enrolment.end_date - enrolment.start_date
    END AS relationship_days,
    CASE WHEN enrolment.mentor_id IS NOT NULL AND enrolment.start_date + 28 <= getvariable('data_cutoff')
         THEN coalesce(enrolment.end_date - enrolment.start_date <= 28, false)
    END AS ended_within_4_weeks,
    enrolment.participant_age,
    enrolment.mentor_age_midpoint,
    abs(enrolment.mentor_age_midpoint - enrolment.participant_age) AS age_gap_years,
    enrolment.mentor_lived_experience,
    abs(enrolment.mentor_age_midpoint - enrolment.participant_age) <= 10 AS mentor_close_in_age,
    enrolment.mentor_sex = enrolment.participant_sex AS mentor_same_sex,
    reoffending.reoffended = 1 AS reoffended
FROM enrolment
LEFT JOIN headline_reoffending AS reoffending
  ON reoffending.programme_id = enrolment.programme_id
 AND reoffending.person_id = enrolment.person_id
 AND reoffending.enrolment_start_date = enrolment.start_date;
