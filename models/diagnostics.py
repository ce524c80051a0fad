"""Study diagnostics: can the design behind a programme's estimate support it?

Each programme's matched comparison is judged before its effect is shown, in the spirit of
OHDSI CohortMethod: every diagnostic has a value, a threshold and a status (``pass``,
``warning``, ``fail``; ``info`` for context that never blocks), and a programme whose
diagnostics include a ``fail`` has its headline withheld. The statistics:

Balance
    Largest |SMD| over every covariate term after matching (the propensity score itself is
    not a covariate and is left out) and the variance ratio furthest from 1 (on the log
    scale), from :func:`models.balance.assess_balance`.

Overlap and equipoise
    The share of participants whose propensity score lies inside the comparison pool's range,
    the share matched within the caliper, and the preference-score equipoise of Walker et al.
    (2013): the preference score F solves ``logit F = logit S - logit P`` (S the propensity
    score, P the share treated), and equipoise is the share of everyone analysed with F in
    0.3-0.7.

Power
    Two-sided z-test of two proportions on the arcsine scale (Cohen's h, as statsmodels'
    ``NormalIndPower``): power = Phi(h/s - z) + Phi(-h/s - z) with s = sqrt(1/n1 + 1/n0) and
    z = Phi^-1(1 - alpha/2). Clustering and unequal matching weights enter as a design effect
    that divides both group sizes: the ratio of the cluster-robust variance of the matched
    difference to its variance with every person independent (at least 1: a paired design's
    gain is not banked when planning). The minimum detectable difference is the reduction
    from the comparison rate p0 to p1 = sin^2(asin(sqrt(p0)) - h/2) that the matched sample
    detects with the given power; participants needed for a given reduction solve the same
    equation for n1 with n0 = k n1 (k comparison people per participant).

Negative-control outcomes and systematic error
    The matched comparison applied to outcomes the programme cannot have changed (offending
    before the index date), each as a log ratio with its standard error. The empirical null
    distribution N(mu, tau^2) is fitted by maximum likelihood with each estimate's own
    sampling error (estimate_i ~ N(mu, tau^2 + se_i^2), as EmpiricalCalibration's
    ``fitNull``), and the expected absolute systematic error is E|X| for X ~ N(mu, tau^2)
    (EASE, Schuemie et al.).

Rosenbaum bounds for a matched binary outcome
    For each matched set with one participant, m comparison people and a people with the
    outcome (0 < a < m + 1), hidden bias of at most Gamma lets the chance that the
    participant is among the a be at most Gamma a / (Gamma a + m + 1 - a) (Rosenbaum 2002,
    sec. 4.4). Sets are independent, so the upper bound on the one-sided p-value of T (sets
    where the participant had the outcome, counted in the direction of the observed effect)
    is the upper tail of a sum of binomials, one per set type (a, m): exact, and for pairs
    the McNemar bound of R rbounds ``binarysens`` (Binomial(D, Gamma/(1 + Gamma)) over the D
    discordant pairs). For k:1 matching the same bound is exact for sets of one participant
    and k comparison people; after matching with replacement sets share comparison people
    and are not independent, so no bound is computed. The sensitivity value is the largest
    Gamma at which the upper bound stays below alpha.

Doubly robust estimate
    Weighted least squares of the outcome on participation and every covariate inside the
    matched sample, with the matching weights and a cluster-robust (HC1, matched sets)
    variance: matching removes most imbalance, the regression the rest, and either alone
    suffices for an unbiased estimate.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from models.effects import EffectEstimate, matched_difference
from models.propensity import design_matrix

PASS, WARNING, FAIL, INFO = "pass", "warning", "fail", "info"
EQUIPOISE_RANGE = (0.3, 0.7)


@dataclass(frozen=True)
class Thresholds:
    """Diagnostic thresholds (evaluation.yaml ``diagnostics:``)."""

    min_participants: int = 60
    max_smd: float = 0.1
    max_smd_warning: float = 0.25
    variance_ratio_bounds: tuple[float, float] = (0.5, 2.0)
    min_matched_share: float = 0.9
    max_detectable_difference: float = 0.2
    max_systematic_error: float = 0.25
    alpha: float = 0.05
    power: float = 0.8
    reductions: tuple[float, ...] = (0.05, 0.10)


# ---------------------------------------------------------------------------------------------
# Balance and overlap


def balance_summary(balance_after: pd.DataFrame) -> tuple[float, str, float, str]:
    """(largest |SMD|, its term, variance ratio furthest from 1, its term) after matching.

    ``balance_after`` holds one row per covariate term with ``term``, ``smd`` and
    ``variance_ratio`` (missing for binary terms); a ``distance`` row is ignored.
    """
    rows = balance_after[balance_after["term"] != "distance"]
    if rows.empty:
        raise ValueError("no covariate terms to summarise")
    smd = rows["smd"].abs().to_numpy(float)
    worst_smd = int(np.nanargmax(smd))
    ratios = rows["variance_ratio"].to_numpy(float)
    if np.isfinite(ratios).any():
        worst_vr = int(np.nanargmax(np.abs(np.log(np.where(ratios > 0, ratios, np.nan)))))
        vr, vr_term = float(ratios[worst_vr]), str(rows["term"].iloc[worst_vr])
    else:
        vr, vr_term = float("nan"), ""
    return float(smd[worst_smd]), str(rows["term"].iloc[worst_smd]), vr, vr_term


def preference_score(propensity, treated) -> np.ndarray:
    """Walker et al. (2013): logit F = logit S - logit P, P the share treated."""
    score = np.asarray(propensity, dtype=float)
    share = float(np.mean(np.asarray(treated, dtype=bool)))
    logit = np.log(score / (1 - score)) - np.log(share / (1 - share))
    return 1.0 / (1.0 + np.exp(-logit))


@dataclass(frozen=True)
class Overlap:
    in_pool_range: float   # share of participants inside the comparison pool's score range
    matched: float         # share of participants matched
    equipoise: float       # share of everyone with preference score in EQUIPOISE_RANGE


def overlap(propensity, treated, matched) -> Overlap:
    """Overlap of the propensity scores; ``matched`` flags people in the matched sample."""
    score = np.asarray(propensity, dtype=float)
    treated = np.asarray(treated, dtype=bool)
    matched = np.asarray(matched, dtype=bool)
    pool = score[~treated]
    inside = (score[treated] >= pool.min()) & (score[treated] <= pool.max())
    preference = preference_score(score, treated)
    low, high = EQUIPOISE_RANGE
    return Overlap(
        in_pool_range=float(inside.mean()),
        matched=float(matched[treated].mean()),
        equipoise=float(((preference >= low) & (preference <= high)).mean()),
    )


# ---------------------------------------------------------------------------------------------
# Power


def _cohen_h_power(h: float, n1: float, n0: float, alpha: float) -> float:
    spread = np.sqrt(1 / n1 + 1 / n0)
    z = stats.norm.isf(alpha / 2)
    return float(stats.norm.sf(z - h / spread) + stats.norm.cdf(-z - h / spread))


def _effect_for_power(n1: float, n0: float, alpha: float, power: float) -> float:
    """Cohen's h detected with ``power`` by groups of n1 and n0."""
    return optimize.brentq(lambda h: _cohen_h_power(h, n1, n0, alpha) - power, 1e-9, 2 * np.pi, xtol=1e-12)


