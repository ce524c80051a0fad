SELECT programme_id, cohort_group, step_number, step, people, lost, reason
FROM analysis.attrition
ORDER BY programme_id, cohort_group DESC, step_number
