"""One programme's evaluation, end to end, as tidy result tables.

Propensity model → nearest-neighbour matching → balance → effects for every measure and
window, then survival on the matched sample. Each step is a function in this package;
this module only strings them together and shapes their results into the tables the
warehouse stores (one row set per programme).

The matched sample is built once per programme, on the people analysed for the headline
measure: complete headline follow-up and every configured covariate present. Shorter
windows are then complete for everyone matched; a longer window is measured only where it
is complete, so its matched sets may be broken and its estimate is labelled as such.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from models.balance import assess_balance
from models.diagnostics import DesignDiagnostics, NegativeControl, Thresholds, assess_design
from models.effects import STATUS_OK, CovariateAdjustment, estimate_effect, gate_status
from models.matching import MatchResult, match_propensity
from models.propensity import PropensityModelError, fit_propensity
from models.survival import (
    DEFAULT_HORIZONS,
    cox_adjusted,
    cox_matched,
    kaplan_meier,
    log_rank_test,
    restricted_mean_survival_time,
)

# (measure column in analysis.measures, outcome kind for models.effects)
MEASURES: tuple[tuple[str, str], ...] = (
    ("reoffended", "binary"),
    ("frequency", "count"),
    ("days_to_first", "time_to_first"),
    ("custodial_reoffence", "binary"),
)
HORIZON_LABELS = {91: "3 months", 182: "6 months", 365: "12 months", 730: "24 months"}
GROUP_LABELS = {True: "treated", False: "comparison"}
STATUS_TOO_FEW_PARTICIPANTS = "too_few_participants"
# Columns of analysis.negative_controls: outcomes before the index date that taking part cannot change.
NEGATIVE_CONTROLS = (
    NegativeControl("pre_offences_12", "the number of offences in the year before the index date"),
    NegativeControl("pre_offended_24_12", "the share who offended two years to one year before the index date"),
)


# A covariate on which fewer than this many analysed people differ from the most common value
# carries too little information to adjust for: it is dropped before fitting, with a note.
NEAR_CONSTANT_PEOPLE = 5


@dataclass(frozen=True)
class MatchingSpec:
    covariates: Sequence[str]
    categorical: Sequence[str] = ()
    ratio: int = 1
    replace: bool = False
    caliper: float | None = 0.2
    exact: Sequence[str] = ()
    # Covariates whose missing values are filled in and flagged by a <name>_missing indicator.
    missing_indicator: Sequence[str] = ()


def with_missing_indicators(people: pd.DataFrame, spec: MatchingSpec) -> tuple[pd.DataFrame, MatchingSpec]:
    """The people with the gaps of each ``missing_indicator`` covariate filled, and the spec with its
    indicator ``<name>_missing`` (1 where missing) after it, for each such covariate that has gaps.

    A gap is filled with the observed mean for a number (0 when nothing is observed), 0 (false) for
    a binary covariate, the level ``missing`` for a categorical one. In a model linear in the
    covariate, beside its indicator, the value filled in changes no prediction, only the indicator's
    coefficient. The caller's frame is left as it is (its columns are shared, not copied: a
    filled-in column is a new array).
    """
    frame = people.copy(deep=False)
    covariates, categorical = list(spec.covariates), list(spec.categorical)
    for name in spec.missing_indicator:
        if name not in frame.columns or name not in covariates:
            continue
        column = frame[name]
        absent = column.isna()
        if not absent.any():
            continue
        if name in categorical or not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
            frame[name] = column.astype(object).where(~absent, "missing")
        else:
            observed = column.astype(float)
            binary = observed.dropna().isin([0.0, 1.0]).all()
            frame[name] = observed.fillna(0.0 if binary or absent.all() else observed.mean())
        indicator = f"{name}_missing"
        frame[indicator] = absent.astype(float)
        covariates.insert(covariates.index(name) + 1, indicator)
    return frame, replace(spec, covariates=tuple(covariates))


def prepare_covariates(people: pd.DataFrame, spec: MatchingSpec) -> tuple[pd.DataFrame, MatchingSpec, list[str]]:
    """Design checks before fitting: the people, the covariates the models can use, and notes.

    The ``missing_indicator`` covariates' gaps are filled and flagged (:func:`with_missing_indicators`).
    Then a covariate that takes a single value, or on which fewer than ``NEAR_CONSTANT_PEOPLE``
    people differ from the most common value, is dropped, and a note names it. People are never
    dropped. The caller's frame is left as it is.
    """
    frame, spec = with_missing_indicators(people, spec)
    covariates, categorical = list(spec.covariates), list(spec.categorical)
    notes = []
    kept = []
    for name in covariates:
        if name not in frame.columns:
            kept.append(name)  # named by the model's own error
            continue
        differing = _differing_from_most_common(frame[name])
        if differing == 0:
            notes.append(f"covariate {name} dropped: every person analysed has the same value")
        elif differing < NEAR_CONSTANT_PEOPLE:
            notes.append(f"covariate {name} dropped: nearly constant (fewer than {NEAR_CONSTANT_PEOPLE} "
                         "people analysed differ from the most common value)")
        else:
            kept.append(name)
    spec = replace(spec, covariates=tuple(kept), categorical=tuple(c for c in categorical if c in kept))
    return frame, spec, notes


@dataclass
class ProgrammeEffects:
    """Result tables of one programme's matched comparison (all carry ``programme_id``)."""

    programme_id: str
    status: str
    message: str = ""
    propensity_model: pd.DataFrame = field(default_factory=pd.DataFrame)
    matched_sets: pd.DataFrame = field(default_factory=pd.DataFrame)
    balance: pd.DataFrame = field(default_factory=pd.DataFrame)
    sample_sizes: pd.DataFrame = field(default_factory=pd.DataFrame)
    unmatched: pd.DataFrame = field(default_factory=pd.DataFrame)
    effects: pd.DataFrame = field(default_factory=pd.DataFrame)
    match: MatchResult | None = None


