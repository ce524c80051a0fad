SELECT person_id, index_date, time_days, event
FROM analysis.survival_by_index
