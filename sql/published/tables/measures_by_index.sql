SELECT person_id, index_date, window_months, window_end, proof_deadline, complete,
       reoffended, frequency, days_to_first, custodial_reoffence, most_serious_severity
FROM analysis.measures_by_index
