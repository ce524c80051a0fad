SELECT programme_id, period, criterion_id, label, indicator, estimate, ci_lower, ci_upper, n, target, direction,
       status, unit, notes
FROM results.indicators
