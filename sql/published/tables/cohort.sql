SELECT programme_id, person_id, treated, index_date, index_type, index_quarter,
       enrolment_start_date, enrolment_days_from_index
FROM analysis.cohort
