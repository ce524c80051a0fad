SELECT run_id, started_at, code_version, input_fingerprint, data_cutoff, headline_months FROM results.run_info
