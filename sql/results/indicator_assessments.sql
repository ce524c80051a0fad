-- Intermediate outcomes of each participant in each programme: one row per person x programme
-- with a baseline assessment, holding the baseline and later values and the per-person inputs
-- of the success-criteria indicators (models/indicators.py computes estimates and intervals).
--
--   period                         cohort quarter ('2022Q3') of the person's earliest enrolment
--                                  in the programme; the baseline assessment date when no
--                                  enrolment is recorded
--   life_skills_change             exit - baseline score (NULL without an exit assessment)
--   community_integration_change   exit - baseline score (NULL without an exit assessment)
--   employment_gain                for people not employed at baseline (unemployed, in training
--                                  or inactive) who were assessed again: employed at exit or at
--                                  follow-up; NULL for everyone else
--   settled_accommodation_gain     for people unsettled at baseline with an exit assessment:
--                                  settled at exit; NULL for everyone else
-- Assessments of programmes missing from staging.programmes are left out.
CREATE OR REPLACE TABLE results.indicator_assessments AS
WITH stages AS (
    SELECT
        programme_id,
        person_id,
        any_value(assessment_date) FILTER (WHERE stage = 'baseline') AS baseline_date,
        any_value(life_skills_score) FILTER (WHERE stage = 'baseline') AS life_skills_baseline,
        any_value(life_skills_score) FILTER (WHERE stage = 'exit') AS life_skills_exit,
        any_value(community_integration_score) FILTER (WHERE stage = 'baseline') AS community_integration_baseline,
        any_value(community_integration_score) FILTER (WHERE stage = 'exit') AS community_integration_exit,
        any_value(employment_status) FILTER (WHERE stage = 'baseline') AS employment_baseline,
        any_value(employment_status) FILTER (WHERE stage = 'exit') AS employment_exit,
        any_value(employment_status) FILTER (WHERE stage = 'follow_up') AS employment_follow_up,
        any_value(accommodation_status) FILTER (WHERE stage = 'baseline') AS accommodation_baseline,
        any_value(accommodation_status) FILTER (WHERE stage = 'exit') AS accommodation_exit
    FROM staging.assessments
    WHERE programme_id IN (SELECT programme_id FROM staging.programmes)
    GROUP BY programme_id, person_id
),
first_enrolment AS (
    SELECT programme_id, person_id, min(start_date) AS enrolment_start_date
    FROM staging.participation
    GROUP BY programme_id, person_id
),
dated AS (
    SELECT
        stages.*,
        first_enrolment.enrolment_start_date,
        coalesce(first_enrolment.enrolment_start_date, stages.baseline_date) AS period_date
    FROM stages
    LEFT JOIN first_enrolment USING (programme_id, person_id)
    WHERE stages.baseline_date IS NOT NULL
)
SELECT
    programme_id,
    person_id,
    year(period_date)::VARCHAR || 'Q' || quarter(period_date)::VARCHAR AS period,
    enrolment_start_date,
    baseline_date,
    life_skills_baseline,
    life_skills_exit,
    community_integration_baseline,
    community_integration_exit,
    employment_baseline,
    employment_exit,
    employment_follow_up,
    accommodation_baseline,
    accommodation_exit,
    (life_skills_exit - life_skills_baseline)::INTEGER AS life_skills_change,
    (community_integration_exit - community_integration_baseline)::INTEGER AS community_integration_change,
    CASE
        WHEN employment_baseline <> 'employed'
         AND (employment_exit IS NOT NULL OR employment_follow_up IS NOT NULL)
        THEN coalesce(employment_exit = 'employed', false) OR coalesce(employment_follow_up = 'employed', false)
    END AS employment_gain,
    CASE
        WHEN accommodation_baseline = 'unsettled' AND accommodation_exit IS NOT NULL
        THEN accommodation_exit = 'settled'
    END AS settled_accommodation_gain
FROM dated;
