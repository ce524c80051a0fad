SELECT programme_id, person_id, treated, index_date, time_days, event
FROM analysis.survival