def minimum_detectable_difference(
    comparison_rate: float, n_treated: float, n_comparison: float, *, design_effect: float = 1.0,
    alpha: float = 0.05, power: float = 0.8,
) -> float:
    """The smallest reduction from ``comparison_rate`` detected with ``power`` (a share, 0..1).

    The group sizes are divided by ``design_effect``. Returns ``comparison_rate`` itself when
    even a reduction to zero is not detectable.
    """
    if not 0 < comparison_rate < 1:
        raise ValueError(f"the comparison rate must be between 0 and 1, got {comparison_rate}")
    if design_effect < 1:
        raise ValueError(f"a design effect is at least 1, got {design_effect}")
    h = _effect_for_power(n_treated / design_effect, n_comparison / design_effect, alpha, power)
    angle = np.arcsin(np.sqrt(comparison_rate)) - h / 2
    return float(comparison_rate) if angle <= 0 else float(comparison_rate - np.sin(angle) ** 2)


def participants_needed(
    comparison_rate: float, reduction: float, *, ratio: float = 1.0, design_effect: float = 1.0,
    alpha: float = 0.05, power: float = 0.8,
) -> int:
    """Participants needed (with ``ratio`` comparison people each) to detect ``reduction``."""
    if not 0 < reduction < comparison_rate < 1:
        raise ValueError(f"need 0 < reduction < comparison rate < 1, got {reduction} and {comparison_rate}")
    h = 2 * np.arcsin(np.sqrt(comparison_rate)) - 2 * np.arcsin(np.sqrt(comparison_rate - reduction))
    n1 = optimize.brentq(lambda n: _cohen_h_power(h, n, ratio * n, alpha) - power, 1e-6, 1e12, xtol=1e-9)
    return int(np.ceil(n1 * design_effect - 1e-9))


