-- One row per programme x person analysed for that programme, with one index event each.
--
-- Participants (treated): people with an enrolment in the programme that starts within the
-- enrolment window of an index event inside the cohort period. Their enrolment is the
-- earliest such enrolment, and their index event the earliest eligible event it links to.
--
-- Comparison pool (not treated): people with an index event inside the cohort period who never
-- enrolled in this programme, on any date; their index event is their first eligible one.
-- Someone enrolled in another programme stays in this programme's pool.
--
-- index_quarter labels the cohort period the index date falls in, e.g. '2022Q3' (labelled once per
-- index event, not on each programme's copy of the row).
CREATE OR REPLACE TABLE analysis.cohort AS
WITH eligible_events AS (
    SELECT person_id, index_date, index_type,
           year(index_date)::VARCHAR || 'Q' || quarter(index_date)::VARCHAR AS index_quarter
    FROM staging.index_events
    WHERE index_date BETWEEN getvariable('index_from') AND getvariable('index_to')
),
participants AS (
    SELECT programme_id, person_id, index_date, enrolment_start_date
    FROM analysis.enrolment_links
    WHERE index_eligible
    QUALIFY row_number() OVER (
        PARTITION BY programme_id, person_id ORDER BY enrolment_start_date, index_date
    ) = 1
),
-- A person's index events have distinct dates (staging keeps one event per person and date), so
-- the earliest is an aggregate, not a sort; arg_min_null keeps its columns even when missing.
first_eligible_events AS (
    SELECT
        person_id,
        min(index_date) AS index_date,
        arg_min_null(index_type, index_date) AS index_type,
        arg_min_null(index_quarter, index_date) AS index_quarter
    FROM eligible_events
    GROUP BY person_id
),
comparison AS (
    SELECT programme.programme_id, event.person_id, event.index_date, event.index_type, event.index_quarter
    FROM staging.programmes AS programme
    CROSS JOIN first_eligible_events AS event
    ANTI JOIN staging.participation AS enrolment
      ON enrolment.programme_id = programme.programme_id
     AND enrolment.person_id = event.person_id
),
members AS (
    SELECT
        participant.programme_id,
        participant.person_id,
        true AS treated,
        participant.index_date,
        event.index_type,
        event.index_quarter,
        participant.enrolment_start_date
    FROM participants AS participant
    JOIN eligible_events AS event USING (person_id, index_date)
    UNION ALL
    SELECT programme_id, person_id, false, index_date, index_type, index_quarter, NULL::DATE
    FROM comparison
)
SELECT
    programme_id,
    person_id,
    treated,
    index_date,
    index_type,
    index_quarter,
    enrolment_start_date,
    enrolment_start_date - index_date AS enrolment_days_from_index
FROM members;
