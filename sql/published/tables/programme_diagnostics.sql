SELECT programme_id, diagnostic, value, threshold, status, explanation
FROM results.diagnostics
ORDER BY programme_id, diagnostic