def design_effect(outcome, treated, weights, cluster) -> float:
    """Variance of the matched difference with clustering over its variance with every
    person independent (the same weights), at least 1."""
    clustered = matched_difference(outcome, treated, weights, cluster)
    independent = matched_difference(outcome, treated, weights, None)
    if not independent.se > 0:
        return 1.0
    return max(1.0, float((clustered.se / independent.se) ** 2))


# ---------------------------------------------------------------------------------------------
# Negative controls and systematic error


@dataclass(frozen=True)
class NullDistribution:
    mean: float
    sd: float

    @property
    def expected_absolute_systematic_error(self) -> float:
        """E|X| for X ~ N(mean, sd^2) (the folded normal mean)."""
        mu, sigma = self.mean, self.sd
        if sigma == 0:
            return abs(mu)
        return float(sigma * np.sqrt(2 / np.pi) * np.exp(-mu**2 / (2 * sigma**2))
                     + mu * (1 - 2 * stats.norm.cdf(-mu / sigma)))


def fit_null(estimates: Sequence[float], standard_errors: Sequence[float]) -> NullDistribution:
    """Maximum-likelihood empirical null from negative-control estimates (log scale)."""
    b = np.asarray(estimates, dtype=float)
    se = np.asarray(standard_errors, dtype=float)
    keep = np.isfinite(b) & np.isfinite(se) & (se > 0)
    b, se = b[keep], se[keep]
    if not len(b):
        raise ValueError("no negative-control estimate with a standard error")

    def negative_log_likelihood(params):
        mu, log_tau = params
        variance = np.exp(2 * log_tau) + se**2
        return 0.5 * np.sum(np.log(variance) + (b - mu) ** 2 / variance)

    best = None
    for start in (np.log(se.min()) - 5, np.log(max(b.std(), se.min()))):
        fit = optimize.minimize(negative_log_likelihood, [b.mean(), start], method="Nelder-Mead",
                                options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000})
        best = fit if best is None or fit.fun < best.fun else best
    mu, log_tau = best.x
    tau = float(np.exp(log_tau))
    return NullDistribution(float(mu), tau if tau > 1e-6 else 0.0)


# ---------------------------------------------------------------------------------------------
# Rosenbaum bounds


@dataclass(frozen=True)
class MatchedSets:
    """Per informative set type: people with the outcome (a), set size (n), number of sets,
    and sets of that type where the participant had the outcome."""

    events: np.ndarray
    size: np.ndarray
    sets: np.ndarray
    treated_events: np.ndarray

    @property
    def statistic(self) -> int:
        return int(self.treated_events.sum())


