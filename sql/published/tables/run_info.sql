SELECT run_id, started_at, code_version, input_fingerprint, data_cutoff, headline_months, settings, settings_hash,
       getvariable('publish_person_level')::BOOLEAN AS person_level
FROM results.run_info
