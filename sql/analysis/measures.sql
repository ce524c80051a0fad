-- Proven reoffending over fixed follow-up windows (the SQL variable 'windows_months'):
-- analysis.measures_by_index holds one row per person x index date x window, and the view
-- analysis.measures (desist/analysis.py) gives it to every programme whose cohort holds that
-- person and index date, one row per programme x person x window.
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
--
-- Every measure depends on the person and index date only, not on the programme: each is worked
-- out and stored once per person, index date and window. A person in every programme's cohort
-- would otherwise be stored once per programme.
CREATE OR REPLACE TABLE analysis.measures_by_index AS
WITH windows AS (
    SELECT unnest(getvariable('windows_months')) AS window_months
),
points AS (
    SELECT DISTINCT person_id, index_date FROM analysis.cohort
),
-- Offences from the index date on, tested against each window.
followed_offences AS (
    SELECT
        point.person_id,
        point.index_date,
        offence.offence_date,
        offence.proven_date,
        offence.disposal,
        offence.severity
    FROM points AS point
    JOIN staging.offences AS offence
      ON offence.person_id = point.person_id
     AND offence.offence_date >= point.index_date
),
reoffences AS (
    SELECT
        offence.person_id,
        offence.index_date,
        windows.window_months,
        count(*) AS frequency,
        min(offence.offence_date) AS first_offence_date,
        bool_or(offence.disposal = 'custody') AS custodial,
        max(offence.severity) AS most_serious_severity
    FROM followed_offences AS offence
    CROSS JOIN windows
    WHERE offence.offence_date < offence.index_date + to_months(windows.window_months)
      AND offence.proven_date
          <= offence.index_date + to_months(windows.window_months + getvariable('waiting_period_months'))
    GROUP BY offence.person_id, offence.index_date, windows.window_months
),
follow_up AS (
    SELECT
        point.person_id,
        point.index_date,
        windows.window_months,
        (point.index_date + to_months(windows.window_months))::DATE AS window_end,
        (point.index_date + to_months(windows.window_months + getvariable('waiting_period_months')))::DATE
            AS proof_deadline
    FROM points AS point
    CROSS JOIN windows
),
point_measures AS (
    SELECT
        follow_up.*,
        follow_up.proof_deadline <= getvariable('data_cutoff') AS complete,
        CASE WHEN complete THEN (reoffence.frequency IS NOT NULL)::INTEGER END AS reoffended,
        CASE WHEN complete THEN coalesce(reoffence.frequency, 0) END AS frequency,
        CASE WHEN complete THEN reoffence.first_offence_date - follow_up.index_date END AS days_to_first,
        CASE WHEN complete THEN coalesce(reoffence.custodial, false)::INTEGER END AS custodial_reoffence,
        CASE WHEN complete THEN reoffence.most_serious_severity END AS most_serious_severity
    FROM follow_up
    LEFT JOIN reoffences AS reoffence USING (person_id, index_date, window_months)
)
SELECT * FROM point_measures;
