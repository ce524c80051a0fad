-- Proven reoffending over fixed follow-up windows, one row per programme x person x window
-- (the windows are the SQL variable 'windows_months').
--
-- For a window of N months and a waiting period of W months (dates are whole days):
--   window_end     = index_date + N months (calendar months; a day missing from the target
--                    month falls back to its last day, e.g. 31 Aug + 6 months = 28/29 Feb)
--   proof_deadline = index_date + (N + W) months, computed in one step
--   an offence counts when  index_date <= offence_date < window_end
--                      and  proven_date <= proof_deadline.
-- An offence committed on the index date counts: the Justice Data Lab follow-up period starts
-- on the index date itself (the day of release or of the start of the sentence), and the index
-- offence was committed before it. An offence committed earlier but proven after the index
-- date is not a reoffence.
-- The window is complete when proof_deadline <= data_cutoff. Incomplete windows keep their row
-- with complete = false and every measure NULL: they are excluded, not counted as
-- non-reoffending (analysis.follow_up_completeness counts them).
--
-- Measures of a complete window:
--   reoffended             1 when at least one offence counts, else 0
--   frequency              number of offences that count
--   days_to_first          days from index_date to the first offence that counts (NULL if none)
--   custodial_reoffence    1 when an offence that counts was disposed of by custody, else 0
--   most_serious_severity  highest severity among offences that count (NULL if none)
CREATE OR REPLACE TABLE analysis.measures AS
WITH index_points AS (
    SELECT DISTINCT person_id, index_date FROM analysis.cohort
),
windows AS (
    SELECT
        point.person_id,
        point.index_date,
        window_months,
        (point.index_date + to_months(window_months))::DATE AS window_end,
        (point.index_date + to_months(window_months + getvariable('waiting_period_months')))::DATE
            AS proof_deadline
    FROM index_points AS point
    CROSS JOIN (SELECT unnest(getvariable('windows_months')) AS window_months)
),
-- Offences from the index date on, joined once per index date rather than once per window.
followed_offences AS (
    SELECT
        point.person_id,
        point.index_date,
        offence.offence_date,
        offence.proven_date,
        offence.disposal,
        offence.severity
    FROM index_points AS point
    JOIN staging.offences AS offence
      ON offence.person_id = point.person_id
     AND offence.offence_date >= point.index_date
),
reoffences AS (
    SELECT
        follow_up.person_id,
        follow_up.index_date,
        follow_up.window_months,
        count(*) AS frequency,
        min(offence.offence_date) AS first_offence_date,
        bool_or(offence.disposal = 'custody') AS custodial,
        max(offence.severity) AS most_serious_severity
    FROM windows AS follow_up
    JOIN followed_offences AS offence USING (person_id, index_date)
    WHERE offence.offence_date < follow_up.window_end
      AND offence.proven_date <= follow_up.proof_deadline
    GROUP BY follow_up.person_id, follow_up.index_date, follow_up.window_months
),
outcomes AS (
    SELECT
        windows.*,
        windows.proof_deadline <= getvariable('data_cutoff') AS complete,
        reoffences.frequency,
        reoffences.first_offence_date,
        reoffences.custodial,
        reoffences.most_serious_severity
    FROM windows
    LEFT JOIN reoffences USING (person_id, index_date, window_months)
)
SELECT
    cohort.programme_id,
    cohort.person_id,
    cohort.treated,
    cohort.index_date,
    outcome.window_months,
    outcome.window_end,
    outcome.proof_deadline,
    outcome.complete,
    CASE WHEN outcome.complete THEN (outcome.frequency IS NOT NULL)::INTEGER END AS reoffended,
    CASE WHEN outcome.complete THEN coalesce(outcome.frequency, 0) END AS frequency,
    CASE WHEN outcome.complete THEN outcome.first_offence_date - cohort.index_date END AS days_to_first,
    CASE WHEN outcome.complete THEN coalesce(outcome.custodial, false)::INTEGER END AS custodial_reoffence,
    CASE WHEN outcome.complete THEN outcome.most_serious_severity END AS most_serious_severity
FROM analysis.cohort AS cohort
JOIN outcomes AS outcome USING (person_id, index_date);
