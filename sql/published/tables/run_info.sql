SELECT run_id, started_at, code_version, input_fingerprint, data_cutoff FROM results.run_info
