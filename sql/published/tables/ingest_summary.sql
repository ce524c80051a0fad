SELECT table_name, file_name, status, rows_read, rows_loaded, rows_quarantined, rows_rejected, reason, sha256
FROM raw.ingest_summary
ORDER BY table_name NULLS LAST, file_name