def window_words(months: int) -> str:
    return "within a year" if months == 12 else (
        f"within {months // 12} years" if months % 12 == 0 else f"within {months} months")


def model_frame(data: pd.DataFrame, spec: MatchingSpec) -> pd.DataFrame:
    """Booleans as 0/1 numbers, the treatment as 0/1, rows numbered from 0.

    The other columns are shared with ``data``, not copied (a programme's frame is large);
    converted columns are new arrays, so ``data`` is left as it is."""
    frame = data.copy(deep=False)
    frame.index = pd.RangeIndex(len(frame))
    for column in frame.columns:
        if frame[column].dtype == bool or str(frame[column].dtype) == "boolean":
            frame[column] = frame[column].astype(float)
    frame["treated"] = data["treated"].to_numpy().astype(int)
    return frame


def _differing_from_most_common(column: pd.Series) -> int:
    """How many values differ from the most common one.

    For numbers, counted against the median: a value shared by all but a few of (more than
    ten) people is the median, and no value is shared by more people than the count implies;
    one pass, where counting every distinct value of a continuous covariate costs far more.
    """
    if len(column) > 10 and (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
        values = column.to_numpy(dtype=float)
        return int((values != np.median(values)).sum())
    counts = column.value_counts(dropna=False)
    return len(column) - (int(counts.iloc[0]) if len(counts) else 0)


def evaluate_effects(
    programme_id: str,
    people: pd.DataFrame,
    measures: pd.DataFrame | None,
    spec: MatchingSpec,
    windows: Sequence[int],
    headline_window: int,
    min_treated: int = 60,
    min_treated_reoffenders: int = 30,
) -> ProgrammeEffects:
    """Propensity, matching, balance and effects for one programme.

    Args:
        people: one row per analysed person: ``person_id``, ``treated`` and the covariates.
        measures: ``person_id, window_months`` and the measure columns of ``MEASURES``
            (missing where the window is incomplete); or ``None`` when ``people`` already
            holds one column per measure and window (``reoffended_12``...), as
            :func:`_measures_wide` lays them out.
        spec: covariates and matching settings.
    """
    outcomes = None if measures is None else _measures_wide(people["person_id"], measures, windows)
    people = model_frame(people, spec)
    n_treated = int(people["treated"].sum())
    if n_treated == 0 or n_treated == len(people):
        return ProgrammeEffects(programme_id, "not_estimated", "no participants or no comparison pool to compare")
    if n_treated < min_treated:
        # Before any model: with so few participants the propensity model may not even fit, and
        # that is not the reason to give.
        return ProgrammeEffects(programme_id, STATUS_TOO_FEW_PARTICIPANTS,
                                f"too few participants: {n_treated} of the {min_treated} needed")
    people, spec, notes = prepare_covariates(people, spec)
    try:
        propensity = fit_propensity(people, "treated", list(spec.covariates), list(spec.categorical))
    except PropensityModelError as error:
        return ProgrammeEffects(programme_id, "propensity_model_failed", "; ".join([str(error), *notes]))
    match = match_propensity(
        people, propensity.linear_predictor, "treated",
        ratio=spec.ratio, replace=spec.replace, caliper=spec.caliper, exact=list(spec.exact),
    )
    balance = assess_balance(
        people, people["treated"].to_numpy(), list(spec.covariates), weights=match.weights,
        categorical=list(spec.categorical), distance=propensity.linear_predictor,
    )
    # One adjusted-model design for every measure and window; the outcomes in their own frame (or
    # the people's, when they came with it).
    adjustment = CovariateAdjustment(people, "treated", list(spec.covariates), list(spec.categorical))
    if outcomes is None:
        outcomes = people  # the outcome columns are read from it as they are (floats: no copy)
    else:
        outcomes["treated"] = people["treated"].to_numpy()
    measures = [(window, measure, kind) for window in windows for measure, kind in MEASURES]
    gates = {"min_treated": min_treated, "min_treated_reoffenders": min_treated_reoffenders}
    # The adjusted estimates of the outcomes the gates let through, fitted together (outcomes
    # measured on the same rows share the passes over the design).
    estimated = [(window, measure) for window, measure, kind in measures
                 if gate_status(outcomes[f"{measure}_{window}"], match, kind=kind, **gates) == STATUS_OK]
    adjusted = dict(zip(estimated, adjustment.estimate_many(
        [outcomes[f"{measure}_{window}"] for window, measure in estimated])))
    effect_rows = []
    for window, measure, kind in measures:
        summary = estimate_effect(
            outcomes, f"{measure}_{window}", match, treatment="treated",
            covariates=list(spec.covariates), categorical=list(spec.categorical), kind=kind,
            window=window_words(window), adjustment=adjustment, adjusted=adjusted.get((window, measure)), **gates,
        )
        effect_rows.extend(_effect_rows(summary, measure, window, window > headline_window))
    return ProgrammeEffects(
        programme_id=programme_id,
        status="ok",
        message="; ".join(notes),
        propensity_model=propensity.to_frame(),
        matched_sets=pd.DataFrame({
            "person_id": people["person_id"].array,  # as read: Arrow strings stay Arrow strings
            "treated": people["treated"].to_numpy() == 1,
            "subclass": match.subclass if match.subclass is not None else np.full(len(people), np.nan),
            "weight": match.weights,
            "logit_score": propensity.linear_predictor,
            "propensity": propensity.score,
        }).assign(subclass=lambda f: f["subclass"].where(f["weight"] > 0)),
        balance=_balance_rows(balance.to_frame()),
        sample_sizes=_sample_size_rows(match),
        unmatched=pd.DataFrame({
            "person_id": people.loc[match.unmatched_treated, "person_id"].to_numpy(),
            "reason": "no comparison person within the caliper" if spec.caliper else "no comparison person left",
        }),
        effects=pd.DataFrame.from_records(effect_rows, columns=EFFECT_COLUMNS),
        match=match,
    )


def _measures_wide(person_ids: pd.Series, measures: pd.DataFrame, windows: Sequence[int]) -> pd.DataFrame:
    """One float column per measure and window (``reoffended_12``...), a row per person in the
    order of ``person_ids``; missing (NaN) where a person has no row for the window. Rows of
    other people or windows are not used."""
    names = [m for m, _ in MEASURES]
    people = pd.Index(person_ids)
    if not people.is_unique:
        raise ValueError("person_id is not unique among the people analysed")
    row = people.get_indexer(measures["person_id"])
    window = pd.Index(windows).get_indexer(measures["window_months"])
    used = (row >= 0) & (window >= 0)
    cell = row[used] * len(windows) + window[used]
    if np.bincount(cell, minlength=1).max() > 1:
        raise ValueError("the measures hold more than one row for a person and follow-up window")
    wide = np.full((len(people) * len(windows), len(names)), np.nan)
    for j, name in enumerate(names):
        wide[cell, j] = measures[name].to_numpy(dtype=float, na_value=np.nan)[used]  # nullable: NA -> NaN
    wide = wide.reshape(len(people), len(windows) * len(names))
    return pd.DataFrame(wide, columns=[f"{m}_{w}" for w in windows for m in names])


EFFECT_COLUMNS = ("measure", "window_months", "estimator", "n_treated", "n_comparison", "treated_value",
                  "comparison_value", "difference", "se", "ci_lower", "ci_upper", "p_value", "risk_ratio",
                  "rr_lower", "rr_upper", "e_value", "e_value_ci", "gate_status", "sentence", "note")


def _effect_rows(summary, measure: str, window: int, broken_sets: bool) -> list[tuple]:
    """Three rows (matched, naive, adjusted) of the effects table, in EFFECT_COLUMNS order."""
    note = ("measured only where this longer window is complete: matched sets may be incomplete"
            if broken_sets and summary.status == STATUS_OK else None)
    rows = []
    for estimate, e_value, e_value_ci in ((summary.matched, summary.e_value, summary.e_value_ci),
                                          (summary.naive, np.nan, np.nan), (summary.adjusted, np.nan, np.nan)):
        rows.append((
            measure, window, estimate.method, estimate.n_treated, estimate.n_comparison, estimate.mean_treated,
            estimate.mean_comparison, estimate.difference, estimate.se, estimate.ci_low, estimate.ci_high,
            estimate.p_value, estimate.ratio, estimate.ratio_ci_low, estimate.ratio_ci_high, e_value, e_value_ci,
            summary.status, summary.sentence if estimate.method == "matched" else None, note,
        ))
    return rows


def _balance_rows(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "covariate": table["term"],
        "variable": table["variable"],
        "binary": table["binary"],
        "stage": table["stage"].map({"all": "before", "matched": "after"}),
        "mean_treated": table["mean_treated"],
        "mean_comparison": table["mean_control"],
        "smd": table["smd"],
        "variance_ratio": table["variance_ratio"],
        "ecdf_mean": table["ecdf_mean"],
        "ecdf_max": table["ecdf_max"],
        "smd_ok": table["smd_ok"],
        "vr_ok": table["variance_ratio_ok"],
    })


