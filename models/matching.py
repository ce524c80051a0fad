"""Greedy nearest-neighbour matching with the semantics of R MatchIt ``method = "nearest"``.

Reproduces ``matchit(method = "nearest", distance = <distance>, estimand = "ATT",
m.order = "largest")`` (MatchIt 4.5.1) exactly, including its tie-breaking:

* All units are ordered by distance (R ``sort.list``: stable, so equal distances keep data
  order). A control is "left" of a treated unit when it comes earlier in that order.
* Treated units are matched in descending order of distance (R ``order(decreasing =
  TRUE)``, stable). With ``ratio = k`` matching runs in k rounds: every treated unit gets
  its first control, then every treated unit its second, and so on.
* Each treated unit takes the nearest still-available control on either side; when the
  two are equally far the left (smaller-distance) one wins.
* Caliper: a control farther than the caliper is never taken. With ``std_caliper`` the
  caliper is in standard deviations of the distance over all units (R ``sd``, n - 1
  denominator) — MatchIt's ``process.caliper`` uses ``sd(distance)`` pooled over treated and
  controls, not the treated-group SD.
* Exact matching: units are matched only within strata of identical values.
* With replacement each treated unit takes its k nearest distinct controls. (MatchIt 4.5.1
  itself gives one control k times for ``ratio > 1`` with replacement — a bug fixed in
  later versions — so here the corrected behaviour is implemented.)

Weights (ATT, R ``match.data()``): matched treated 1; a control gets the sum of 1/m over
the treated units it is matched to (m = controls of that treated unit), and then control
weights are scaled to sum to the number of matched controls. ``subclass`` numbers matched
sets as MatchIt's ``mm2subclass`` does (ordering the treated units' row numbers as text).

Algorithm, with no Python loop over people
------------------------------------------
Greedy matching without replacement is sequential, but on a line it is local: a treated
unit's choice depends only on controls near it, so the units split into independent
*blocks* (runs of the sorted controls together with the treated units whose candidates lie
in them). Each treated unit starts with a window of control ranks on either side, wider
where treated units crowd together; overlapping windows merge into blocks. All blocks are
then simulated *in lockstep*: step t makes the t-th decision of every block at once, with
nearest-available look-ups through pointer forests (taken controls point to their
neighbour; vectorised path halving keeps look-ups short). The Python loop therefore runs
over steps — the decision count of the largest block, which is the length of the longest
chain of genuinely interdependent choices — never over people. A certificate then checks
every decision: the chosen control must be strictly nearer than the nearest control
outside the block (and an unmatched unit must have no outside control within the caliper).
Blocks for which this holds made exactly the decisions the global greedy pass makes (by
induction over the matching order, nothing outside a block can change them) and are kept;
windows of units that fail are widened (at least to their block's width) and only the
new blocks are simulated again. Sorting all units by distance dominates; it is a bucket
sort shared among the cores (:func:`_sorted_rows`).

Example::

    >>> import numpy as np
    >>> treated = np.array([1, 0, 0, 1, 0, 0], dtype=bool)
    >>> distance = np.array([0.9, 0.85, 0.1, 0.5, 0.45, 0.6])
    >>> m = match_nearest(treated, distance)
    >>> m.pairs[["treated", "control"]].to_dict("records")
    [{'treated': 0, 'control': 1}, {'treated': 3, 'control': 4}]
    >>> m.weights.tolist()
    [1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.threads import cores, map_in_threads

# First window: this many control ranks on each side per match wanted, plus one.
_INITIAL_WINDOW_PER_MATCH = 2
# A unit whose block decision cannot be certified gets a window this many times wider.
_WINDOW_GROWTH = 4
# Buckets of distance in the first, radix, stage of the sort of all units.
_BUCKETS = 1 << 16
# The sort of all units is shared among threads when each would get at least this many rows.
_MIN_SORT_PART_ROWS = 100_000


@dataclass(frozen=True)
class MatchResult:
    """Result of nearest-neighbour matching (positions refer to rows of the input).

    Attributes:
        index: row labels of the input (a RangeIndex unless ``index`` was given).
        treated: boolean treatment indicator per row.
        distance: the matching distance per row.
        weights: MatchIt ATT matching weights per row (0 = not in the matched sample).
        subclass: matched-set id per row (1, 2, ...; 0 = unmatched), as MatchIt's
            ``match.data()`` ``subclass``. ``None`` with replacement, where a control can
            sit in several sets: use ``pairs`` / :meth:`get_matches` instead.
        match_matrix: (treated units in data order) × ratio array of matched control
            positions, -1 where no control was found (MatchIt ``match.matrix``).
        pairs: one row per treated–control match: ``treated, control`` (labels),
            ``treated_position, control_position, slot`` (round 1..ratio), ``subclass``
            (the treated unit's matched set) and ``distance`` (absolute distance gap).
        counts: rows ``All, Matched (ESS), Matched, Unmatched, Discarded`` × columns
            ``control, treated`` (MatchIt ``summary()$nn``).
        unmatched_treated: labels of treated rows left without any match.
        ratio, replace, caliper, std_caliper: the settings used.
        caliper_width: the caliper in distance units (``None`` without a caliper).
        exact: names of the exact-matching variables (empty if none).
    """

    index: pd.Index
    treated: np.ndarray
    distance: np.ndarray
    weights: np.ndarray
    subclass: np.ndarray | None
    match_matrix: np.ndarray
    pairs: pd.DataFrame
    counts: pd.DataFrame
    unmatched_treated: pd.Index
    ratio: int
    replace: bool
    caliper: float | None
    std_caliper: bool
    caliper_width: float | None
    exact: tuple[str, ...]

    @property
    def matched(self) -> np.ndarray:
        """Boolean per row: in the matched sample (weight above zero)."""
        return self.weights > 0

    def to_frame(self) -> pd.DataFrame:
        """One row per input row: ``treated, distance, weights, subclass, matched``
        (``subclass`` 0 for unmatched rows; absent with replacement)."""
        frame = pd.DataFrame(
            {"treated": self.treated, "distance": self.distance, "weights": self.weights},
            index=self.index,
        )
        if self.subclass is not None:
            frame["subclass"] = self.subclass
        frame["matched"] = self.matched
        return frame

    def get_matches(self) -> pd.DataFrame:
        """Long form as MatchIt ``get_matches()``: a row per unit per matched set with
        ``id`` (row label), ``position``, ``subclass``, ``treated`` and ``weights`` (1 for
        the treated unit, 1/m for each of its m controls). A control matched to several
        treated units appears once per set."""
        pairs = self.pairs
        per_set = pairs.groupby("subclass")["control"].transform("size").to_numpy()
        treated_rows = pairs.drop_duplicates("subclass")
        frame = pd.concat(
            [
                pd.DataFrame(
                    {
                        "id": treated_rows["treated"].to_numpy(),
                        "position": treated_rows["treated_position"].to_numpy(),
                        "subclass": treated_rows["subclass"].to_numpy(),
                        "treated": True,
                        "weights": 1.0,
                    }
                ),
                pd.DataFrame(
                    {
                        "id": pairs["control"].to_numpy(),
                        "position": pairs["control_position"].to_numpy(),
                        "subclass": pairs["subclass"].to_numpy(),
                        "treated": False,
                        "weights": 1.0 / per_set,
                    }
                ),
            ],
            ignore_index=True,
        )
        return frame.sort_values(["subclass", "treated"], ascending=[True, False], kind="stable").reset_index(drop=True)

    def summary(self) -> str:
        c = self.counts
        caliper = "no caliper" if self.caliper is None else (
            f"caliper {self.caliper:g}{' SD' if self.std_caliper else ''} ({self.caliper_width:.4g} on the distance)"
        )
        lines = [
            f"Nearest-neighbour matching {self.ratio}:1 {'with' if self.replace else 'without'} replacement, "
            f"{caliper}{', exact on ' + ', '.join(self.exact) if self.exact else ''}",
            f"  treated: {c.at['All', 'treated']:.0f} in all, {c.at['Matched', 'treated']:.0f} matched, "
            f"{c.at['Unmatched', 'treated']:.0f} unmatched",
            f"  comparison: {c.at['All', 'control']:.0f} in all, {c.at['Matched', 'control']:.0f} matched "
            f"(effective sample size {c.at['Matched (ESS)', 'control']:.1f})",
        ]
        if len(self.unmatched_treated):
            shown = ", ".join(map(str, self.unmatched_treated[:20]))
            more = f" and {len(self.unmatched_treated) - 20} more" if len(self.unmatched_treated) > 20 else ""
            lines.append(f"  unmatched treated: {shown}{more}")
        return "\n".join(lines)


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish effective sample size (sum w)^2 / sum w^2 (MatchIt ``ESS``)."""
    weights = np.asarray(weights, dtype=float)
    return float(weights.sum() ** 2 / (weights**2).sum()) if weights.any() else 0.0


# ---------------------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------------------


def _strata_codes(exact, n: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer stratum per row from exact-matching values (Series, DataFrame or array)."""
    if exact is None:
        return np.zeros(n, dtype=np.int64), ()
    if isinstance(exact, pd.Series):
        frame, names = exact.to_frame(), (str(exact.name),)
    elif isinstance(exact, pd.DataFrame):
        frame, names = exact, tuple(map(str, exact.columns))
    else:
        values = np.asarray(exact)
        frame = pd.DataFrame(values.reshape(n, -1))
        names = tuple(f"exact_{j}" for j in range(frame.shape[1]))
    if len(frame) != n:
        raise ValueError(f"exact has {len(frame)} rows but there are {n} units")
    missing = frame.isna().any(axis=0)
    if missing.any():
        raise ValueError(f"exact-matching variable(s) with missing values: {', '.join(map(str, frame.columns[missing]))}")
    codes = frame.groupby(list(frame.columns), sort=True, observed=True).ngroup().to_numpy()
    return codes.astype(np.int64), names


def _validated(treated, distance) -> tuple[np.ndarray, np.ndarray]:
    treated = np.asarray(treated)
    distance = np.asarray(distance, dtype=float)
    if treated.ndim != 1 or distance.shape != treated.shape:
        raise ValueError(f"treated and distance must be 1-d of equal length, got {treated.shape} and {distance.shape}")
    if treated.dtype != bool:
        # Two reductions rather than np.isin, a fifth of the time for integer flags.
        is_flag = treated.dtype.kind in "iu" and len(treated) and treated.min() >= 0 and treated.max() <= 1
        if not (is_flag or np.isin(treated, (0, 1)).all()):
            raise ValueError("treated must be boolean or 0/1")
        treated = treated == 1
    if not np.isfinite(distance).all():
        raise ValueError(f"distance has {int((~np.isfinite(distance)).sum())} missing or infinite values")
    if not treated.any():
        raise ValueError("there are no treated units to match")
    if treated.all():
        raise ValueError("there are no comparison units to match to")
    return treated, distance


# ---------------------------------------------------------------------------------------
# Matching on a line
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    """Controls sorted by (stratum, distance, row) and each treated unit's place among them.

    Treated arrays are in matching order (descending distance, ties in row order).
    """

    control_rows: np.ndarray  # row positions of sorted controls
    control_x: np.ndarray  # their distances
    treated_rows: np.ndarray  # row positions of treated units, matching order
    treated_x: np.ndarray
    insert: np.ndarray  # number of sorted controls "left" of each treated unit
    stratum_lo: np.ndarray  # control range [lo, hi) of each treated unit's stratum
    stratum_hi: np.ndarray


def _order_keys(distance: np.ndarray) -> np.ndarray:
    """Integers in the order of the (finite) distances, ties kept: an IEEE double compares as a
    sign-magnitude integer, so flipping the magnitude bits of negative ones gives two's
    complement order. Adding 0.0 turns -0.0 into 0.0, which it equals. Sorting integers is a
    third faster than sorting doubles."""
    bits = (distance + 0.0).view(np.int64)
    return bits ^ ((bits >> 63) & np.int64(0x7FFF_FFFF_FFFF_FFFF))


def _stable_order(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values, kind="stable")``; small non-negative integers as 16-bit ones, which
    NumPy sorts by radix sort in linear time."""
    if len(values) and values.dtype.kind in "iu" and values.min() >= 0 and values.max() < 1 << 16:
        values = values.astype(np.uint16)
    return np.argsort(values, kind="stable")


def _sorted_rows(distance: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Row order by (stratum, distance, row): ``np.lexsort((distance, strata))``, stable as R's
    sort.list, in a third of its time.

    A bucket sort: rows are first put in order of 2^16 equal-width buckets of distance (a
    radix sort), which leaves the distances almost in order, so the stable sort of their keys
    that follows is quick; it is shared among the cores, each thread sorting a range of
    whole buckets. Ties stay in row order throughout, and a last stable sort by stratum
    keeps the distance order within each stratum.
    """
    n = len(distance)
    low, high = (distance.min(), distance.max()) if n else (0.0, 0.0)
    if high > low:
        scale = (_BUCKETS - 1) / (high - low)
        # Rounding cannot break the order: subtracting, scaling and truncating are monotone.
        bucket = np.minimum((distance - low) * scale, _BUCKETS - 1).astype(np.uint16)
        by_bucket = np.argsort(bucket, kind="stable")
        key = _order_keys(distance)
        parts = max(1, min(cores(), n // _MIN_SORT_PART_ROWS))
        cuts = np.searchsorted(bucket[by_bucket], np.arange(1, parts) * (_BUCKETS // parts))
        ranges = list(zip([0, *cuts], [*cuts, n]))

        def sort_range(bounds: tuple[int, int]) -> np.ndarray:
            rows = by_bucket[bounds[0]:bounds[1]]
            return rows[np.argsort(key[rows], kind="stable")]

        order = np.concatenate(map_in_threads(sort_range, ranges))
    else:
        order = np.arange(n)
    if n and strata.min() != strata.max():
        order = order[_stable_order(strata[order])]
    return order


def _line(treated: np.ndarray, distance: np.ndarray, strata: np.ndarray) -> _Line:
    order = _sorted_rows(distance, strata)
    treated_in_line = treated[order]
    treated_places = np.flatnonzero(treated_in_line)
    control_rows = order[~treated_in_line]
    # Controls left of a treated unit: its place in the line less the treated units before it.
    # Looked up by row through an array left uninitialised but for the treated rows.
    controls_before = np.empty(len(order), dtype=np.int64)
    controls_before[order[treated_places]] = treated_places - np.arange(len(treated_places))

    treated_rows_data_order = np.flatnonzero(treated)
    # matching order: descending distance, ties in data order (R order(decreasing = TRUE))
    matching_order = treated_rows_data_order[np.argsort(-distance[treated_rows_data_order], kind="stable")]
    if strata.min() == strata.max():
        lo, hi = np.zeros(len(matching_order), dtype=np.int64), np.full(len(matching_order), len(control_rows))
    else:
        control_strata, treated_strata = strata[control_rows], strata[matching_order]
        lo = np.searchsorted(control_strata, treated_strata, side="left")
        hi = np.searchsorted(control_strata, treated_strata, side="right")
    return _Line(
        control_rows=control_rows,
        control_x=distance[control_rows],
        treated_rows=matching_order,
        treated_x=distance[matching_order],
        insert=controls_before[matching_order],
        stratum_lo=lo,
        stratum_hi=hi,
    )


def _with_replacement(line: _Line, ratio: int, caliper_width: float | None) -> np.ndarray:
    """Each treated unit's k nearest distinct controls, in MatchIt's pick order.

    Picking repeatedly the nearer of the nearest remaining left and right controls (left
    on ties) is a stable merge of the left list and the right list by distance.
    Returns (treated, ratio) sorted-control positions, -1 where none.
    """
    offsets = np.arange(1, ratio + 1)
    left = line.insert[:, None] - offsets  # nearest first
    right = line.insert[:, None] + offsets - 1
    candidates = np.concatenate([left, right], axis=1)
    valid = (candidates >= line.stratum_lo[:, None]) & (candidates < line.stratum_hi[:, None])
    safe = np.where(valid, candidates, 0)
    gap = np.where(valid, np.abs(line.control_x[safe] - line.treated_x[:, None]), np.inf)
    if caliper_width is not None:
        gap[gap > caliper_width] = np.inf
    pick_order = np.argsort(gap, axis=1, kind="stable")[:, :ratio]
    picked = np.take_along_axis(candidates, pick_order, axis=1)
    picked_gap = np.take_along_axis(gap, pick_order, axis=1)
    return np.where(np.isfinite(picked_gap), picked, -1)


@dataclass(frozen=True)
class _Blocks:
    treated: np.ndarray  # treated units (matching-order positions) grouped by block, matching order within
    start: np.ndarray  # per block: first entry in `treated`
    size: np.ndarray  # per block: number of treated units
    lo: np.ndarray  # per block: control range [lo, hi)
    hi: np.ndarray

    def subset(self, keep: np.ndarray) -> _Blocks:
        size = self.size[keep]
        members = np.repeat(self.start[keep], size) + _ranks_within(size)
        return _Blocks(
            treated=self.treated[members],
            start=np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64),
            size=size,
            lo=self.lo[keep],
            hi=self.hi[keep],
        )


def _ranks_within(sizes: np.ndarray) -> np.ndarray:
    """0, 1, ..., size-1 for each group, laid end to end."""
    total = int(sizes.sum())
    return np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def _blocks(line: _Line, window: np.ndarray, active: np.ndarray) -> _Blocks:
    """Merge the control windows of the `active` treated units into disjoint blocks."""
    units = np.flatnonzero(active)
    lo = np.maximum(line.stratum_lo[units], line.insert[units] - window[units])
    hi = np.minimum(line.stratum_hi[units], line.insert[units] + window[units])
    by_lo = np.argsort(lo, kind="stable")
    units, lo, hi = units[by_lo], lo[by_lo], hi[by_lo]
    reach = np.maximum.accumulate(hi)
    new_block = np.ones(len(units), dtype=bool)
    new_block[1:] = lo[1:] >= reach[:-1]
    block_of = np.cumsum(new_block) - 1
    starts = np.flatnonzero(new_block)
    block_lo = lo[starts]
    block_hi = np.maximum.reduceat(hi, starts) if len(starts) else hi[:0]
    # within a block, units must be in matching order (their position in `line`)
    grouped = np.lexsort((units, block_of))
    size = np.diff(np.append(starts, len(units)))
    return _Blocks(treated=units[grouped], start=starts, size=size, lo=block_lo, hi=block_hi)


def _find(pointer: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Roots of `query` in a forest of pointers (roots point to themselves), with path
    halving so that repeated look-ups stay short."""
    query = query.copy()
    while True:
        parent = pointer[query]
        moving = parent != query
        if not moving.any():
            return query
        grandparent = pointer[parent[moving]]
        pointer[query[moving]] = grandparent
        query[moving] = grandparent


def _simulate_blocks(line: _Line, blocks: _Blocks, ratio: int, caliper_width: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching run independently in every block, all blocks in lockstep.

    Each block's controls occupy consecutive slots between two sentinel slots. Two
    pointer forests give the nearest available slot to the left and to the right: a free
    slot (or sentinel) points to itself, a taken slot to its neighbour. Returns, per unit
    of ``blocks.treated`` (in that order) and round, the chosen sorted-control position
    (-1 if none) and the distance gap to it (inf if none).
    """
    n_units = len(blocks.treated)
    chosen = np.full((n_units, ratio), -1, dtype=np.int64)
    chosen_gap = np.full((n_units, ratio), np.inf)
    if n_units == 0:
        return chosen, chosen_gap
    decisions = blocks.size * ratio
    by_work = np.argsort(-decisions, kind="stable")  # active blocks form a prefix at every step
    block_lo, block_start, block_size = blocks.lo[by_work], blocks.start[by_work], blocks.size[by_work]
    decisions = decisions[by_work]
    slots = blocks.hi[by_work] - block_lo + 2
    left_sentinel = np.concatenate([[0], np.cumsum(slots)[:-1]])
    slot_to_control = np.arange(slots.sum()) - np.repeat(left_sentinel + 1 - block_lo, slots)
    sentinel = np.zeros(slots.sum(), dtype=bool)
    sentinel[left_sentinel] = True
    sentinel[left_sentinel + slots - 1] = True
    left_pointer = np.arange(slots.sum())
    right_pointer = np.arange(slots.sum())
    # blocks with more than `step` decisions: a prefix, as decisions are sorted descending
    active_count = np.searchsorted(-decisions, -np.arange(decisions.max()), side="left")

    for step, n_active in enumerate(active_count):
        rounds, within = np.divmod(step, block_size[:n_active])
        member = block_start[:n_active] + within
        unit = blocks.treated[member]
        insert_slot = line.insert[unit] + left_sentinel[:n_active] + 1 - block_lo[:n_active]
        left = _find(left_pointer, insert_slot - 1)
        right = _find(right_pointer, insert_slot)
        x = line.treated_x[unit]
        gap_left = np.where(sentinel[left], np.inf, np.abs(line.control_x[slot_to_control[left] * ~sentinel[left]] - x))
        gap_right = np.where(sentinel[right], np.inf, np.abs(line.control_x[slot_to_control[right] * ~sentinel[right]] - x))
        if caliper_width is not None:
            gap_left[gap_left > caliper_width] = np.inf
            gap_right[gap_right > caliper_width] = np.inf
        take_left = np.isfinite(gap_left) & (gap_left <= gap_right)
        take = np.where(take_left, left, right)
        gap = np.where(take_left, gap_left, gap_right)
        found = np.isfinite(gap)
        taken = take[found]
        left_pointer[taken] = taken - 1
        right_pointer[taken] = taken + 1
        chosen[member[found], rounds[found]] = slot_to_control[taken]
        chosen_gap[member, rounds] = gap
    return chosen, chosen_gap


def _certified(line: _Line, blocks: _Blocks, chosen_gap: np.ndarray, caliper_width: float | None) -> np.ndarray:
    """Per unit of ``blocks.treated``: are all its decisions safe from controls outside its block?"""
    block_of = np.repeat(np.arange(len(blocks.size)), blocks.size)
    units = blocks.treated
    lo, hi = blocks.lo[block_of], blocks.hi[block_of]
    x = line.treated_x[units]
    outside_left = np.where(lo > line.stratum_lo[units], x - line.control_x[np.maximum(lo - 1, 0)], np.inf)
    outside_right = np.where(hi < line.stratum_hi[units], line.control_x[np.minimum(hi, len(line.control_x) - 1)] - x, np.inf)
    outside = np.minimum(np.abs(outside_left), np.abs(outside_right))[:, None]
    if caliper_width is None:
        safe_unmatched = ~np.isfinite(outside)
    else:
        safe_unmatched = outside > caliper_width
    return np.where(np.isfinite(chosen_gap), chosen_gap < outside, safe_unmatched).all(axis=1)


def _initial_window(line: _Line, ratio: int) -> np.ndarray:
    """Control ranks to look at on each side of each treated unit at first: enough for
    every treated unit crowded into the same stretch of controls to get its matches."""
    base = _INITIAL_WINDOW_PER_MATCH * ratio + 1
    insert_sorted = np.sort(line.insert)
    crowd = np.searchsorted(insert_sorted, line.insert + base, side="left") - np.searchsorted(
        insert_sorted, line.insert - base, side="left"
    )
    return np.maximum(base, 2 * ratio * crowd).astype(np.int64)


def _without_replacement(line: _Line, ratio: int, caliper_width: float | None) -> np.ndarray:
    """Greedy matching without replacement; (treated, ratio) sorted-control positions.

    Blocks whose decisions are all certified keep their results; only blocks that are new
    after windows grow are simulated again.
    """
    n_treated = len(line.treated_x)
    has_controls = line.stratum_hi > line.stratum_lo
    chosen = np.full((n_treated, ratio), -1, dtype=np.int64)
    window = _initial_window(line, ratio)
    key_base = len(line.control_x) + 1
    settled = np.empty(0, dtype=np.int64)  # (lo, hi) keys of fully certified blocks
    while True:
        blocks = _blocks(line, window, has_controls)
        keys = blocks.lo * key_base + blocks.hi
        fresh = blocks.subset(~np.isin(keys, settled))
        block_chosen, block_gap = _simulate_blocks(line, fresh, ratio, caliper_width)
        ok = _certified(line, fresh, block_gap, caliper_width)
        chosen[fresh.treated] = block_chosen
        if ok.all():
            return chosen
        # widen failing units' windows at least to their block's width, so a crowded
        # block doubles in extent rather than creeping outwards
        width = np.repeat(fresh.hi - fresh.lo, fresh.size)
        failing = fresh.treated[~ok]
        window[failing] = np.maximum(window[failing] * _WINDOW_GROWTH, width[~ok])
        block_ok = np.logical_and.reduceat(ok, fresh.start) if len(fresh.start) else ok[:0]
        settled = np.concatenate([settled, (fresh.lo * key_base + fresh.hi)[block_ok]])


# ---------------------------------------------------------------------------------------
# Public interface
# ---------------------------------------------------------------------------------------


def _subclass_labels(treated_rows: np.ndarray) -> np.ndarray:
    """MatchIt's matched-set numbers: treated units ranked by their 1-based row number
    compared as text (R ``factor()`` on the character row numbers)."""
    as_text = (treated_rows + 1).astype(str)
    labels = np.empty(len(treated_rows), dtype=np.int64)
    labels[np.argsort(as_text, kind="stable")] = np.arange(1, len(treated_rows) + 1)
    return labels


def match_nearest(
    treated,
    distance,
    *,
    ratio: int = 1,
    replace: bool = False,
    caliper: float | None = None,
    std_caliper: bool = True,
    exact=None,
    index: Sequence | pd.Index | None = None,
) -> MatchResult:
    """Greedy nearest-neighbour matching on ``distance`` for the ATT (MatchIt semantics).

    Args:
        treated: boolean or 0/1 per unit.
        distance: matching distance per unit, e.g. the propensity model's
            ``linear_predictor`` (MatchIt ``link = "linear.logit"``).
        ratio: controls per treated unit (k of k:1).
        replace: match with replacement (a control may serve several treated units).
        caliper: maximum allowed distance gap, in SDs of ``distance`` (``std_caliper``)
            or in distance units; ``None`` for no caliper.
        std_caliper: whether ``caliper`` is in standard deviations of the distance
            (computed over all units, as MatchIt).
        exact: values to match exactly on (Series, DataFrame of several variables, or
            array), one row per unit.
        index: row labels for the output (default 0..n-1).

    Raises:
        ValueError: for inconsistent inputs, a non-positive ratio or caliper.
    """
    treated, distance = _validated(treated, distance)
    n = len(treated)
    if int(ratio) != ratio or ratio < 1:
        raise ValueError(f"ratio must be a whole number of at least 1, got {ratio!r}")
    ratio = int(ratio)
    index = pd.RangeIndex(n) if index is None else pd.Index(index)
    if len(index) != n:
        raise ValueError(f"index has {len(index)} labels but there are {n} units")
    caliper_width = None
    if caliper is not None:
        if not caliper > 0:
            raise ValueError(f"caliper must be positive, got {caliper!r}")
        caliper_width = float(caliper * np.std(distance, ddof=1)) if std_caliper else float(caliper)
    strata, exact_names = _strata_codes(exact, n)

    line = _line(treated, distance, strata)
    chosen = _with_replacement(line, ratio, caliper_width) if replace else _without_replacement(line, ratio, caliper_width)

    # Back to rows: match matrix in data order of treated units.
    n_treated = len(line.treated_rows)
    control_row = np.where(chosen >= 0, line.control_rows[np.maximum(chosen, 0)], -1)
    data_order = np.argsort(line.treated_rows, kind="stable")
    treated_rows = line.treated_rows[data_order]
    match_matrix = control_row[data_order]

    per_treated = (match_matrix >= 0).sum(axis=1)
    is_matched_treated = per_treated > 0
    weights = np.zeros(n)
    weights[treated_rows[is_matched_treated]] = 1.0
    slot_rows, slot_cols = np.nonzero(match_matrix >= 0)
    matched_controls = match_matrix[slot_rows, slot_cols]
    np.add.at(weights, matched_controls, 1.0 / per_treated[slot_rows])
    control_mask = ~treated
    control_total = weights[control_mask].sum()
    n_matched_controls = int((weights[control_mask] > 0).sum())
    if control_total > 0:
        weights[control_mask] *= n_matched_controls / control_total

    set_label = np.zeros(n_treated, dtype=np.int64)
    set_label[is_matched_treated] = _subclass_labels(treated_rows[is_matched_treated])
    subclass = None
    if not replace:
        subclass = np.zeros(n, dtype=np.int64)
        subclass[treated_rows[is_matched_treated]] = set_label[is_matched_treated]
        subclass[matched_controls] = set_label[slot_rows]

    pairs = pd.DataFrame(
        {
            "treated": index[treated_rows[slot_rows]],
            "control": index[matched_controls],
            "treated_position": treated_rows[slot_rows],
            "control_position": matched_controls,
            "slot": slot_cols + 1,
            "subclass": set_label[slot_rows],
            "distance": np.abs(distance[treated_rows[slot_rows]] - distance[matched_controls]),
        }
    )
    counts = pd.DataFrame(
        {
            "control": [
                control_mask.sum(),
                effective_sample_size(weights[control_mask]),
                n_matched_controls,
                control_mask.sum() - n_matched_controls,
                0,
            ],
            "treated": [
                n_treated,
                effective_sample_size(weights[treated]),
                int(is_matched_treated.sum()),
                int((~is_matched_treated).sum()),
                0,
            ],
        },
        index=pd.Index(["All", "Matched (ESS)", "Matched", "Unmatched", "Discarded"], name="sample"),
    ).astype(float)
    return MatchResult(
        index=index,
        treated=treated,
        distance=distance,
        weights=weights,
        subclass=subclass,
        match_matrix=match_matrix,
        pairs=pairs,
        counts=counts,
        unmatched_treated=index[treated_rows[~is_matched_treated]],
        ratio=ratio,
        replace=replace,
        caliper=None if caliper is None else float(caliper),
        std_caliper=std_caliper,
        caliper_width=caliper_width,
        exact=exact_names,
    )


def match_propensity(
    data: pd.DataFrame,
    distance,
    treatment: str,
    *,
    ratio: int = 1,
    replace: bool = False,
    caliper: float | None = None,
    std_caliper: bool = True,
    exact: Sequence[str] = (),
) -> MatchResult:
    """:func:`match_nearest` on a DataFrame: treatment and exact-matching variables by
    column name, output labelled by ``data.index``. ``distance`` is typically
    ``fit_propensity(...).linear_predictor``."""
    absent = [name for name in [treatment, *exact] if name not in data.columns]
    if absent:
        raise ValueError(f"columns not in the data: {', '.join(map(repr, absent))}")
    return match_nearest(
        data[treatment].to_numpy(),
        distance,
        ratio=ratio,
        replace=replace,
        caliper=caliper,
        std_caliper=std_caliper,
        exact=data[list(exact)] if exact else None,
        index=data.index,
    )
