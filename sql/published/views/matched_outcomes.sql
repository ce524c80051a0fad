SELECT
    matched.programme_id,
    matched.person_id,
    matched.treated,
    matched.subclass,
    matched.weight,
    measure.window_months,
    measure.complete,
    measure.reoffended,
    measure.frequency,
    measure.days_to_first,
    measure.custodial_reoffence,
    survival.time_days,
    survival.event
FROM matched_sets AS matched
JOIN measures AS measure USING (programme_id, person_id)
JOIN survival_times AS survival USING (programme_id, person_id)
WHERE matched.weight > 0
ORDER BY matched.programme_id, matched.subclass NULLS LAST, matched.treated DESC, matched.person_id, measure.window_months