def _sample_size_rows(match: MatchResult) -> pd.DataFrame:
    counts = match.counts
    return pd.DataFrame({
        "grp": ["treated", "comparison"],
        "n_all": [counts.at["All", "treated"], counts.at["All", "control"]],
        "n_matched": [counts.at["Matched", "treated"], counts.at["Matched", "control"]],
        "n_unmatched": [counts.at["Unmatched", "treated"], counts.at["Unmatched", "control"]],
        "n_discarded": [counts.at["Discarded", "treated"], counts.at["Discarded", "control"]],
        "ess": [counts.at["Matched (ESS)", "treated"], counts.at["Matched (ESS)", "control"]],
    }).astype({"n_all": int, "n_matched": int, "n_unmatched": int, "n_discarded": int})


@dataclass
class ProgrammeSurvival:
    """Survival result tables of one programme (all carry ``programme_id`` when stored)."""

    programme_id: str
    km_curves: pd.DataFrame
    km_horizons: pd.DataFrame
    logrank: pd.DataFrame
    cox: pd.DataFrame
    ph_tests: pd.DataFrame
    rmst: pd.DataFrame


def evaluate_survival(
    programme_id: str,
    matched: pd.DataFrame,
    cohort: pd.DataFrame,
    spec: MatchingSpec,
    horizon_days: int,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
) -> ProgrammeSurvival:
    """Time to first proven reoffence: participants against their matched comparison.

    Args:
        matched: matched people: ``time_days, event, treated, weight, subclass``.
        cohort: everyone analysed with ``time_days, event, treated`` and the covariates,
            for the covariate-adjusted Cox model.
        horizon_days: the RMST horizon.
    """
    matched = matched[matched["weight"] > 0]
    time = matched["time_days"].to_numpy(float)
    event = matched["event"].to_numpy(int)
    treated = matched["treated"].to_numpy(bool)
    weights = matched["weight"].to_numpy(float)
    # After matching with replacement a person is their own cluster (as for the effects).
    cluster = matched["subclass"].to_numpy() if matched["subclass"].notna().all() else matched["person_id"].to_numpy()
    group = np.where(treated, "treated", "comparison")

    km = kaplan_meier(time, event, group=group, weights=weights, horizons=horizons)
    curves = km.curves.rename(columns={"group": "grp", "time": "time_days"})[
        ["grp", "time_days", "n_at_risk", "n_events", "survival", "lower", "upper",
         "cum_incidence", "cum_incidence_lower", "cum_incidence_upper"]]
    at_horizons = km.horizons.rename(columns={"group": "grp", "horizon": "horizon_days"})
    at_horizons = pd.DataFrame({
        "grp": at_horizons["grp"],
        "horizon_days": at_horizons["horizon_days"],
        "horizon_label": at_horizons["horizon_days"].map(lambda d: HORIZON_LABELS.get(int(d), f"{int(d)} days")),
        "n_at_risk": at_horizons["n_at_risk"],
        "cumulative_reoffending": at_horizons["cum_incidence"],
        "lower": at_horizons["cum_incidence_lower"],
        "upper": at_horizons["cum_incidence_upper"],
    })

    logrank = log_rank_test(time, event, group)
    matched_cox = cox_matched(time, event, treated.astype(int), weights=weights, cluster=cluster)
    cohort_model, spec, _ = prepare_covariates(model_frame(cohort, spec), spec)
    adjusted = cox_adjusted(cohort_model, "time_days", "event", ["treated", *spec.covariates])
    cox_rows = pd.concat([
        pd.DataFrame({
            "model": "matched", "term": "treated", "coef": [matched_cox.coef], "se": [matched_cox.se],
            "robust_se": [matched_cox.robust_se], "hr": [matched_cox.hazard_ratio],
            "hr_lower": [matched_cox.hr_lower], "hr_upper": [matched_cox.hr_upper], "p": [matched_cox.p],
        }),
        adjusted.table.rename(columns={"covariate": "term"}).assign(model="adjusted", robust_se=np.nan)[
            ["model", "term", "coef", "se", "robust_se", "hr", "hr_lower", "hr_upper", "p"]],
    ], ignore_index=True)
    ph_rows = pd.concat([
        matched_cox.ph_test.table.assign(model="matched", warning=matched_cox.ph_test.warning),
        adjusted.ph_test.table.assign(model="adjusted", warning=adjusted.ph_test.warning),
    ], ignore_index=True).rename(columns={"chisq": "statistic"})[["model", "term", "statistic", "df", "p", "warning"]]

    rmst = restricted_mean_survival_time(time, event, group, horizon_days, weights=weights, reference="comparison")
    rmst_groups = rmst.groups.set_index("group")
    rmst_row = pd.DataFrame({
        "horizon_days": [horizon_days],
        "rmst_treated": [rmst_groups.at["treated", "rmst"]],
        "rmst_comparison": [rmst_groups.at["comparison", "rmst"]],
        "difference": [rmst.difference],
        "se": [rmst.se],
        "ci_lower": [rmst.lower],
        "ci_upper": [rmst.upper],
        "p": [rmst.p],
        "note": [rmst.note],
    })
    return ProgrammeSurvival(
        programme_id=programme_id,
        km_curves=curves,
        km_horizons=at_horizons,
        logrank=pd.DataFrame({"chi2": [logrank.chi2], "df": [logrank.df], "p": [logrank.p]}),
        cox=cox_rows,
        ph_tests=ph_rows,
        rmst=rmst_row,
    )


