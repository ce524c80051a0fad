"""Synthetic extract: a justice population, four programmes and what happened to them.

The generator draws a world in which the answer is known, so the pipeline can be checked
against it:

* **People and index events.** Each person has a first index event (custody release or
  community sentence start) between 2019-01-01 and 2024-12-31 and possibly later ones, each
  at least ``MIN_INDEX_GAP_DAYS`` after the one before, so one person's 12-month windows
  never overlap. Every index event carries the offence that led to it (proven before the
  index date), and people have offending histories, so ``prior_offences`` and
  ``prior_custody`` are exactly the counts of the person's offences proven before the index
  date (all disposals / custody only) and ``age_first_offence`` is the calendar year of the
  person's earliest offence minus ``birth_year``.
* **Selection.** Around each index event a person not yet enrolled may enrol in one
  programme (multinomial logit on observed covariates only: age, priors, risk score,
  employment, accommodation, sex, index type, region), so matching on the configured
  covariates removes the bias and a naive comparison does not. ``P03`` selects hardest
  (low-risk, employed, settled people): its naive comparison shows a benefit it does not have.
* **Reoffending.** From every index event, the time to the first reoffence follows a Weibull
  proportional-hazards model whose linear predictor holds the covariates and an unobserved
  propensity that the risk score measures with noise; a spell of further offences follows.
  A participant's hazard (and the pace of the spell) is multiplied by the programme's hazard
  ratio from the index date. Each offence is proven 0-9 months after it is committed; only
  offences proven on or before the cut-off are in the extract.
* **Hidden confounding (opt-in).** With ``hidden_confounding`` above zero each person also has
  an unrecorded instability (standard normal, never written to the extract) that raises their
  offending in the two years before each index event and their hazard of reoffending after it,
  and changes their odds of enrolling by a factor exp(-hidden_confounding) per SD (more people
  enrol than without it, mostly the least unstable).
  Matching on the recorded covariates then leaves participants less unstable than their
  matches: the naive and matched estimates show a benefit the programme does not cause, and
  offending before the index date (a negative-control outcome) differs between the groups.
  These draws come from their own generator, so the default (0) leaves every seed's extract
  byte-identical.
* **Truth.** Participants' offences are drawn once without the programme and transformed to
  the programme world with the same random numbers, so both potential outcomes of the same
  people are known and ``ground_truth.json`` holds the exact effect on the treated, and the
  marginal hazard ratio a matched Cox model estimates (nearer 1 than the planted one). It also
  holds the true AUC of the 12-month risk (the ceiling for a risk model on recorded covariates).
* **For whom** (opt-in, ``subgroup_effects=True``). The programme's hazard ratio is multiplied
  by a factor for the participant's risk-score band and sex, so the effect differs between
  subgroups; the truth then holds the exact effect per subgroup, and ``Extract.participants``
  both potential outcomes of every participant, for the truth of any other subgroup.

Everything is drawn from one ``numpy.random.Generator`` seeded with ``seed``, with no loops
over people: the same seed gives byte-identical files.

Example::

    >>> from desist.generate import generate
    >>> extract = generate(people=2_000, seed=1)
    >>> sorted(extract.tables)[:3]
    ['assessments', 'feedback', 'index_events']
    >>> extract.truth["programmes"]["P03"]["hazard_ratio"]
    1.0
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from scipy.stats import rankdata

from desist.contract import (
    ACCOMMODATION_STATUS,
    AGE_BANDS,
    ASSESSMENT_STAGES,
    DISPOSALS,
    EMPLOYMENT_STATUS,
    ETHNIC_GROUPS,
    INDEX_TYPES,
    OFFENCE_GROUPS,
    PARTICIPATION_STATUS,
    REGIONS,
    RESPONDENT_TYPES,
    SEX,
    TABLES,
)

EPOCH = date(1970, 1, 1)
DEFAULT_CUTOFF = date(2025, 6, 30)
COHORT_FROM = date(2019, 1, 1)
COHORT_TO = date(2024, 12, 31)
ENROL_DAYS_BEFORE = 90
ENROL_DAYS_AFTER = 180
FOLLOW_UP_MONTHS = 12
WAITING_MONTHS = 6
FORMATS = ("csv", "parquet")

# A later index event starts (sentence start or conviction) at least this long after the
# previous index date, so its index offence (committed at most 298 days earlier) falls
# outside the previous event's 12-month window.
MIN_INDEX_GAP_DAYS = 670
EXTRA_INDEX_GAP_MEAN_DAYS = 300
MAX_PROOF_DELAY_DAYS = 270

# Weibull proportional hazards for the time to first reoffence, in days:
# S(t) = exp(-(t / scale) ** shape * exp(eta)); a falling hazard, highest soon after the index.
WEIBULL_SHAPE = 0.8
WEIBULL_SCALE_DAYS = 1250.0
HAZARD_COEFFICIENTS = {
    "latent_propensity": 0.55,       # per SD of the unobserved propensity
    "age_per_10_years": -0.20,       # centred at 35
    "log1p_prior_offences": 0.20,    # centred at 1.5
    "any_prior_custody": 0.10,
    "custody_release": 0.15,
    "female": -0.30,
    "employed": -0.30,
    "settled_accommodation": -0.25,
}
REGION_HAZARD = {
    "north_east": 0.08, "north_west": 0.08, "yorkshire": 0.05, "west_midlands": 0.05,
    "london": 0.10, "east": -0.05, "south_east": -0.05, "south_west": -0.08,
}
# After the first reoffence a spell of further offences: a gamma-Poisson count, exponential gaps.
FURTHER_OFFENCES_MEAN = 1.0
FURTHER_OFFENCES_ETA = 0.5
FURTHER_OFFENCES_GAMMA_SHAPE = 1.5
FURTHER_GAP_MEAN_DAYS = 100.0
FURTHER_GAP_ETA = -0.3

# Offence groups in contract order: violence, sexual, robbery, theft, burglary,
# criminal_damage, drugs, public_order, fraud, motoring, other.
OFFENCE_WEIGHTS = (0.20, 0.02, 0.03, 0.24, 0.06, 0.07, 0.11, 0.10, 0.04, 0.07, 0.06)
INDEX_OFFENCE_WEIGHTS = {
    "custody_release": (0.30, 0.05, 0.07, 0.15, 0.12, 0.03, 0.13, 0.06, 0.04, 0.02, 0.03),
    "community_sentence": (0.24, 0.02, 0.02, 0.20, 0.05, 0.08, 0.12, 0.10, 0.04, 0.08, 0.05),
}
BASE_SEVERITY = np.array([3, 4, 4, 2, 3, 2, 2, 1, 2, 1, 2])
# Disposal (custody, community, fine, caution, other) by severity 1..5.
DISPOSAL_BY_SEVERITY = np.array([
    [0.02, 0.13, 0.45, 0.30, 0.10],
    [0.06, 0.25, 0.35, 0.24, 0.10],
    [0.18, 0.40, 0.20, 0.14, 0.08],
    [0.45, 0.38, 0.07, 0.04, 0.06],
    [0.75, 0.20, 0.01, 0.00, 0.04],
])

# Opt-in (subgroup_effects=True): the programme's hazard ratio is multiplied by a factor for the
# participant's band of the recorded risk score and one for their sex, so the effect differs
# between subgroups; off by default, when every participant of a programme has its hazard ratio.
RISK_SCORE_BANDS = (40.0, 60.0)   # risk_score below 40: low; 40 to below 60: medium; 60 or more: high
RISK_SCORE_BAND_NAMES = ("low", "medium", "high")
HAZARD_RATIO_BY_RISK_BAND = (1.3, 1.0, 0.65)
HAZARD_RATIO_BY_SEX = (0.7, 1.0, 1.0)   # in SEX order: female, male, other

SEX_WEIGHTS = (0.15, 0.845, 0.005)
ETHNIC_WEIGHTS = (0.08, 0.09, 0.05, 0.71, 0.03, 0.04)
REGION_WEIGHTS = (0.05, 0.13, 0.10, 0.08, 0.10, 0.09, 0.16, 0.13, 0.09, 0.07)
# Hidden confounding: the unrecorded instability's log hazard of reoffending per SD, and the
# offences it brings in the HIDDEN_RECENT_DAYS before each index event (a Poisson rate per year
# of HIDDEN_RECENT_RATE * exp(HIDDEN_RECENT_ETA * u - HIDDEN_RECENT_ETA**2 / 2), so its mean
# over people stays HIDDEN_RECENT_RATE).
HIDDEN_HAZARD = 0.5
HIDDEN_RECENT_RATE = 1.0
HIDDEN_RECENT_ETA = 1.5
HIDDEN_RECENT_DAYS = 730
HIDDEN_SEED_SALT = 14

MISSING_SHARE = {"ethnic_group": 0.01, "employment_at_index": 0.02, "accommodation_at_index": 0.02}


@dataclass(frozen=True)
class ProgrammeSpec:
    """One programme of the synthetic world and the effects planted for it."""

    programme_id: str
    name: str
    programme_type: str
    provider: str
    hazard_ratio: float
    # Logit coefficients of enrolment on the selection covariates (see _selection_covariates).
    selection: dict[str, float]
    home_regions: tuple[str, ...]
    sessions: int
    duration_days: int
    lived_experience_share: float
    skills_gain: float        # scales the engagement-driven change in life skills
    integration_gain: float   # ... and in community integration
    satisfaction: float       # mean participant satisfaction on the 1-5 scale


PROGRAMMES = (
    ProgrammeSpec(
        "P01", "Steady Steps Mentoring", "structured_mentoring", "Northern Mentoring Trust", 0.70,
        {"intercept": -4.00, "age": 0.10, "risk": -0.15, "employed": 0.30, "home_region": 0.70},
        ("north_east", "north_west", "yorkshire"), 24, 182, 0.35, 1.0, 0.8, 4.2,
    ),
    ProgrammeSpec(
        "P02", "Side by Side Peer Mentors", "peer_mentoring", "Second Chance Collective", 0.80,
        {"intercept": -4.38, "age": -0.25, "risk": 0.20, "custody": 0.50, "priors": 0.20,
         "home_region": 0.70},
        ("london", "south_east"), 16, 150, 0.95, 0.8, 1.0, 4.0,
    ),
    ProgrammeSpec(
        "P03", "Roots Community Support", "community_support", "Midlands Community Partnership", 1.00,
        {"intercept": -5.53, "age": 0.35, "risk": -0.50, "priors": -0.35, "employed": 0.90,
         "settled": 0.90, "female": 0.60, "home_region": 0.50},
        ("east_midlands", "west_midlands", "east"), 20, 200, 0.30, 0.6, 1.3, 3.5,
    ),
    ProgrammeSpec(
        "P04", "New Chapter Workshops", "rehabilitative_workshop", "Western Skills Foundation", 0.85,
        {"intercept": -3.99, "custody": 0.40, "risk": 0.05, "home_region": 0.70},
        ("south_west", "wales"), 10, 70, 0.20, 1.2, 0.6, 3.8,
    ),
)
STRONGEST_SELECTION = "P03"

# Intermediate outcomes: change from baseline at exit = gain * (ATTENDANCE * attended share
# + COMPLETION * completed) + DRIFT + normal noise of SD NOISE_SD; follow-up keeps RETENTION of it.
# Recorded scores are the latent ones rounded and held to 1-10.
SCORE_ATTENDANCE = 1.6
SCORE_COMPLETION = 0.7
SCORE_DRIFT = -0.3
SCORE_NOISE_SD = 0.8
SCORE_RETENTION = 0.7
# Leaving unemployment/inactivity or unsettled accommodation by exit: logit on engagement.
EMPLOYMENT_TRANSITION = {"intercept": -2.2, "attended_share": 1.8, "completed": 0.6}
ACCOMMODATION_TRANSITION = {"intercept": -1.6, "attended_share": 1.6, "completed": 0.5}


@dataclass
class Extract:
    """A generated extract: one DataFrame per contract table and the ground truth."""

    tables: dict[str, pd.DataFrame]
    truth: dict
    # One row per participant: person_id, programme_id, index_date, sex, risk_score, eligible
    # (complete 12-month follow-up) and both potential outcomes reoffended_with / reoffended_without,
    # so the truth can be worked out for any subgroup of participants.
    participants: pd.DataFrame | None = None


def generate(people: int, seed: int, cutoff: date = DEFAULT_CUTOFF, subgroup_effects: bool = False,
             hidden_confounding: float = 0.0) -> Extract:
    """Generate an extract of ``people`` people; same arguments, same extract.

    ``subgroup_effects`` plants effects that differ by risk-score band and sex (see
    HAZARD_RATIO_BY_RISK_BAND, HAZARD_RATIO_BY_SEX) and writes the truth per subgroup.
    ``hidden_confounding`` (default 0: none) plants selection on a characteristic the extract
    does not hold: the log-odds of enrolling fall by this much per SD of it.
    """
    tables, truth, participants = _simulate(people, seed, cutoff, subgroup_effects, hidden_confounding)
    return Extract({name: _to_pandas(table) for name, table in tables.items()}, truth, participants)


def subgroup_truth(participants: pd.DataFrame, membership: pd.DataFrame) -> pd.DataFrame:
    """The exact 12-month effect on the treated in any subgroups of participants.

    ``participants``: :attr:`Extract.participants`. ``membership``: ``programme_id, person_id,
    index_date, variable, level`` (e.g. the subgroups a pipeline run assigned). Returns per
    programme, variable and level the participants with complete follow-up (``n``) and the mean
    of both potential outcomes and their difference (``effect``).
    """
    rows = membership.merge(participants[participants["eligible"]], on=["programme_id", "person_id", "index_date"])
    rows = rows.assign(with_programme=rows["reoffended_with"].astype(float),
                       without_programme=rows["reoffended_without"].astype(float))
    truth = rows.groupby(["programme_id", "variable", "level"], as_index=False).agg(
        n=("person_id", "size"), with_programme=("with_programme", "mean"),
        without_programme=("without_programme", "mean"))
    return truth.assign(effect=truth["with_programme"] - truth["without_programme"])


def write_extract(
    out_dir: Path, people: int, seed: int, fmt: str = "csv", cutoff: date = DEFAULT_CUTOFF,
    subgroup_effects: bool = False,
    hidden_confounding: float = 0.0,
) -> dict:
    """Generate an extract and write ``<table>.<fmt>`` files and ``ground_truth.json`` to ``out_dir``.

    Returns a summary: folder, format, rows per table and elapsed seconds.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stale = sorted(
        p.name for p in out_dir.iterdir()
        for name in TABLES
        if p.name.startswith(name) and p.suffix in (".csv", ".parquet") and p.name != f"{name}.{fmt}"
    )
    if stale:
        raise ValueError(
            f"{out_dir} already holds other files for the extract's tables ({', '.join(stale)}); "
            "they would be read together with the new files. Remove them or choose an empty folder."
        )
    tables, truth, _ = _simulate(people, seed, cutoff, subgroup_effects, hidden_confounding)
    for name, table in tables.items():
        target = out_dir / f"{name}.{fmt}"
        partial = target.with_name(target.name + ".partial")
        if fmt == "csv":
            pa_csv.write_csv(table, partial, pa_csv.WriteOptions(quoting_style="none", quoting_header="none"))
        else:
            pq.write_table(table, partial)
        os.replace(partial, target)
    (out_dir / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return {
        "out_dir": str(out_dir),
        "format": fmt,
        "people": people,
        "seed": seed,
        "rows": {name: table.num_rows for name, table in tables.items()},
        "seconds": round(time.perf_counter() - started, 2),
    }


# ---------------------------------------------------------------------------------------------
# The simulation


def _simulate(
    people: int, seed: int, cutoff: date, subgroup_effects: bool = False, hidden_confounding: float = 0.0,
) -> tuple[dict[str, pa.Table], dict, pd.DataFrame]:
    if not isinstance(people, (int, np.integer)) or isinstance(people, bool) or people < 1:
        raise ValueError(f"people must be a positive whole number, got {people!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}")
    latest_start = _day(COHORT_TO) + ENROL_DAYS_AFTER
    if _day(cutoff) < latest_start:
        raise ValueError(
            f"cutoff {cutoff} is before {_date(latest_start)}, the last possible enrolment date "
            f"for index events up to {COHORT_TO}"
        )
    rng = np.random.default_rng(seed)
    cut = _day(cutoff)
    person = _people(rng, people)
    stages = _index_timeline(rng, person, cut)
    offences = [_history(rng, person, stages[0]), *(_index_offences(rng, s) for s in stages)]
    hidden = None
    if hidden_confounding:
        hidden_rng = np.random.default_rng([seed, HIDDEN_SEED_SALT])
        hidden = hidden_rng.standard_normal(people)
        offences.append(_recent_offences(hidden_rng, stages, hidden))
    prior_counts = [_ProvenCounter(o) for o in offences]

    enrolled = np.zeros(people, dtype=bool)
    enrolments = []
    for stage in stages:
        prior = sum(c.before(stage["person"], stage["t"]) for c in prior_counts)
        prior_custody = sum(c.before(stage["person"], stage["t"], custody_only=True) for c in prior_counts)
        covariates = _index_covariates(rng, person, stage, prior, prior_custody)
        stage.update(covariates)
        unrecorded = 0.0 if hidden is None else hidden[stage["person"]]
        choice = _select(rng, person, stage, enrolled, -hidden_confounding * unrecorded)
        enrolled[stage["person"][choice > 0]] = True
        hazard_ratio = np.array([1.0] + [p.hazard_ratio for p in PROGRAMMES])[choice]
        if subgroup_effects:
            hazard_ratio = np.where(choice > 0, hazard_ratio * _effect_modifier(person, stage), 1.0)
        observed, pairs, risk = _reoffending(rng, person, stage, choice, hazard_ratio, cut, HIDDEN_HAZARD * unrecorded)
        if stage is stages[0]:
            first_event_risk = risk
        offences.append(observed)
        prior_counts.append(_ProvenCounter(observed))
        enrolments.append({k: v[choice > 0] for k, v in stage.items()} | {"programme": choice[choice > 0]} | pairs)

    enrolment = {k: np.concatenate([e[k] for e in enrolments]) for k in enrolments[0]}
    mentors = _mentors(rng, people)
    participation = _participation(rng, enrolment, mentors, cut)
    assessments = _assessments(rng, participation, cut)
    feedback = _feedback(rng, participation, mentors, cut)

    all_offences = {k: np.concatenate([o[k] for o in offences]) for k in offences[0]}
    person_ids = _ids("S", people)
    tables = {
        "people": _people_table(person, person_ids),
        "index_events": _index_table(stages, person, all_offences, cut, person_ids),
        "offences": _offence_table(all_offences, cut, person_ids),
        "programmes": _programme_table(),
        "participation": _participation_table(participation, person_ids, mentors),
        "mentors": _mentor_table(mentors),
        "assessments": _assessment_table(assessments, person_ids),
        "feedback": _feedback_table(feedback),
    }
    enrolment["sex"] = person["sex"][enrolment["person"]]
    truth = _truth(people, seed, cutoff, enrolment, subgroup_effects)
    if hidden_confounding:
        truth["hidden_confounding"] = {
            "selection_log_odds_per_sd": -hidden_confounding, "log_hazard_per_sd": HIDDEN_HAZARD,
            "recent_offences": {"days_before_index": HIDDEN_RECENT_DAYS, "rate_per_year": HIDDEN_RECENT_RATE,
                                "log_rate_per_sd": HIDDEN_RECENT_ETA},
        }
    truth["risk_model"] = _true_risk_discrimination(first_event_risk, ~enrolled)
    participants = pd.DataFrame({
        "person_id": pc.take(person_ids, enrolment["person"]).to_numpy(zero_copy_only=False),
        "programme_id": np.array([p.programme_id for p in PROGRAMMES])[enrolment["programme"] - 1],
        "index_date": enrolment["t"].astype("datetime64[D]").astype("datetime64[ns]"),
        "sex": np.array(SEX)[enrolment["sex"]],
        "risk_score": enrolment["risk"],
        "eligible": enrolment["eligible"],
        "reoffended_with": enrolment["reoffended_with"],
        "reoffended_without": enrolment["reoffended_without"],
    })
    return tables, truth, participants


def _auc(outcome: np.ndarray, score: np.ndarray) -> float | None:
    """Mann-Whitney AUC of ``score`` for a boolean ``outcome`` (ties count a half)."""
    positives, negatives = int(outcome.sum()), int((~outcome).sum())
    if not positives or not negatives:
        return None
    ranks = rankdata(score)
    return float((ranks[outcome].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _risk_score_band(risk: np.ndarray) -> np.ndarray:
    """0 low, 1 medium, 2 high, from the recorded risk score (RISK_SCORE_BANDS)."""
    return np.searchsorted(np.asarray(RISK_SCORE_BANDS), risk, side="right")


def _effect_modifier(person: dict, stage: dict) -> np.ndarray:
    """Factor on the programme's hazard ratio for each index event (subgroup_effects only)."""
    sex = person["sex"][stage["person"]]
    return np.asarray(HAZARD_RATIO_BY_RISK_BAND)[_risk_score_band(stage["risk"])] * np.asarray(HAZARD_RATIO_BY_SEX)[sex]


def _true_risk_discrimination(risk: dict, never_enrolled: np.ndarray) -> dict:
    """The AUC of the true 12-month risk over the first index events of people never enrolled,
    with complete follow-up: what a model that knew everything the generator knows would reach."""
    rows = never_enrolled[risk["person"]] & risk["eligible"]
    outcome, true_risk, year = risk["reoffended"][rows], risk["true_risk"][rows], _year_of(risk["t"][rows])
    return {
        "true_auc": _auc(outcome, true_risk),
        "true_auc_by_index_year": {str(y): _auc(outcome[year == y], true_risk[year == y]) for y in np.unique(year)},
        "people": int(rows.sum()),
        "reoffending_rate_12m": float(outcome.mean()) if rows.any() else None,
        "definition": "AUC of each person's true probability of committing a first reoffence within 12 months "
                      "(from the hazard model, including the unobserved propensity the risk score measures with "
                      "noise) against the recorded 12-month proven reoffending, over the first index events of "
                      "people never enrolled in any programme with complete follow-up: the ceiling for a risk "
                      "model on the recorded covariates, which cannot see the unobserved propensity",
    }


def _people(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    first_index = rng.integers(_day(COHORT_FROM), _day(COHORT_TO) + 1, n)
    age_at_first_index = np.minimum(18 + rng.gamma(2.0, 7.5, n), 75)
    return {
        "sex": _choice(rng, n, SEX_WEIGHTS),
        "birth_year": _year_of(first_index) - np.floor(age_at_first_index).astype(np.int64),
        "ethnic_group": _choice(rng, n, ETHNIC_WEIGHTS),
        "ethnic_missing": rng.random(n) < MISSING_SHARE["ethnic_group"],
        "region": _choice(rng, n, REGION_WEIGHTS),
        # The unobserved propensity to offend: the risk score measures it with noise.
        "latent": rng.standard_normal(n),
        "first_index": first_index,
    }


def _index_timeline(rng: np.random.Generator, person: dict, cut: int) -> list[dict[str, np.ndarray]]:
    """Index events stage by stage (first, second, ...) with the sentence behind each.

    ``proven`` is the conviction of the index offence: the custody start for a release, a few
    days before the order starts for a community sentence; ``committed`` is the index offence.
    ``end`` is when this event's reoffending process stops: the next event's conviction, or
    after the cut-off. ``next_offence`` is the next event's index offence (cut-off + 1 if none).
    """
    n = len(person["latent"])
    who = np.arange(n)
    t = person["first_index"]
    age = _year_of(t) - person["birth_year"]
    custody = rng.random(n) < _expit(-0.45 + 0.5 * person["latent"])
    months, lead = _sentence(rng, custody, age)
    stages = [{"person": who, "t": t, "custody": custody, "sentence_months": months, "proven": t - lead,
               "committed": t - lead - _proof_delay(rng, n)}]
    while len(who):
        last = stages[-1]
        m = len(last["person"])
        has_next = rng.random(m) < _expit(-0.2 + 0.6 * person["latent"][last["person"]])
        start = last["t"] + MIN_INDEX_GAP_DAYS + np.floor(rng.exponential(EXTRA_INDEX_GAP_MEAN_DAYS, m)).astype(np.int64)
        custody = rng.random(m) < _expit(-0.3 + 0.5 * person["latent"][last["person"]])
        age = _year_of(start) - person["birth_year"][last["person"]]
        months, lead = _sentence(rng, custody, age)
        t = start + lead
        committed = start - _proof_delay(rng, m)
        keep = has_next & (t <= _day(COHORT_TO))
        last["end"] = np.where(keep, start, cut + 1)
        last["next_offence"] = np.where(keep, committed, cut + 1)
        who = last["person"][keep]
        if len(who):
            stages.append({"person": who, "t": t[keep], "custody": custody[keep],
                           "sentence_months": months[keep], "proven": start[keep], "committed": committed[keep]})
    return stages


def _sentence(rng: np.random.Generator, custody: np.ndarray, age: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sentence length in months and the days from conviction to the index date.

    Custody: half the sentence is served before release (sentences capped so the offence
    falls after the 16th birthday). Community: the order starts 1-28 days after conviction.
    """
    n = len(custody)
    custody_months = np.clip(np.exp(rng.normal(np.log(8.0), 0.85, n)), 0.5, np.minimum(240, 24 * (age - 16)))
    custody_months = np.maximum(np.round(custody_months * 2) / 2, 0.5)
    community_months = np.array([6.0, 12.0, 18.0, 24.0, 36.0])[_choice(rng, n, (0.15, 0.40, 0.15, 0.25, 0.05))]
    served = np.maximum(np.round(custody_months * 30.4375 / 2), 1).astype(np.int64)
    lag = rng.integers(1, 29, n)
    return np.where(custody, custody_months, community_months), np.where(custody, served, lag)


def _history(rng: np.random.Generator, person: dict, first: dict) -> dict[str, np.ndarray]:
    """Offences before the first index offence, the earliest at the age of first offending."""
    n = len(first["person"])
    latent = person["latent"]
    index_offence = first["committed"]
    age_first = 10 + np.floor(rng.gamma(1.6, 4.5, n)).astype(np.int64)
    first_day = _jan_first(person["birth_year"] + age_first) + rng.integers(0, 365, n)
    career_years = np.maximum(index_offence - first_day, 0) / 365.25
    rate = np.exp(-1.7 + 0.5 * latent) * rng.gamma(1.5, 1 / 1.5, n)
    count = np.where(first_day < index_offence, np.minimum(rng.poisson(career_years * rate), 150), 0)
    owner = np.repeat(np.arange(n), count)
    is_first = np.zeros(len(owner), dtype=bool)
    is_first[np.cumsum(count)[count > 0] - count[count > 0]] = True
    span = (index_offence - first_day)[owner]
    committed = first_day[owner] + np.where(is_first, 0, np.floor(rng.random(len(owner)) * span).astype(np.int64))
    return _offence_rows(rng, first["person"][owner], committed, OFFENCE_WEIGHTS)


def _recent_offences(rng: np.random.Generator, stages: list[dict], hidden: np.ndarray) -> dict[str, np.ndarray]:
    """Offences the unrecorded instability brings in the HIDDEN_RECENT_DAYS before each index event.

    For a later index event they start only after the previous event's 12-month window and
    waiting period, so they never count as reoffending after it.
    """
    owners, days = [], []
    previous = np.full(len(hidden), np.iinfo(np.int64).min // 2)
    for stage in stages:
        who, t = stage["person"], stage["t"]
        start = np.maximum(t - HIDDEN_RECENT_DAYS, previous[who] + 31 * (FOLLOW_UP_MONTHS + WAITING_MONTHS))
        span = np.maximum(t - start, 0)
        rate = HIDDEN_RECENT_RATE * np.exp(HIDDEN_RECENT_ETA * hidden[who] - HIDDEN_RECENT_ETA**2 / 2)
        count = rng.poisson(rate * span / 365.25)
        owner = np.repeat(np.arange(len(who)), count)
        owners.append(who[owner])
        days.append(start[owner] + np.floor(rng.random(len(owner)) * span[owner]).astype(np.int64))
        previous[who] = t
    return _offence_rows(rng, np.concatenate(owners), np.concatenate(days), OFFENCE_WEIGHTS)


def _index_offences(rng: np.random.Generator, stage: dict) -> dict[str, np.ndarray]:
    """The offence each index event's sentence is for, proven on ``stage['proven']``."""
    n = len(stage["person"])
    custody = stage["custody"]
    group = np.where(
        custody,
        _choice(rng, n, INDEX_OFFENCE_WEIGHTS["custody_release"]),
        _choice(rng, n, INDEX_OFFENCE_WEIGHTS["community_sentence"]),
    )
    severity = np.clip(BASE_SEVERITY[group] + _choice(rng, n, (0.25, 0.5, 0.25)) - 1 + custody, 1, 5)
    disposal = np.where(custody, DISPOSALS.index("custody"), DISPOSALS.index("community"))
    stage["index_offence_group"] = group
    return {
        "person": stage["person"], "committed": stage["committed"], "proven": stage["proven"],
        "group": group, "severity": severity, "disposal": disposal,
    }


def _offence_rows(rng: np.random.Generator, owner: np.ndarray, committed: np.ndarray, weights) -> dict[str, np.ndarray]:
    details = _offence_details(rng, len(owner), weights)
    return {"person": owner, "committed": committed, "proven": committed + details.pop("delay"), **details}


def _offence_details(rng: np.random.Generator, n: int, weights) -> dict[str, np.ndarray]:
    group = _choice(rng, n, weights)
    severity = np.clip(BASE_SEVERITY[group] + _choice(rng, n, (0.25, 0.5, 0.25)) - 1, 1, 5)
    disposal = _choice_by_row(rng, DISPOSAL_BY_SEVERITY[severity - 1])
    return {"group": group, "severity": severity, "disposal": disposal, "delay": _proof_delay(rng, n)}


def _proof_delay(rng: np.random.Generator, n: int) -> np.ndarray:
    """Days from offence to conviction or caution: mean about 3 months, at most 9."""
    return np.minimum(np.floor(rng.gamma(1.3, 70.0, n)), MAX_PROOF_DELAY_DAYS).astype(np.int64)


class _ProvenCounter:
    """Counts a person's offences proven strictly before a date, by binary search."""

    SHIFT = 1 << 16   # day numbers + OFFSET fit in 16 bits for 1880..2059
    OFFSET = 1 << 15

    def __init__(self, offences: dict[str, np.ndarray]):
        key = offences["person"].astype(np.int64) * self.SHIFT + offences["proven"] + self.OFFSET
        self.all = np.sort(key)
        self.custody = np.sort(key[offences["disposal"] == DISPOSALS.index("custody")])

    def before(self, person: np.ndarray, day: np.ndarray, custody_only: bool = False) -> np.ndarray:
        keys = self.custody if custody_only else self.all
        base = person.astype(np.int64) * self.SHIFT
        return np.searchsorted(keys, base + day + self.OFFSET) - np.searchsorted(keys, base)


def _index_covariates(
    rng: np.random.Generator, person: dict, stage: dict, prior: np.ndarray, prior_custody: np.ndarray,
) -> dict[str, np.ndarray]:
    who = stage["person"]
    n = len(who)
    latent = person["latent"][who]
    female = person["sex"][who] == SEX.index("female")
    age = _year_of(stage["t"]) - person["birth_year"][who]
    custody = stage["custody"]
    employed = rng.random(n) < _expit(-0.6 - 0.45 * latent - 0.7 * custody + 0.1 * (age - 35) / 10)
    settled = rng.random(n) < _expit(1.0 - 0.45 * latent - 0.8 * custody + 0.15 * female)
    risk = 100 * _expit(
        -0.1 + 0.6 * latent + 0.35 * (np.log1p(prior) - 1.5) - 0.30 * (age - 35) / 10
        - 0.35 * female + 0.25 * (prior_custody > 0) + rng.normal(0, 0.35, n)
    )
    return {
        "age": age, "female": female, "prior": prior, "prior_custody": prior_custody,
        "employed": employed, "settled": settled,
        "employed_missing": rng.random(n) < MISSING_SHARE["employment_at_index"],
        "settled_missing": rng.random(n) < MISSING_SHARE["accommodation_at_index"],
        "risk": np.round(risk, 1),
    }


def _selection_covariates(stage: dict) -> dict[str, np.ndarray]:
    """What a referrer can see, on comparable scales; a missing value counts as 'no'."""
    return {
        "intercept": np.ones(len(stage["person"])),
        "age": (stage["age"] - 35) / 10,
        "priors": np.log1p(stage["prior"]) - 1.5,
        "custody": stage["custody"].astype(float),
        "risk": (stage["risk"] - 50) / 10,
        "employed": (stage["employed"] & ~stage["employed_missing"]).astype(float),
        "settled": (stage["settled"] & ~stage["settled_missing"]).astype(float),
        "female": stage["female"].astype(float),
    }


def _select(rng: np.random.Generator, person: dict, stage: dict, enrolled: np.ndarray, hidden=0.0) -> np.ndarray:
    """Programme chosen around each index event: 0 for none, else 1 + position in PROGRAMMES.

    ``hidden`` is added to every programme's enrolment logit (selection on what is not recorded).
    """
    x = _selection_covariates(stage)
    region = person["region"][stage["person"]]
    utility = []
    for spec in PROGRAMMES:
        home = np.isin(region, [REGIONS.index(r) for r in spec.home_regions]).astype(float)
        lp = sum(coef * (home if name == "home_region" else x[name]) for name, coef in spec.selection.items())
        utility.append(np.exp(lp + hidden))
    weights = np.column_stack([np.ones(len(region)), *utility])
    choice = _choice_by_row(rng, weights / weights.sum(axis=1, keepdims=True))
    return np.where(enrolled[stage["person"]], 0, choice)


def _hazard_eta(person: dict, stage: dict) -> np.ndarray:
    c = HAZARD_COEFFICIENTS
    region_effect = np.array([REGION_HAZARD.get(r, 0.0) for r in REGIONS])
    return (
        c["latent_propensity"] * person["latent"][stage["person"]]
        + c["age_per_10_years"] * (stage["age"] - 35) / 10
        + c["log1p_prior_offences"] * (np.log1p(stage["prior"]) - 1.5)
        + c["any_prior_custody"] * (stage["prior_custody"] > 0)
        + c["custody_release"] * stage["custody"]
        + c["female"] * stage["female"]
        + c["employed"] * stage["employed"]
        + c["settled_accommodation"] * stage["settled"]
        + region_effect[person["region"][stage["person"]]]
    )


def _reoffending(
    rng: np.random.Generator, person: dict, stage: dict, choice: np.ndarray, hazard_ratio: np.ndarray, cut: int,
    hidden_eta=0.0,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Offences committed from each index event until its process ends.

    Offence times are drawn once for the world without any programme; for participants the
    same draws are mapped to the programme world (first time scaled by HR**(-1/shape), spell
    gaps by 1/HR). Returns the observed offences, the true 12-month risk and recorded 12-month
    outcome of every index event, and, for participants, both potential
    outcomes: the 12-month measures and the time to the first offence proven by the cut-off
    (from any source: after this process ends, the next index offence comes first).
    """
    t, end = stage["t"], stage["end"]
    n = len(t)
    eta = _hazard_eta(person, stage) + hidden_eta
    first = WEIBULL_SCALE_DAYS * (rng.standard_exponential(n) * np.exp(-eta)) ** (1 / WEIBULL_SHAPE)
    spell_mean = FURTHER_OFFENCES_MEAN * np.exp(FURTHER_OFFENCES_ETA * eta)
    frailty = rng.gamma(FURTHER_OFFENCES_GAMMA_SHAPE, 1 / FURTHER_OFFENCES_GAMMA_SHAPE, n)
    size = 1 + rng.poisson(spell_mean * frailty)
    owner = np.repeat(np.arange(n), size)
    starts = np.cumsum(size) - size
    gaps = rng.standard_exponential(len(owner)) * (FURTHER_GAP_MEAN_DAYS * np.exp(FURTHER_GAP_ETA * eta))[owner]
    gaps[starts] = 0.0
    running = np.cumsum(gaps)
    since_first = running - running[starts][owner]
    hr = hazard_ratio[owner]
    untreated = first[owner] + since_first
    treated = first[owner] * hr ** (-1 / WEIBULL_SHAPE) + since_first / hr
    details = _offence_details(rng, len(owner), OFFENCE_WEIGHTS)
    delay = details.pop("delay")

    def offences_in(days_after_index):
        committed = t[owner] + np.floor(np.minimum(days_after_index, 1e6)).astype(np.int64)
        return committed, committed < end[owner]

    committed, keep = offences_in(np.where(choice[owner] > 0, treated, untreated))
    observed = {
        "person": stage["person"][owner[keep]], "committed": committed[keep],
        "proven": committed[keep] + delay[keep], **{k: v[keep] for k, v in details.items()},
    }

    participants = np.flatnonzero(choice > 0)
    window_end = _add_months(t, FOLLOW_UP_MONTHS)
    proof_end = _add_months(t, FOLLOW_UP_MONTHS + WAITING_MONTHS)
    counted = keep & (committed < window_end[owner]) & (committed + delay <= proof_end[owner])
    risk = {
        "person": stage["person"],
        "t": t,
        "true_risk": -np.expm1(-((window_end - t) / WEIBULL_SCALE_DAYS) ** WEIBULL_SHAPE * np.exp(eta)),
        "reoffended": np.bincount(owner[counted], minlength=n) > 0,
        "eligible": proof_end <= cut,
    }
    pairs = {}
    for arm, days in (("with", treated), ("without", untreated)):
        arm_committed, arm_keep = offences_in(days)
        counted = arm_keep & (arm_committed < window_end[owner]) & (arm_committed + delay <= proof_end[owner])
        frequency = np.bincount(owner[counted], minlength=n)
        pairs[f"reoffended_{arm}"] = frequency[participants] > 0
        pairs[f"frequency_{arm}"] = frequency[participants]
        first_known = stage["next_offence"].copy()
        known = arm_keep & (arm_committed + delay <= cut)
        np.minimum.at(first_known, owner[known], arm_committed[known])
        pairs[f"first_offence_{arm}"] = first_known[participants]
    pairs["eligible"] = proof_end[participants] <= cut
    return observed, pairs, risk


def _mentors(rng: np.random.Generator, people: int) -> dict[str, np.ndarray]:
    """Each programme's mentors: roughly one for every twelve expected participants."""
    per_programme = max(6, int(np.ceil(0.03 * people / 12)))
    n = per_programme * len(PROGRAMMES)
    programme = np.repeat(np.arange(len(PROGRAMMES)), per_programme)
    lived = rng.random(n) < np.array([p.lived_experience_share for p in PROGRAMMES])[programme]
    trained = rng.integers(_day(date(2017, 1, 1)), _day(date(2024, 12, 31)) + 1, n)
    # The first mentor of each programme was trained before any enrolment could start.
    founder = np.arange(n) % per_programme == 0
    trained = np.where(founder, rng.integers(_day(date(2017, 1, 1)), _day(date(2018, 1, 1)), n), trained)
    return {
        "programme": programme,
        "number": np.arange(n) % per_programme + 1,
        "age_band": _choice(rng, n, (0.08, 0.25, 0.27, 0.22, 0.13, 0.05)),
        "sex": _choice(rng, n, (0.45, 0.53, 0.02)),
        "lived_experience": lived,
        "trained": trained,
        "trained_missing": (rng.random(n) < 0.03) & ~founder,
        "per_programme": np.full(n, per_programme),
    }


def _participation(rng: np.random.Generator, enrolment: dict, mentors: dict, cut: int) -> dict[str, np.ndarray]:
    n = len(enrolment["person"])
    programme = enrolment["programme"] - 1
    before = rng.random(n) < np.where(enrolment["custody"], 0.30, 0.10)
    offset = np.where(
        before,
        -rng.integers(1, ENROL_DAYS_BEFORE + 1, n),
        np.minimum(np.floor(rng.gamma(1.4, 35.0, n)), ENROL_DAYS_AFTER).astype(np.int64),
    )
    start = enrolment["t"] + offset
    planned_sessions = np.array([p.sessions for p in PROGRAMMES])[programme]
    duration = np.round(np.array([p.duration_days for p in PROGRAMMES])[programme] * rng.uniform(0.9, 1.1, n)).astype(np.int64)
    withdraws = rng.random(n) < _expit(
        -1.1 + 0.35 * (enrolment["risk"] - 50) / 10 - 0.2 * (enrolment["age"] - 35) / 10 + 0.3 * enrolment["custody"]
    )
    share_done = np.where(withdraws, rng.uniform(0.05, 0.9, n), 1.0)
    leaves = start + np.maximum(np.round(duration * share_done), 1).astype(np.int64)
    ongoing = leaves > cut
    status = np.where(ongoing, PARTICIPATION_STATUS.index("ongoing"),
                      np.where(withdraws, PARTICIPATION_STATUS.index("withdrawn"), PARTICIPATION_STATUS.index("completed")))
    elapsed_share = np.where(ongoing, np.clip((cut - start) / duration, 0, 1), share_done)
    offered = np.round(planned_sessions * elapsed_share).astype(np.int64)
    offered = np.where(status == PARTICIPATION_STATUS.index("withdrawn"), np.maximum(offered, 1), offered)
    attend_a = np.select([status == 0, status == 1], [9.0, 3.0], 6.0)
    attend_b = np.select([status == 0, status == 1], [2.0, 4.0], 3.0)
    attended = rng.binomial(offered, rng.beta(attend_a, attend_b))
    # A mentor trained by the start date; nobody is assigned to someone who never attended.
    trained_sort = np.where(mentors["trained_missing"], np.iinfo(np.int64).min, mentors["trained"])
    pick = np.zeros(n, dtype=np.int64)
    u = rng.random(n)
    for j in range(len(PROGRAMMES)):
        rows = np.flatnonzero(mentors["programme"] == j)
        order = rows[np.argsort(trained_sort[rows], kind="stable")]
        mine = programme == j
        eligible = np.searchsorted(trained_sort[order], start[mine], side="right")
        pick[mine] = order[np.floor(u[mine] * eligible).astype(np.int64)]
    return {
        "person": enrolment["person"], "programme": programme,
        "start": start, "end": leaves, "ongoing": ongoing, "status": status,
        "offered": offered, "attended": attended, "mentor": pick, "mentor_missing": attended == 0,
        "employed": enrolment["employed"], "settled": enrolment["settled"],
        "risk": enrolment["risk"],
    }


def _assessments(rng: np.random.Generator, part: dict, cut: int) -> dict[str, np.ndarray]:
    """Baseline at start; exit at end unless ongoing; follow-up ~6 months later if by the cut-off."""
    n = len(part["person"])
    share = np.where(part["offered"] > 0, part["attended"] / np.maximum(part["offered"], 1), 0.0)
    completed = part["status"] == PARTICIPATION_STATUS.index("completed")
    engagement = SCORE_ATTENDANCE * share + SCORE_COMPLETION * completed
    skills_gain = np.array([p.skills_gain for p in PROGRAMMES])[part["programme"]]
    integration_gain = np.array([p.integration_gain for p in PROGRAMMES])[part["programme"]]
    risk_c = (part["risk"] - 50) / 10
    skills0 = 5.2 - 0.35 * risk_c + 0.6 * part["employed"] + rng.normal(0, 1.3, n)
    integration0 = 4.8 - 0.25 * risk_c + 0.9 * part["settled"] + rng.normal(0, 1.3, n)
    skills_change = skills_gain * engagement + SCORE_DRIFT + rng.normal(0, SCORE_NOISE_SD, n)
    integration_change = integration_gain * engagement + SCORE_DRIFT + rng.normal(0, SCORE_NOISE_SD, n)
    skills_follow = skills0 + SCORE_RETENTION * skills_change + rng.normal(0, 0.8, n)
    integration_follow = integration0 + SCORE_RETENTION * integration_change + rng.normal(0, 0.8, n)

    employed_code, training_code = EMPLOYMENT_STATUS.index("employed"), EMPLOYMENT_STATUS.index("training")
    employment0 = np.where(
        part["employed"],
        np.where(rng.random(n) < 0.85, employed_code, training_code),
        _choice(rng, n, (0.0, 0.15, 0.60, 0.25)),
    )
    working0 = employment0 <= training_code
    e = EMPLOYMENT_TRANSITION
    moves_in = rng.random(n) < _expit(e["intercept"] + e["attended_share"] * share + e["completed"] * completed)
    found = np.where(rng.random(n) < 0.6, employed_code, training_code)
    employment1 = np.where(working0, np.where(rng.random(n) < 0.9, employment0, EMPLOYMENT_STATUS.index("unemployed")),
                           np.where(moves_in, found, employment0))
    employment2 = np.where(rng.random(n) < 0.85, employment1,
                           np.where(employment1 <= training_code, EMPLOYMENT_STATUS.index("unemployed"), found))

    settled_code, unsettled_code = ACCOMMODATION_STATUS.index("settled"), ACCOMMODATION_STATUS.index("unsettled")
    accommodation0 = np.where(part["settled"] ^ (rng.random(n) < 0.1), settled_code, unsettled_code)
    a = ACCOMMODATION_TRANSITION
    settles = rng.random(n) < _expit(a["intercept"] + a["attended_share"] * share + a["completed"] * completed)
    accommodation1 = np.where(accommodation0 == settled_code,
                              np.where(rng.random(n) < 0.95, settled_code, unsettled_code),
                              np.where(settles, settled_code, unsettled_code))
    accommodation2 = np.where(rng.random(n) < 0.9, accommodation1, 1 - accommodation1)

    follow_day = part["end"] + np.round(rng.normal(182, 20, n)).astype(np.int64)
    has_exit = ~part["ongoing"]
    has_follow = has_exit & (follow_day <= cut)
    stages = (
        (np.ones(n, dtype=bool), part["start"], employment0, accommodation0, skills0, integration0),
        (has_exit, part["end"], employment1, accommodation1, skills0 + skills_change, integration0 + integration_change),
        (has_follow, follow_day, employment2, accommodation2, skills_follow, integration_follow),
    )
    columns = {k: [] for k in ("row", "programme", "day", "stage", "employment", "accommodation", "skills", "integration")}
    for code, (present, day, employment, accommodation, skills, integration) in enumerate(stages):
        rows = np.flatnonzero(present)
        for name, values in (("row", rows), ("programme", part["programme"][rows]), ("day", day[rows]),
                             ("stage", np.full(len(rows), code)), ("employment", employment[rows]),
                             ("accommodation", accommodation[rows]), ("skills", _score(skills[rows], 10)),
                             ("integration", _score(integration[rows], 10))):
            columns[name].append(values)
    out = {k: np.concatenate(v) for k, v in columns.items()}
    out["person"] = part["person"][out["row"]]
    return out


def _feedback(rng: np.random.Generator, part: dict, mentors: dict, cut: int) -> dict[str, np.ndarray]:
    """Survey responses: about half the participants, most mentors, some partners and staff."""
    first_day, last_day = _day(date(2019, 6, 1)), cut
    satisfaction_mean = np.array([p.satisfaction for p in PROGRAMMES])
    n = len(part["person"])
    responds = rng.random(n) < 0.55
    share = part["attended"] / np.maximum(part["offered"], 1)
    p_day = np.minimum(np.where(part["ongoing"], part["start"] + 60, part["end"]), cut)
    p_sat = satisfaction_mean[part["programme"]] + 1.2 * (share - 0.6) + rng.normal(0, 0.9, n)

    m = len(mentors["programme"])
    m_responds = rng.random(m) < 0.7
    m_from = np.maximum(np.where(mentors["trained_missing"], first_day, mentors["trained"] + 90), first_day)
    m_day = m_from + np.floor(rng.random(m) * np.maximum(last_day - m_from, 0)).astype(np.int64)
    m_sat = satisfaction_mean[mentors["programme"]] + 0.2 + rng.normal(0, 0.8, m)

    participants_per_programme = np.bincount(part["programme"], minlength=len(PROGRAMMES))
    partner_count = np.maximum(8, participants_per_programme // 15)
    staff_count = np.maximum(6, participants_per_programme // 25)
    other_programme = np.concatenate([np.repeat(np.arange(len(PROGRAMMES)), partner_count),
                                      np.repeat(np.arange(len(PROGRAMMES)), staff_count)])
    other_type = np.concatenate([np.full(partner_count.sum(), RESPONDENT_TYPES.index("partner")),
                                 np.full(staff_count.sum(), RESPONDENT_TYPES.index("staff"))])
    k = len(other_programme)
    o_day = rng.integers(first_day, last_day + 1, k)
    o_sat = satisfaction_mean[other_programme] - 0.1 + rng.normal(0, 0.8, k)

    programme = np.concatenate([part["programme"][responds], mentors["programme"][m_responds], other_programme])
    respondent = np.concatenate([np.full(responds.sum(), RESPONDENT_TYPES.index("participant")),
                                 np.full(m_responds.sum(), RESPONDENT_TYPES.index("mentor")), other_type])
    day = np.concatenate([p_day[responds], m_day[m_responds], o_day])
    satisfaction = _score(np.concatenate([p_sat[responds], m_sat[m_responds], o_sat]), 5)
    relationship = _score(satisfaction + rng.normal(0, 0.7, len(satisfaction)), 5)
    # Partners and staff often skip the relationship question; anyone may.
    skip_share = np.where(respondent >= RESPONDENT_TYPES.index("partner"), 0.6, 0.1)
    order = np.lexsort((respondent, programme, day))
    return {
        "programme": programme[order], "respondent": respondent[order], "day": day[order],
        "satisfaction": satisfaction[order], "relationship": relationship[order],
        "relationship_missing": (rng.random(len(satisfaction)) < skip_share)[order],
    }


def _truth(people: int, seed: int, cutoff: date, pairs: dict, subgroup_effects: bool = False) -> dict:
    """Both potential outcomes of every participant, summarised per programme."""
    cut = _day(cutoff)
    programmes = {}
    for j, spec in enumerate(PROGRAMMES):
        mine = pairs["programme"] == j + 1
        counted = mine & pairs["eligible"]
        programmes[spec.programme_id] = {
            "name": spec.name,
            "programme_type": spec.programme_type,
            "hazard_ratio": spec.hazard_ratio,
            "participants": int(mine.sum()),
            "participants_with_complete_follow_up": int(counted.sum()),
            "marginal_hazard_ratio": _marginal_hazard_ratio(pairs, mine, cut),
            "reoffending_rate_12m": _outcome_pair(pairs["reoffended_with"], pairs["reoffended_without"], counted),
            "reoffences_per_person_12m": _outcome_pair(pairs["frequency_with"], pairs["frequency_without"], counted),
            "selection": {
                "logit_coefficients": spec.selection,
                "home_regions": list(spec.home_regions),
                "strongest": spec.programme_id == STRONGEST_SELECTION,
            },
            "intermediate_outcomes": {
                "life_skills_gain": spec.skills_gain,
                "community_integration_gain": spec.integration_gain,
                "mean_participant_satisfaction": spec.satisfaction,
            },
        }
        if subgroup_effects:
            programmes[spec.programme_id]["subgroups"] = _subgroup_truth(pairs, mine, spec.hazard_ratio)
    truth = {
        "seed": int(seed),
        "people": int(people),
        "cutoff": cutoff.isoformat(),
        "definitions": {
            "index_event": "the participant's first index event whose enrolment window (90 days before to "
                           "180 days after the index date, inclusive) contains start_date",
            "reoffended_12m": "at least one offence committed on or after the index date and before index date "
                              "+ 12 months, and proven on or before index date + 18 months",
            "participants_with_complete_follow_up": "participants whose index date + 18 months is on or before "
                                                    "the cut-off",
            "months": "calendar months; a day missing from the target month becomes its last day "
                      "(2020-08-31 + 18 months = 2022-02-28)",
            "effect": "with_programme minus without_programme over the same participants: both potential "
                      "outcomes are simulated from the same random numbers, so this is the exact effect on "
                      "the treated in this extract",
            "without_programme": "no programme at all; other programmes' participants in a comparison pool "
                                 "carry their own programme's effect",
            "hazard_ratio": "the planted hazard ratio: it multiplies each participant's own hazard (conditional "
                            "on everything about them, observed or not) from the index date until their next "
                            "index event",
            "marginal_hazard_ratio": "Cox (Efron ties) hazard ratio of with against without the programme over all "
                                     "participants, each in both worlds: time from the index date to the first "
                                     "offence committed on or after it and proven by the cut-off, censored at the "
                                     "cut-off. Nearer 1 than hazard_ratio because people differ in ways the model "
                                     "does not hold (the hazard ratio is not collapsible) and later index events "
                                     "start without the programme; a matched Cox model estimates this one",
        },
        "hazard_model": {
            "baseline": "weibull",
            "shape": WEIBULL_SHAPE,
            "scale_days": WEIBULL_SCALE_DAYS,
            "log_hazard_coefficients": HAZARD_COEFFICIENTS,
            "region_log_hazard": REGION_HAZARD,
            "programme_effect": "the hazard ratio multiplies the participant's hazard of the first reoffence "
                                "from the index date and the pace of later offences in the spell",
        },
        "programmes": programmes,
        "intermediate_outcomes": {
            "life_skills_score": "change from baseline rises with the share of sessions attended and with "
                                 "completion, scaled by the programme's life_skills_gain; about 70% of the exit "
                                 "change remains at follow-up",
            "community_integration_score": "as life skills, scaled by community_integration_gain",
            "employment_status": "the chance of moving from unemployed or inactive at baseline to employed or "
                                 "training by exit rises with attendance share and completion",
            "accommodation_status": "the chance of moving from unsettled to settled by exit rises with attendance "
                                    "share and completion",
            "score_change_model": {"attended_share": SCORE_ATTENDANCE, "completed": SCORE_COMPLETION,
                                   "drift": SCORE_DRIFT, "noise_sd": SCORE_NOISE_SD,
                                   "retained_at_follow_up": SCORE_RETENTION},
            "employment_transition_logit": EMPLOYMENT_TRANSITION,
            "accommodation_transition_logit": ACCOMMODATION_TRANSITION,
        },
    }
    if subgroup_effects:
        truth["effect_modification"] = {
            "risk_score_bands": {"low": f"risk_score below {RISK_SCORE_BANDS[0]:g}",
                                 "medium": f"{RISK_SCORE_BANDS[0]:g} to below {RISK_SCORE_BANDS[1]:g}",
                                 "high": f"{RISK_SCORE_BANDS[1]:g} or more"},
            "hazard_ratio_factor_by_risk_score_band": dict(zip(RISK_SCORE_BAND_NAMES, HAZARD_RATIO_BY_RISK_BAND)),
            "hazard_ratio_factor_by_sex": dict(zip(SEX, HAZARD_RATIO_BY_SEX)),
            "subgroups": "each programme's subgroups hold, per level of sex and of the recorded risk score's band "
                         "at the participant's index event, the exact effect on the treated of that level as "
                         "reoffending_rate_12m is for the whole programme",
        }
    return truth


def _subgroup_truth(pairs: dict, mine: np.ndarray, hazard_ratio: float) -> dict:
    """Per level of sex and of the risk-score band: participants, planted hazard ratio and both
    potential 12-month reoffending rates over those with complete follow-up."""
    band = _risk_score_band(pairs["risk"])
    levels = {
        "sex": [(name, pairs["sex"] == code, HAZARD_RATIO_BY_SEX[code]) for code, name in enumerate(SEX)],
        "risk_score_band": [(name, band == code, HAZARD_RATIO_BY_RISK_BAND[code])
                            for code, name in enumerate(RISK_SCORE_BAND_NAMES)],
    }
    return {
        variable: {
            name: {
                "hazard_ratio_factor": factor,
                "participants_with_complete_follow_up": int((mine & here & pairs["eligible"]).sum()),
                "reoffending_rate_12m": _outcome_pair(pairs["reoffended_with"], pairs["reoffended_without"],
                                                      mine & here & pairs["eligible"]),
            }
            for name, here, factor in entries
        }
        for variable, entries in levels.items()
    }


def _marginal_hazard_ratio(pairs: dict, rows: np.ndarray, cut: int) -> float | None:
    """The Cox hazard ratio between the two potential outcomes of the same participants."""
    starts = pairs["t"][rows]
    first = np.concatenate([pairs["first_offence_with"][rows], pairs["first_offence_without"][rows]])
    index_day = np.concatenate([starts, starts])
    event = first <= cut
    time = np.where(event, first, cut) - index_day
    arm = np.repeat([1, 0], len(starts))
    return _cox_hazard_ratio(time, event, arm)


def _cox_hazard_ratio(time: np.ndarray, event: np.ndarray, arm: np.ndarray) -> float | None:
    """Hazard ratio of arm 1 against arm 0 from a Cox model with Efron ties (Newton-Raphson).

    At each distinct event time with d deaths (d1 in arm 1), the Efron log partial likelihood
    subtracts sum over l < d of log(S - l/d * E), S the risk-set sum and E the deaths' sum.
    """
    deaths1, deaths = int(arm[event].sum()), int(event.sum())
    if deaths1 == 0 or deaths1 == deaths:
        return None
    taus, at_tau = np.unique(time[event], return_inverse=True)
    d = np.bincount(at_tau, minlength=len(taus))
    d1 = np.bincount(at_tau, weights=arm[event], minlength=len(taus))
    d0 = d - d1
    time0, time1 = np.sort(time[arm == 0]), np.sort(time[arm == 1])
    r0 = len(time0) - np.searchsorted(time0, taus)
    r1 = len(time1) - np.searchsorted(time1, taus)
    tie = np.repeat(np.arange(len(taus)), d)
    share = (np.arange(len(tie)) - np.repeat(np.cumsum(d) - d, d)) / d[tie]
    beta = 0.0
    for _ in range(100):
        ratio = np.exp(beta)
        denominator = r0[tie] + ratio * r1[tie] - share * (d0[tie] + ratio * d1[tie])
        fraction = ratio * (r1[tie] - share * d1[tie]) / denominator
        step = (deaths1 - fraction.sum()) / np.sum(fraction - fraction**2)
        beta += step
        if abs(step) < 1e-12:
            break
    return float(np.exp(beta))


def _outcome_pair(with_values: np.ndarray, without_values: np.ndarray, rows: np.ndarray) -> dict:
    """Means with and without the programme and their difference; null when nobody counts."""
    n = int(rows.sum())
    if not n:
        return {"with_programme": None, "without_programme": None, "effect": None}
    with_total = int(with_values[rows].astype(np.int64).sum())
    without_total = int(without_values[rows].astype(np.int64).sum())
    return {
        "with_programme": with_total / n,
        "without_programme": without_total / n,
        "effect": (with_total - without_total) / n,
    }


# ---------------------------------------------------------------------------------------------
# Tables in contract column order


def _people_table(person: dict, person_ids: pa.Array) -> pa.Table:
    return _table("people", {
        "person_id": person_ids,
        "sex": _labels(SEX, person["sex"]),
        "birth_year": person["birth_year"],
        "ethnic_group": _labels(ETHNIC_GROUPS, person["ethnic_group"], person["ethnic_missing"]),
        "region": _labels(REGIONS, person["region"]),
    })


def _index_table(stages: list[dict], person: dict, offences: dict, cut: int, person_ids: pa.Array) -> pa.Table:
    s = {k: np.concatenate([stage[k] for stage in stages]) for k in
         ("person", "t", "custody", "index_offence_group", "sentence_months", "prior", "prior_custody",
          "risk", "employed", "employed_missing", "settled", "settled_missing")}
    first_offence = np.full(len(person["latent"]), np.iinfo(np.int64).max)
    in_extract = offences["proven"] <= cut
    np.minimum.at(first_offence, offences["person"][in_extract], offences["committed"][in_extract])
    order = np.lexsort((s["t"], s["person"]))
    s = {k: v[order] for k, v in s.items()}
    return _table("index_events", {
        "person_id": pc.take(person_ids, s["person"]),
        "index_date": _dates(s["t"]),
        "index_type": _labels(INDEX_TYPES, np.where(s["custody"], 0, 1)),
        "index_offence_group": _labels(OFFENCE_GROUPS, s["index_offence_group"]),
        "sentence_months": s["sentence_months"],
        "prior_offences": s["prior"],
        "prior_custody": s["prior_custody"],
        "age_first_offence": (_year_of(first_offence) - person["birth_year"])[s["person"]],
        "risk_score": s["risk"],
        "employment_at_index": pa.array(s["employed"], mask=s["employed_missing"]),
        "accommodation_at_index": pa.array(s["settled"], mask=s["settled_missing"]),
    })


def _offence_table(offences: dict, cut: int, person_ids: pa.Array) -> pa.Table:
    keep = offences["proven"] <= cut
    o = {k: v[keep] for k, v in offences.items()}
    order = np.lexsort((o["proven"], o["committed"], o["person"]))
    o = {k: v[order] for k, v in o.items()}
    return _table("offences", {
        "offence_id": _ids("O", len(order)),
        "person_id": pc.take(person_ids, o["person"]),
        "offence_date": _dates(o["committed"]),
        "proven_date": _dates(o["proven"]),
        "offence_group": _labels(OFFENCE_GROUPS, o["group"]),
        "severity": o["severity"],
        "disposal": _labels(DISPOSALS, o["disposal"]),
    })


def _programme_table() -> pa.Table:
    return _table("programmes", {
        "programme_id": [p.programme_id for p in PROGRAMMES],
        "name": [p.name for p in PROGRAMMES],
        "programme_type": [p.programme_type for p in PROGRAMMES],
        "provider": [p.provider for p in PROGRAMMES],
    })


def _programme_ids(codes: np.ndarray) -> pa.Array:
    return _labels(tuple(p.programme_id for p in PROGRAMMES), codes)


def _mentor_ids(programme: np.ndarray, number: np.ndarray, per_programme: int) -> pa.Array:
    width = len(str(per_programme))
    numbers = pc.utf8_lpad(pc.cast(pa.array(number), pa.string()), width, "0")
    return pc.binary_join_element_wise(_programme_ids(programme), numbers, "M")


def _mentor_table(mentors: dict) -> pa.Table:
    return _table("mentors", {
        "mentor_id": _mentor_ids(mentors["programme"], mentors["number"], int(mentors["per_programme"][0])),
        "programme_id": _programme_ids(mentors["programme"]),
        "age_band": _labels(AGE_BANDS, mentors["age_band"]),
        "sex": _labels(SEX, mentors["sex"]),
        "lived_experience": mentors["lived_experience"],
        "trained_date": _dates(mentors["trained"], mentors["trained_missing"]),
    })


def _participation_table(part: dict, person_ids: pa.Array, mentors: dict) -> pa.Table:
    order = np.lexsort((part["programme"], part["person"]))
    p = {k: v[order] for k, v in part.items()}
    mentor_ids = _mentor_ids(mentors["programme"], mentors["number"], int(mentors["per_programme"][0]))
    return _table("participation", {
        "person_id": pc.take(person_ids, p["person"]),
        "programme_id": _programme_ids(p["programme"]),
        "start_date": _dates(p["start"]),
        "end_date": _dates(p["end"], p["ongoing"]),
        "status": _labels(PARTICIPATION_STATUS, p["status"]),
        "sessions_offered": p["offered"],
        "sessions_attended": p["attended"],
        "mentor_id": pc.take(mentor_ids, pa.array(p["mentor"], mask=p["mentor_missing"])),
    })


def _assessment_table(a: dict, person_ids: pa.Array) -> pa.Table:
    order = np.lexsort((a["stage"], a["person"]))
    a = {k: v[order] for k, v in a.items()}
    return _table("assessments", {
        "person_id": pc.take(person_ids, a["person"]),
        "programme_id": _programme_ids(a["programme"]),
        "assessment_date": _dates(a["day"]),
        "stage": _labels(ASSESSMENT_STAGES, a["stage"]),
        "employment_status": _labels(EMPLOYMENT_STATUS, a["employment"]),
        "accommodation_status": _labels(ACCOMMODATION_STATUS, a["accommodation"]),
        "life_skills_score": a["skills"],
        "community_integration_score": a["integration"],
    })


def _feedback_table(f: dict) -> pa.Table:
    return _table("feedback", {
        "response_id": _ids("R", len(f["day"])),
        "programme_id": _programme_ids(f["programme"]),
        "respondent_type": _labels(RESPONDENT_TYPES, f["respondent"]),
        "response_date": _dates(f["day"]),
        "satisfaction": f["satisfaction"],
        "relationship_quality": pa.array(f["relationship"], mask=f["relationship_missing"]),
    })


ARROW_TYPES = {
    "id": pa.string(), "text": pa.string(), "date": pa.date32(), "integer": pa.int32(),
    "number": pa.float64(), "boolean": pa.bool_(),
}


def _table(name: str, columns: dict) -> pa.Table:
    contract = TABLES[name]
    assert list(columns) == contract.column_names, f"{name}: columns differ from the contract"
    schema = pa.schema([pa.field(c.name, ARROW_TYPES[c.type], nullable=not c.required) for c in contract.columns])
    arrays = [
        (v if isinstance(v, (pa.Array, pa.ChunkedArray)) else pa.array(v)).cast(field.type)
        for v, field in zip(columns.values(), schema)
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas(
        date_as_object=False,
        types_mapper={pa.int32(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}.get,
    )
    for field in table.schema:
        if field.type == pa.date32():
            frame[field.name] = frame[field.name].astype("datetime64[ns]")
    return frame


# ---------------------------------------------------------------------------------------------
# Small vectorised helpers


def _day(d: date) -> int:
    return (d - EPOCH).days


def _date(day: int) -> date:
    return date.fromordinal(EPOCH.toordinal() + int(day))


def _year_of(days: np.ndarray) -> np.ndarray:
    return np.asarray(days).astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970


def _jan_first(years: np.ndarray) -> np.ndarray:
    return (np.asarray(years) - 1970).astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)


def _add_months(days: np.ndarray, months: int) -> np.ndarray:
    """Day numbers plus calendar months, clipping to the end of a shorter month."""
    d = np.asarray(days).astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    day_in_month = (d - month.astype("datetime64[D]")).astype(np.int64)
    target = month + months
    target_start = target.astype("datetime64[D]").astype(np.int64)
    target_length = (target + 1).astype("datetime64[D]").astype(np.int64) - target_start
    return target_start + np.minimum(day_in_month, target_length - 1)


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


def _choice(rng: np.random.Generator, n: int, weights) -> np.ndarray:
    cumulative = np.cumsum(weights) / np.sum(weights)
    return np.minimum(np.searchsorted(cumulative, rng.random(n), side="right"), len(cumulative) - 1)


def _choice_by_row(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One category per row of a (rows x categories) probability matrix."""
    cumulative = np.cumsum(probabilities, axis=1)
    u = rng.random(len(probabilities))[:, None] * cumulative[:, -1:]
    return np.minimum((u >= cumulative).sum(axis=1), probabilities.shape[1] - 1)


def _score(values: np.ndarray, top: int) -> np.ndarray:
    return np.clip(np.round(values), 1, top).astype(np.int64)


def _ids(prefix: str, n: int) -> pa.Array:
    numbers = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1)), pa.string()), len(str(n)), "0")
    return pc.binary_join_element_wise(prefix, numbers, "")


def _labels(labels: tuple[str, ...], codes: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    return pc.take(pa.array(labels), pa.array(np.asarray(codes), mask=missing))


def _dates(days: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32), type=pa.date32(), mask=missing)
