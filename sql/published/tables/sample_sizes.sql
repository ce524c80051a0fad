SELECT programme_id, grp, n_all, n_matched, n_unmatched, n_discarded, ess
FROM results.sample_sizes
ORDER BY programme_id, grp DESC
