-- From everyone enrolled to everyone analysed, per programme: how many people remain after
-- each step, how many the step lost and why. Participants and the comparison pool are
-- followed separately (cohort_group). A step's reason explains its losses; the first step of
-- each group has no losses. "Complete follow-up" and "analysed" refer to the headline window.
--
-- participants: enrolled -> linked_to_index_event (an enrolment starts within the enrolment
--   window of any index event) -> eligible_index_event (one of those events lies in the cohort
--   period) -> complete_follow_up -> covariate steps -> analysed
-- comparison: eligible_index_event (anyone with an index event in the cohort period) ->
--   never_enrolled (in this programme) -> complete_follow_up -> covariate steps -> analysed
-- Covariate steps: one per complete-case covariate that removed someone, named
-- covariate_<name>, in the configured order; a person missing several is counted at the first.
-- analysed: complete follow-up and every complete-case covariate present (it loses no one).
CREATE OR REPLACE TABLE analysis.attrition AS
WITH enrolled AS (
    SELECT programme_id, count(DISTINCT person_id) AS people
    FROM staging.participation
    GROUP BY programme_id
),
linked AS (
    SELECT programme_id, count(DISTINCT person_id) AS people
    FROM analysis.enrolment_links
    GROUP BY programme_id
),
with_eligible_event AS (
    SELECT count(DISTINCT person_id) AS people
    FROM staging.index_events
    WHERE index_date BETWEEN getvariable('index_from') AND getvariable('index_to')
),
-- Complete follow-up is read from the headline measures alone; the few complete rows missing a
-- complete-case covariate are counted apart (incomplete_covariates), so the analysed count needs no
-- join of every measure row with its covariates row.
followed AS (
    SELECT
        programme_id,
        count(*) FILTER (WHERE treated) AS treated_in_cohort,
        count(*) FILTER (WHERE treated AND complete) AS treated_complete,
        count(*) FILTER (WHERE NOT treated) AS pool_in_cohort,
        count(*) FILTER (WHERE NOT treated AND complete) AS pool_complete
    FROM analysis.measures
    WHERE window_months = getvariable('headline_months')
    GROUP BY programme_id
),
-- People with complete follow-up but a complete-case covariate missing, by the first one missing.
incomplete_covariates AS (
    SELECT
        measure.programme_id,
        measure.treated,
        covariate.missing_covariate,
        count(*) AS lost
    FROM analysis.measures AS measure
    JOIN analysis.covariates AS covariate USING (programme_id, person_id)
    WHERE measure.window_months = getvariable('headline_months')
      AND measure.complete
      AND NOT covariate.covariates_complete
    GROUP BY ALL
),
analysed AS (
    SELECT
        followed.programme_id,
        followed.treated_complete
            - coalesce(sum(losses.lost) FILTER (WHERE losses.treated), 0) AS treated_analysed,
        followed.pool_complete
            - coalesce(sum(losses.lost) FILTER (WHERE NOT losses.treated), 0) AS pool_analysed
    FROM followed
    LEFT JOIN incomplete_covariates AS losses USING (programme_id)
    GROUP BY followed.programme_id, followed.treated_complete, followed.pool_complete
),
counts AS (
    SELECT
        programme.programme_id,
        coalesce(enrolled.people, 0) AS enrolled,
        coalesce(linked.people, 0) AS linked,
        coalesce(followed.treated_in_cohort, 0) AS treated_in_cohort,
        coalesce(followed.treated_complete, 0) AS treated_complete,
        coalesce(analysed.treated_analysed, 0) AS treated_analysed,
        with_eligible_event.people AS with_eligible_event,
        coalesce(followed.pool_in_cohort, 0) AS pool_in_cohort,
        coalesce(followed.pool_complete, 0) AS pool_complete,
        coalesce(analysed.pool_analysed, 0) AS pool_analysed
    FROM staging.programmes AS programme
    CROSS JOIN with_eligible_event
    LEFT JOIN enrolled USING (programme_id)
    LEFT JOIN linked USING (programme_id)
    LEFT JOIN followed USING (programme_id)
    LEFT JOIN analysed USING (programme_id)
),
reasons AS (
    SELECT
        format('no enrolment starts between {} days before and {} days after an index event',
               getvariable('enrolment_days_before'), getvariable('enrolment_days_after')) AS not_linked,
        format('every linked index event lies outside the cohort period {} to {}',
               getvariable('index_from'), getvariable('index_to')) AS not_eligible,
        format('the {}-month window plus {}-month waiting period ends after the data cut-off {}',
               getvariable('headline_months'), getvariable('waiting_period_months'),
               getvariable('data_cutoff')) AS incomplete,
        'enrolled in the programme' AS enrolled
),
steps AS (
    SELECT
        counts.programme_id,
        unnest([
            {'cohort_group': 'participants', 'step_number': 1, 'step': 'enrolled',
             'people': counts.enrolled, 'reason': NULL},
            {'cohort_group': 'participants', 'step_number': 2, 'step': 'linked_to_index_event',
             'people': counts.linked, 'reason': reasons.not_linked},
            {'cohort_group': 'participants', 'step_number': 3, 'step': 'eligible_index_event',
             'people': counts.treated_in_cohort, 'reason': reasons.not_eligible},
            {'cohort_group': 'participants', 'step_number': 4, 'step': 'complete_follow_up',
             'people': counts.treated_complete, 'reason': reasons.incomplete},
            {'cohort_group': 'comparison', 'step_number': 1, 'step': 'eligible_index_event',
             'people': counts.with_eligible_event, 'reason': NULL},
            {'cohort_group': 'comparison', 'step_number': 2, 'step': 'never_enrolled',
             'people': counts.pool_in_cohort, 'reason': reasons.enrolled},
            {'cohort_group': 'comparison', 'step_number': 3, 'step': 'complete_follow_up',
             'people': counts.pool_complete, 'reason': reasons.incomplete}
        ], recursive := true)
    FROM counts
    CROSS JOIN reasons
),
covariate_losses AS (
    SELECT
        programme_id,
        CASE WHEN treated THEN 'participants' ELSE 'comparison' END AS cohort_group,
        missing_covariate AS covariate,
        list_position(getvariable('complete_case_covariates'), missing_covariate) AS position,
        lost
    FROM incomplete_covariates
),
covariate_steps AS (
    SELECT
        losses.programme_id,
        losses.cohort_group,
        complete.step_number + row_number() OVER by_position AS step_number,
        'covariate_' || losses.covariate AS step,
        complete.people - sum(losses.lost) OVER by_position AS people,
        format('{} is missing (covariates are complete_case unless covariates.missing says otherwise)',
               losses.covariate) AS reason
    FROM covariate_losses AS losses
    JOIN steps AS complete
      ON complete.programme_id = losses.programme_id
     AND complete.cohort_group = losses.cohort_group
     AND complete.step = 'complete_follow_up'
    WINDOW by_position AS (PARTITION BY losses.programme_id, losses.cohort_group ORDER BY losses.position)
),
analysed_steps AS (
    SELECT
        counts.programme_id,
        group_counts.cohort_group,
        group_counts.base_step + 1 + (
            SELECT count(*) FROM covariate_steps AS c
            WHERE c.programme_id = counts.programme_id AND c.cohort_group = group_counts.cohort_group
        ) AS step_number,
        'analysed' AS step,
        CASE group_counts.cohort_group WHEN 'participants' THEN counts.treated_analysed ELSE counts.pool_analysed END
            AS people,
        NULL AS reason
    FROM counts
    CROSS JOIN (VALUES ('participants', 4), ('comparison', 3)) AS group_counts (cohort_group, base_step)
),
all_steps AS (
    SELECT programme_id, cohort_group, step_number, step, people, reason FROM steps
    UNION ALL BY NAME
    SELECT programme_id, cohort_group, step_number, step, people, reason FROM covariate_steps
    UNION ALL BY NAME
    SELECT programme_id, cohort_group, step_number, step, people, reason FROM analysed_steps
)
SELECT
    programme_id,
    cohort_group,
    step_number::INTEGER AS step_number,
    step,
    people,
    lag(people) OVER (PARTITION BY programme_id, cohort_group ORDER BY step_number) - people AS lost,
    reason
FROM all_steps
ORDER BY programme_id, cohort_group DESC, step_number;