def evaluate_diagnostics(
    people: pd.DataFrame,
    matched_sets: pd.DataFrame,
    balance: pd.DataFrame,
    effects: pd.DataFrame,
    spec: MatchingSpec,
    headline_window: int,
    thresholds: Thresholds,
    negative_controls: Sequence[NegativeControl] = NEGATIVE_CONTROLS,
) -> DesignDiagnostics:
    """The study diagnostics of one programme estimated by :func:`evaluate_effects`.

    Args:
        people: at least everyone in the matched sample (weight above zero): ``person_id``,
            the covariates, the headline measure as ``reoffended`` and the negative-control
            columns. Other rows are not read: the rest of the cohort enters the diagnostics
            only through ``matched_sets`` (who took part, the propensity scores).
        matched_sets, balance, effects: the programme's result tables as evaluate_effects
            returns them (and the warehouse stores them); ``matched_sets`` holds everyone analysed.
    """
    headline = effects[(effects["measure"] == "reoffended") & (effects["window_months"] == headline_window)]
    estimates = {row.estimator: row for row in headline.itertuples(index=False)}
    matched = estimates.get("matched")
    published = matched is not None and matched.gate_status == STATUS_OK
    values = {name: float(estimates[name].difference) if published and name in estimates else np.nan
              for name in ("matched", "naive", "adjusted")}
    values["comparison_value"] = float(matched.comparison_value) if published else np.nan
    values["e_value"] = float(matched.e_value) if published else np.nan
    # The matched sample's gaps filled as the effects step filled everyone's (their outcome and
    # negative-control models take the indicators too).
    people, spec = with_missing_indicators(people, spec)
    weights = matched_sets["weight"].to_numpy(float)
    cohort = _cohort_with_matched_sample(
        matched_sets["treated"].to_numpy(), matched_sets["person_id"], weights > 0, people,
        [*spec.covariates, "reoffended", *(control.column for control in negative_controls)], spec.categorical)
    return assess_design(
        model_frame(cohort, spec), outcome="reoffended", weights=weights,
        subclass=matched_sets["subclass"].to_numpy(float), propensity=matched_sets["propensity"].to_numpy(float),
        balance_after=balance.loc[balance["stage"] == "after"].rename(columns={"covariate": "term"}),
        effects=values, covariates=list(spec.covariates), categorical=list(spec.categorical), ratio=spec.ratio,
        negative_controls=negative_controls, thresholds=thresholds,
    )


