SELECT table_name, file_name, status, rows_read, rows_loaded, rows_quarantined, rows_rejected, lines, header_lines, blank_lines,
       continued_lines, reason, sha256
FROM raw.ingest_summary
ORDER BY table_name NULLS LAST, file_name
