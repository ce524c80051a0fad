SELECT
    cohort.programme_id,
    cohort.person_id,
    cohort.treated,
    cohort.index_date,
    covariate.* EXCLUDE (person_id, index_date)
FROM cohort
JOIN covariates_by_index AS covariate USING (person_id, index_date)