def _cohort_with_matched_sample(treated: np.ndarray, person_ids: pd.Series, in_sample: np.ndarray,
                                people: pd.DataFrame, columns: Sequence[str],
                                categorical: Sequence[str]) -> pd.DataFrame:
    """One row per person analysed (in the order of ``person_ids``): ``treated`` for everyone, and
    ``columns`` from ``people`` for the matched sample (missing for the others, whom no
    diagnostic reads them for). Numbers and booleans become floats, other columns objects."""
    sample_ids = np.asarray(person_ids[in_sample], dtype=object)
    row = pd.Index(people["person_id"].to_numpy(dtype=object)).get_indexer(sample_ids)
    if (row < 0).any():
        raise ValueError(f"{int((row < 0).sum())} people of the matched sample have no row in the people given, "
                         f"e.g. {sample_ids[np.flatnonzero(row < 0)[0]]!r}")
    positions = np.flatnonzero(in_sample)
    numbers = [name for name in columns if name not in categorical and _is_number(people[name])]
    values = np.full((len(in_sample), len(numbers)), np.nan)  # one block: no copy when framed
    values[positions] = people[numbers].to_numpy(dtype=float, na_value=np.nan)[row]
    cohort = pd.DataFrame(values, columns=numbers, copy=False)
    cohort.insert(0, "treated", np.asarray(treated).astype(int))
    for name in columns:
        if name not in numbers:
            labels = np.full(len(in_sample), None, dtype=object)
            labels[positions] = people[name].to_numpy(dtype=object)[row]
            cohort[name] = labels
    return cohort


def _is_number(column: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(column) or (
        pd.api.types.is_numeric_dtype(column) and not isinstance(column.dtype, pd.CategoricalDtype))
