SELECT
    diagnostic.programme_id,
    programme.name AS programme_name,
    diagnostic.diagnostic,
    diagnostic.value,
    diagnostic.threshold,
    diagnostic.status,
    diagnostic.explanation,
    NOT bool_or(diagnostic.status = 'fail') OVER (PARTITION BY diagnostic.programme_id) AS headline_shown
FROM programme_diagnostics AS diagnostic
LEFT JOIN programmes AS programme USING (programme_id)
ORDER BY diagnostic.programme_id, diagnostic.diagnostic
