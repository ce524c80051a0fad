SELECT
    cohort.programme_id,
    cohort.person_id,
    cohort.treated,
    cohort.index_date,
    survival.* EXCLUDE (person_id, index_date)
FROM cohort
JOIN survival_times_by_index AS survival USING (person_id, index_date)