def matched_sets_table(outcome, treated, subclass, *, benefit: bool) -> MatchedSets:
    """Counts by set type of a binary outcome over matched sets of one participant each.

    With ``benefit`` the outcome is counted as its absence (e.g. not reoffending), so the
    statistic grows with the observed effect's direction.
    """
    y = np.asarray(outcome, dtype=float)
    t = np.asarray(treated, dtype=bool)
    s = np.asarray(subclass)
    keep = ~np.isnan(y) & ~pd.isna(s)
    y, t, s = y[keep], t[keep], pd.factorize(s[keep])[0]
    if benefit:
        y = 1 - y
    events = np.bincount(s, weights=y)
    size = np.bincount(s)
    treated_count = np.bincount(s, weights=t.astype(float))
    treated_event = np.bincount(s, weights=(y * t))
    if not np.all(treated_count == 1):
        raise ValueError("every matched set needs exactly one participant")
    informative = (events > 0) & (events < size)
    frame = pd.DataFrame({"a": events[informative].astype(int), "n": size[informative],
                          "x": treated_event[informative].astype(int)})
    grouped = frame.groupby(["a", "n"], sort=True)["x"].agg(["size", "sum"]).reset_index()
    return MatchedSets(grouped["a"].to_numpy(), grouped["n"].to_numpy(), grouped["size"].to_numpy(),
                       grouped["sum"].to_numpy())


def rosenbaum_upper_p(table: MatchedSets, gamma: float) -> float:
    """Upper bound on the one-sided p-value of the statistic under hidden bias ``gamma``."""
    if gamma < 1:
        raise ValueError(f"Gamma is at least 1, got {gamma}")
    pmf = np.array([1.0])
    for a, n, count in zip(table.events, table.size, table.sets):
        p = gamma * a / (gamma * a + n - a)
        pmf = np.convolve(pmf, stats.binom.pmf(np.arange(count + 1), count, p))
    return float(min(1.0, pmf[table.statistic:].sum()))


def rosenbaum_gamma(table: MatchedSets, alpha: float = 0.05, gamma_max: float = 100.0) -> float:
    """Largest Gamma at which the upper-bound p-value stays below ``alpha``; NaN when the
    result is not significant even with no hidden bias; ``gamma_max`` when it never stops."""
    if not len(table.sets) or rosenbaum_upper_p(table, 1.0) >= alpha:
        return float("nan")
    if rosenbaum_upper_p(table, gamma_max) < alpha:
        return gamma_max
    log_gamma = optimize.brentq(lambda g: rosenbaum_upper_p(table, np.exp(g)) - alpha, 0.0, np.log(gamma_max),
                                xtol=1e-10)
    return float(np.exp(log_gamma))


# ---------------------------------------------------------------------------------------------
# Doubly robust estimate


def doubly_robust_difference(
    data: pd.DataFrame, outcome: str, treatment: str, weights, cluster, covariates: Sequence[str],
    categorical: Sequence[str] | None = None, *, conf_level: float = 0.95,
) -> EffectEstimate:
    """Weighted regression of ``outcome`` on ``treatment`` and the covariates inside the
    matched sample (weight > 0, outcome present), cluster-robust HC1 on ``cluster``
    (``None``: each person a cluster). Covariate columns constant in the matched sample are
    dropped. Equals statsmodels ``WLS(...).fit(cov_type="cluster")``."""
    w_all = np.asarray(weights, dtype=float)
    y_all = data[outcome].to_numpy(dtype=float)
    keep = (w_all > 0) & ~np.isnan(y_all)
    rows = data.loc[keep]
    y, w = y_all[keep], w_all[keep]
    t = (rows[treatment].to_numpy() == 1).astype(float)
    design = design_matrix(rows, covariates, categorical).matrix.to_numpy()
    design = design[:, np.ptp(design, axis=0) > 0] if design.size else design
    x = np.column_stack([np.ones(len(y)), t, design])
    xw = x * w[:, None]
    bread = np.linalg.pinv(x.T @ xw)
    beta = bread @ (xw.T @ y)
    residual = y - x @ beta
    codes = np.arange(len(y)) if cluster is None else pd.factorize(np.asarray(cluster)[keep])[0]
    n_clusters = int(codes.max()) + 1
    scores = xw * residual[:, None]
    summed = np.vstack([np.bincount(codes, weights=scores[:, j], minlength=n_clusters) for j in range(x.shape[1])]).T
    n, k = x.shape
    vcov = n_clusters / (n_clusters - 1) * (n - 1) / (n - k) * bread @ (summed.T @ summed) @ bread
    z = float(stats.norm.ppf(0.5 + conf_level / 2))
    difference, se = float(beta[1]), float(np.sqrt(vcov[1, 1]))
    treated = t == 1
    mean_treated = float(np.average(y[treated], weights=w[treated]))
    return EffectEstimate(
        method="doubly_robust", variance="cluster-robust HC1 (matched sets)" if cluster is not None else "HC1 robust",
        mean_treated=mean_treated, mean_comparison=mean_treated - difference, difference=difference, se=se,
        ci_low=difference - z * se, ci_high=difference + z * se,
        p_value=float(2 * stats.norm.sf(abs(difference / se))) if se > 0 else float("nan"), df=float("inf"),
        n=n, n_treated=int(treated.sum()), n_comparison=int((~treated).sum()), n_clusters=n_clusters,
        conf_level=conf_level,
    )


