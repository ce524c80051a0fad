SELECT
    cohort.programme_id,
    cohort.person_id,
    cohort.treated,
    cohort.index_date,
    measure.* EXCLUDE (person_id, index_date)
FROM cohort
JOIN measures_by_index AS measure USING (person_id, index_date)
