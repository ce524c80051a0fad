SELECT run_id, started_at, code_version, input_fingerprint, data_cutoff, headline_months, settings, settings_hash FROM results.run_info