# ---------------------------------------------------------------------------------------------
# One programme's diagnostics


@dataclass(frozen=True)
class NegativeControl:
    column: str
    label: str  # what the outcome is, in words


@dataclass
class DesignDiagnostics:
    """``table``: one row per diagnostic (``diagnostic, value, threshold, status, explanation``);
    ``estimates``: the negative-control and doubly robust estimates behind them."""

    table: pd.DataFrame
    estimates: pd.DataFrame

    @property
    def withheld(self) -> bool:
        """True when a diagnostic failed: the headline effect is not shown."""
        return bool((self.table["status"] == FAIL).any())

    @property
    def failed(self) -> list[str]:
        return self.table.loc[self.table["status"] == FAIL, "explanation"].tolist()


def _row(diagnostic: str, value: float, threshold: float, status: str, explanation: str) -> dict:
    return {"diagnostic": diagnostic, "value": float(value), "threshold": float(threshold), "status": status,
            "explanation": explanation}


def _words(term: str) -> str:
    return term.replace("[", ": ").replace("]", "").replace("_", " ")


def _points(share: float) -> str:
    return f"{100 * share:.1f} percentage points"


def minimum_sample(n_participants: int, thresholds: Thresholds) -> dict:
    needed = thresholds.min_participants
    if n_participants < needed:
        return _row("minimum_sample", n_participants, needed, FAIL,
                    f"too few participants: {n_participants} of the {needed} needed; the estimate would be too "
                    "uncertain to publish. More participants (a longer cohort period or a later data cut-off) "
                    "would fix this")
    return _row("minimum_sample", n_participants, needed, PASS,
                f"enough participants: {n_participants} analysed (at least {needed} needed)")


def too_few_participants(n_participants: int, thresholds: Thresholds) -> DesignDiagnostics:
    """The diagnostics of a programme stopped before matching for want of participants."""
    return DesignDiagnostics(pd.DataFrame([minimum_sample(n_participants, thresholds)]), _estimate_frame([]))


def _estimate_frame(rows: list[dict]) -> pd.DataFrame:
    columns = ["estimate", "outcome", "label", "n_treated", "n_comparison", "treated_value", "comparison_value",
               "difference", "se", "ci_lower", "ci_upper", "p_value", "log_ratio", "log_ratio_se"]
    return pd.DataFrame(rows, columns=columns)


def _estimate_row(kind: str, outcome: str, label: str, estimate: EffectEstimate) -> dict:
    log_ratio = log_se = float("nan")
    if np.isfinite(estimate.ratio) and estimate.ratio > 0:
        z = stats.norm.ppf(0.5 + estimate.conf_level / 2)
        log_ratio = float(np.log(estimate.ratio))
        log_se = float((np.log(estimate.ratio_ci_high) - np.log(estimate.ratio_ci_low)) / (2 * z))
    return {"estimate": kind, "outcome": outcome, "label": label, "n_treated": estimate.n_treated,
            "n_comparison": estimate.n_comparison, "treated_value": estimate.mean_treated,
            "comparison_value": estimate.mean_comparison, "difference": estimate.difference, "se": estimate.se,
            "ci_lower": estimate.ci_low, "ci_upper": estimate.ci_high, "p_value": estimate.p_value,
            "log_ratio": log_ratio, "log_ratio_se": log_se}


