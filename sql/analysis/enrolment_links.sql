-- Every pairing of an enrolment with an index event of the same person where the enrolment
-- starts inside the window around that event (default 90 days before to 180 days after,
-- both ends inclusive). Index events outside the cohort period are kept and flagged so the
-- attrition table can say why a linked participant was not analysed. Enrolments naming a
-- programme missing from staging.programmes are left out: there is nothing to evaluate them
-- against.
CREATE OR REPLACE TABLE analysis.enrolment_links AS
SELECT
    enrolment.programme_id,
    enrolment.person_id,
    enrolment.start_date AS enrolment_start_date,
    event.index_date,
    event.index_date BETWEEN getvariable('index_from') AND getvariable('index_to') AS index_eligible
FROM staging.participation AS enrolment
JOIN staging.index_events AS event
  ON event.person_id = enrolment.person_id
 AND enrolment.start_date BETWEEN event.index_date - getvariable('enrolment_days_before')
                              AND event.index_date + getvariable('enrolment_days_after')
WHERE enrolment.programme_id IN (SELECT programme_id FROM staging.programmes);
