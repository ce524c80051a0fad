SELECT programme_id, name, programme_type, provider
FROM staging.programmes
ORDER BY programme_id