def assess_design(
    people: pd.DataFrame,
    *,
    outcome: str,
    weights,
    subclass,
    propensity,
    balance_after: pd.DataFrame,
    effects: dict[str, float],
    covariates: Sequence[str],
    categorical: Sequence[str] = (),
    ratio: int = 1,
    negative_controls: Sequence[NegativeControl] = (),
    thresholds: Thresholds = Thresholds(),
) -> DesignDiagnostics:
    """Every diagnostic of one programme's matched comparison.

    Args:
        people: everyone analysed, one row each: ``treated`` (0/1), the covariates, the
            headline binary ``outcome`` and the negative-control columns.
        weights, subclass, propensity: matching weights, matched-set ids (NaN when unmatched,
            or all NaN after matching with replacement) and propensity scores, aligned with
            ``people``.
        balance_after: balance after matching (``term, smd, variance_ratio`` per term).
        effects: the headline estimates: ``matched``, ``naive``, ``adjusted`` differences and
            the matched ``e_value`` (NaN where not estimated).
    """
    t = thresholds
    treated = people["treated"].to_numpy() == 1
    weights = np.asarray(weights, dtype=float)
    subclass = np.asarray(subclass, dtype=float)
    matched = weights > 0
    with_replacement = bool(np.isnan(subclass[matched]).all())
    cluster = None if with_replacement else subclass
    y = people[outcome].to_numpy(dtype=float)
    rows: list[dict] = []
    estimates: list[dict] = []

    n_participants = int(treated.sum())
    rows.append(minimum_sample(n_participants, t))

    smd, smd_term, vr, vr_term = balance_summary(balance_after)
    smd_status = PASS if smd <= t.max_smd else WARNING if smd <= t.max_smd_warning else FAIL
    rows.append(_row("balance", smd, t.max_smd, smd_status, (
        f"participants and comparison people are alike on every recorded characteristic (largest standardised "
        f"difference {smd:.2f}, on {_words(smd_term)})" if smd_status == PASS else
        f"participants and comparison people are too different on {_words(smd_term)} (standardised difference "
        f"{smd:.2f}; up to {t.max_smd:g} is good, above {t.max_smd_warning:g} fails): matching on more "
        "characteristics, exact matching or a narrower caliper would fix this")))
    low, high = t.variance_ratio_bounds
    vr_ok = not np.isfinite(vr) or low < vr < high
    rows.append(_row("variance_ratio", vr, high, PASS if vr_ok else WARNING, (
        "the spread of every numeric characteristic is similar in both groups" if vr_ok else
        f"the spread of {_words(vr_term)} differs between the groups (variance ratio {vr:.2f}, outside "
        f"{low:g}-{high:g})")))

    shares = overlap(propensity, treated, matched)
    matched_ok = shares.matched >= t.min_matched_share
    rows.append(_row("matched_share", shares.matched, t.min_matched_share, PASS if matched_ok else WARNING, (
        f"{100 * shares.matched:.0f}% of participants found a comparison person within the caliper" if matched_ok else
        f"only {100 * shares.matched:.0f}% of participants found a comparison person within the caliper, so the "
        "estimate describes the matched participants only: a wider comparison pool would fix this")))
    rows.append(_row("overlap", shares.in_pool_range, 1.0, INFO,
                     f"{100 * shares.in_pool_range:.0f}% of participants have a chance of taking part within the "
                     "range seen among comparison people"))
    rows.append(_row("equipoise", shares.equipoise, EQUIPOISE_RANGE[0], INFO,
                     f"{100 * shares.equipoise:.0f}% of everyone analysed is in equipoise (preference score "
                     f"{EQUIPOISE_RANGE[0]:g}-{EQUIPOISE_RANGE[1]:g}): people who could as well have taken part as not"))

    comparison_rate = effects.get("comparison_value", float("nan"))
    measured = matched & ~np.isnan(y)
    if np.isfinite(comparison_rate) and 0 < comparison_rate < 1 and (measured & treated).any():
        deff = design_effect(y, treated, weights, cluster)
        w = weights[measured & ~treated]
        n_comparison = float(w.sum() ** 2 / (w**2).sum())
        n_treated = float((measured & treated).sum())
        mdd = minimum_detectable_difference(comparison_rate, n_treated, n_comparison, design_effect=deff,
                                            alpha=t.alpha, power=t.power)
        power_ok = mdd <= t.max_detectable_difference
        rows.append(_row("power", mdd, t.max_detectable_difference, PASS if power_ok else FAIL, (
            f"the matched sample can detect a reduction in reoffending of {_points(mdd)} or more "
            f"({100 * t.power:.0f}% power, {100 * t.alpha:.0f}% two-sided, comparison rate "
            f"{100 * comparison_rate:.1f}%, design effect {deff:.2f})" if power_ok else
            f"too few people to detect a realistic effect: only a reduction of {_points(mdd)} or more would be "
            "detected; more participants would fix this")))
        for reduction in t.reductions:
            if reduction < comparison_rate:
                needed = participants_needed(comparison_rate, reduction, ratio=ratio, design_effect=deff,
                                             alpha=t.alpha, power=t.power)
                rows.append(_row(f"participants_needed_{round(100 * reduction)}pp", needed, reduction, INFO,
                                 f"to detect a reduction of {_points(reduction)} from {100 * comparison_rate:.1f}%, "
                                 f"an evaluation needs about {needed:,} participants, each with {ratio} comparison "
                                 f"{'person' if ratio == 1 else 'people'}"))

    controls = []
    for control in negative_controls:
        values = people[control.column].to_numpy(dtype=float)
        try:
            estimate = matched_difference(values, treated, weights, cluster, ratio=True)
        except ValueError:
            continue
        estimates.append(_estimate_row("negative_control", control.column, control.label, estimate))
        controls.append(estimates[-1])
    usable = [c for c in controls if np.isfinite(c["log_ratio"]) and np.isfinite(c["log_ratio_se"])]
    if usable:
        null = fit_null([c["log_ratio"] for c in usable], [c["log_ratio_se"] for c in usable])
        ease = null.expected_absolute_systematic_error
        worst = max(usable, key=lambda c: abs(c["log_ratio"]))
        nc_ok = ease <= t.max_systematic_error
        rows.append(_row("negative_control", ease, t.max_systematic_error, PASS if nc_ok else FAIL, (
            f"before the programme, participants and comparison people offended alike (expected systematic error "
            f"{ease:.2f} on the log scale)" if nc_ok else
            f"participants and comparison people already differed before the programme, in {worst['label']} "
            f"(expected systematic error {ease:.2f}, above {t.max_systematic_error:g}): something that matters is "
            "missing from the matching, and recording and matching on what drives referral would fix this")))

    if np.isfinite(effects.get("matched", float("nan"))) and not with_replacement and measured.any():
        difference = effects["matched"]
        table = matched_sets_table(y[matched], treated[matched], subclass[matched], benefit=difference < 0)
        gamma = rosenbaum_gamma(table, alpha=t.alpha)
        rows.append(_row("rosenbaum_gamma", gamma, 1.0, INFO, (
            "the result is not statistically significant even without hidden bias" if np.isnan(gamma) else
            f"the result stays significant unless a hidden characteristic made one person in a matched set up to "
            f"{gamma:.2f} times as likely to take part as another")))
    if np.isfinite(effects.get("e_value", float("nan"))):
        rows.append(_row("e_value", effects["e_value"], 1.0, INFO,
                         f"a hidden characteristic would need a risk ratio of {effects['e_value']:.2f} with both taking "
                         "part and reoffending to explain the result away"))

    if measured.any() and (measured & treated).any() and (measured & ~treated).any():
        dr = doubly_robust_difference(people, outcome, "treated", weights, cluster, covariates, categorical)
        estimates.append(_estimate_row("doubly_robust", outcome, "matched and regression-adjusted", dr))
        others = ", ".join(f"{name} {100 * effects[name]:+.1f}" for name in ("matched", "naive", "adjusted")
                           if np.isfinite(effects.get(name, float("nan"))))
        rows.append(_row("doubly_robust", dr.difference, float("nan"), INFO,
                         f"matching and regression together give {100 * dr.difference:+.1f} percentage points "
                         f"(95% CI {100 * dr.ci_low:+.1f} to {100 * dr.ci_high:+.1f}); {others}"))
    return DesignDiagnostics(pd.DataFrame(rows), _estimate_frame(estimates))
