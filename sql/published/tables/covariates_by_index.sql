SELECT
    person_id,
    index_date,
    age_at_index,
    prior_proven_offences,
    prior_custodial_sentences,
    years_since_first_offence,
    risk_score,
    sentence_months,
    employment_at_index,
    accommodation_at_index,
    female,
    index_type,
    index_offence_group,
    region,
    covariates_complete
-- Left out on purpose: birth_year (identifying; age_at_index carries what the analysis needs),
-- sex and ethnic_group (female is the covariate used), and the supplied prior_offences,
-- prior_custody and age_first_offence (the analysis uses the counts derived from the offence
-- history instead).
FROM analysis.covariates_by_index
