SELECT programme_id, person_id, reason
-- results.unmatched holds only programme_id when no participant of any programme went
-- unmatched; the typed empty row keeps the published columns the same either way.
FROM (
    SELECT NULL::VARCHAR AS programme_id, NULL::VARCHAR AS person_id, NULL::VARCHAR AS reason WHERE false
    UNION ALL BY NAME
    SELECT * FROM results.unmatched
)
ORDER BY programme_id, person_id
