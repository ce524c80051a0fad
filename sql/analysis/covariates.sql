-- Characteristics at the index date: analysis.covariates_by_index holds one row per person and
-- index date in analysis.cohort, and the view analysis.covariates (desist/analysis.py) gives it to
-- every programme whose cohort holds that person and index date, one row per programme x person in
-- analysis.cohort.
--
-- Derived from the offence history, counting only what was known at the index date:
--   prior_proven_offences      offences committed and proven strictly before the index date
--                              (an index offence proven on the index date itself is not prior);
--   prior_custodial_sentences  those of them disposed of by custody (one per offence record);
--   years_since_first_offence  (index date - earliest of those offence dates) / 365.25;
--                              0 when there is no prior proven offence: the criminal history
--                              starts at the index event;
--   age_at_index               index year - birth year. Only the birth year is held, so this is
--                              the age reached during the index year: at most one year above
--                              the exact age, by the same rule for everyone;
--   female                     sex = 'female' (NULL when the person is not in staging.people).
-- The index event's own columns and the person's region, sex and ethnic group are carried as
-- supplied, and so are the extract's own columns declared in evaluation.yaml (contract:
-- extra_columns of index_events and people). Missing optional inputs stay NULL;
-- covariates_complete says whether every complete-case covariate named in evaluation.yaml (the
-- SQL variable 'complete_case_covariates', in order) is present, and missing_covariate names
-- the first one that is not.
-- Nothing here depends on the programme, so it is worked out and stored once per person and index
-- date.
CREATE OR REPLACE TABLE analysis.covariates_by_index AS
WITH index_points AS (
    SELECT DISTINCT person_id, index_date FROM analysis.cohort
),
history AS (
    SELECT
        point.person_id,
        point.index_date,
        count(offence.offence_id) AS prior_proven_offences,
        count(offence.offence_id) FILTER (WHERE offence.disposal = 'custody') AS prior_custodial_sentences,
        min(offence.offence_date) AS first_offence_date
    FROM index_points AS point
    LEFT JOIN staging.offences AS offence
      ON offence.person_id = point.person_id
     AND offence.offence_date < point.index_date
     AND offence.proven_date < point.index_date
    GROUP BY point.person_id, point.index_date
),
characteristics AS (
    SELECT
        history.person_id,
        history.index_date,
        year(history.index_date) - person.birth_year AS age_at_index,
        history.prior_proven_offences,
        history.prior_custodial_sentences,
        coalesce(datediff('day', history.first_offence_date, history.index_date) / 365.25, 0.0)
            AS years_since_first_offence,
        event.risk_score,
        event.sentence_months,
        event.employment_at_index,
        event.accommodation_at_index,
        person.sex = 'female' AS female,
        event.index_type,
        person.region,
        event.index_offence_group,
        event.prior_offences,
        event.prior_custody,
        event.age_first_offence,
        person.sex,
        person.ethnic_group,
        person.birth_year,
        -- the extract's own columns
        event.* EXCLUDE (person_id, index_date, index_type, index_offence_group, sentence_months,
                         prior_offences, prior_custody, age_first_offence, risk_score,
                         employment_at_index, accommodation_at_index, source_file, source_row),
        person.* EXCLUDE (person_id, sex, birth_year, ethnic_group, region, source_file, source_row)
    FROM history
    JOIN staging.index_events AS event USING (person_id, index_date)
    LEFT JOIN staging.people AS person USING (person_id)
),
-- Whether each complete-case covariate is present, as one boolean column per name;
-- always_present keeps the selection non-empty when no covariate is configured.
presence AS (
    SELECT
        person_id,
        index_date,
        COLUMNS(lambda name: name = 'always_present'
                OR list_contains(getvariable('complete_case_covariates'), name)) IS NOT NULL
    FROM (SELECT *, true AS always_present FROM characteristics)
),
completeness AS (
    SELECT
        person_id,
        index_date,
        list_bool_and([*COLUMNS(lambda name: name NOT IN ('person_id', 'index_date'))]) AS covariates_complete
    FROM presence
),
-- The first absent covariate in the configured order, so attrition counts each person once;
-- worked out only for the (few) people missing one.
absent AS (
    UNPIVOT (
        SELECT presence.*
        FROM presence
        JOIN completeness USING (person_id, index_date)
        WHERE NOT completeness.covariates_complete
    ) ON COLUMNS(* EXCLUDE (person_id, index_date)) INTO NAME covariate VALUE present
),
first_absent AS (
    SELECT
        person_id,
        index_date,
        arg_min(covariate, list_position(getvariable('complete_case_covariates'), covariate))
            FILTER (WHERE NOT present) AS missing_covariate
    FROM absent
    GROUP BY person_id, index_date
)
SELECT
    characteristics.*,
    completeness.covariates_complete,
    first_absent.missing_covariate
FROM characteristics
JOIN completeness USING (person_id, index_date)
LEFT JOIN first_absent USING (person_id, index_date);
