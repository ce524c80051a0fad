"""Numeric design matrices for the outcome models, built once per cohort as one NumPy array.

Numbers and booleans enter as they are; categorical covariates (named as such, or any text
or pandas-categorical column) enter as indicators ``name[level]`` for every level but the
first (R's treatment contrasts: levels sorted, or in category order for a pandas
``Categorical``). Levels are encoded once as integer codes and the indicators are filled
from the codes, so no column of text is compared more than once.

Example::

    >>> import pandas as pd
    >>> data = pd.DataFrame({"age": [30, 41, 25], "region": ["North", "West", "South"]})
    >>> design = numeric_design(data, ["age", "region"])
    >>> design.names
    ('age', 'region[South]', 'region[West]')
    >>> design.matrix.tolist()
    [[30.0, 0.0, 0.0], [41.0, 0.0, 1.0], [25.0, 1.0, 0.0]]
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class NumericDesign:
    """Design columns as one C-ordered float array (rows are people).

    Attributes:
        matrix: (n, k) values.
        names: column names (``leading`` names, covariates, ``name[level]`` indicators).
        source: the covariate behind each column (a leading column is its own source).
        codes: per categorical covariate, the level code of every row (0 = first level);
            its indicator columns are those whose ``source`` is the covariate, in level order.
    """

    matrix: np.ndarray
    names: tuple[str, ...]
    source: tuple[str, ...]
    codes: dict[str, np.ndarray]

    def columns_of(self, covariate: str) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.source) == covariate)


def _is_number(column: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(column) or (
        pd.api.types.is_numeric_dtype(column) and not isinstance(column.dtype, pd.CategoricalDtype)
    )


def numeric_design(
    data: pd.DataFrame,
    covariates: Sequence[str],
    categorical: Sequence[str] | None = None,
    leading: Mapping[str, np.ndarray | float] | None = None,
) -> NumericDesign:
    """Design columns for ``covariates``, after the ``leading`` columns (e.g. an intercept
    and the treatment), in one (n, k) float array.

    Raises ValueError naming a covariate not in the data, a categorical covariate not among
    the covariates, or a covariate with missing values.
    """
    columns = design_columns(data, covariates, categorical, leading)
    return NumericDesign(columns.matrix(), columns.names, columns.source, columns.codes)


@dataclass(frozen=True)
class DesignColumns:
    """The design of :func:`numeric_design` kept as its source columns (a float array per number,
    the level codes per categorical covariate): any rows of it are filled when asked for, so a
    model that reads the design a block of rows at a time never holds the whole (n, k) matrix.

    Attributes:
        names, source, codes: as :class:`NumericDesign`.
        n_rows: rows of the design.
    """

    names: tuple[str, ...]
    source: tuple[str, ...]
    codes: dict[str, np.ndarray]
    n_rows: int
    # (design column, source values or a constant, level whose indicator the column is, or None)
    fills: tuple[tuple[int, np.ndarray | float, int | None], ...]

    def columns_of(self, covariate: str) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.source) == covariate)

    def rows(self, rows: slice | np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The design's values in ``rows`` (a slice with step 1, or row numbers), the same values
        as those rows of :meth:`matrix`; written into ``out`` (C-ordered, one row per row) if given."""
        if isinstance(rows, slice):
            start, stop, _ = rows.indices(self.n_rows)
            count = max(stop - start, 0)
        else:
            count = len(rows)
        block = np.empty((count, len(self.names))) if out is None else out[:count]
        if isinstance(rows, slice):
            # A block of a few cache-resident rows at a time: a column of it is a strided write.
            for offset in range(0, count, _FILL_ROWS):
                self._fill(slice(start + offset, start + min(offset + _FILL_ROWS, count)),
                           block[offset:offset + _FILL_ROWS])
        else:
            self._fill(rows, block)
        return block

    def matrix(self) -> np.ndarray:
        """Every row, as one (n, k) C-ordered float array."""
        return self.rows(slice(0, self.n_rows))

    def column(self, j: int) -> np.ndarray:
        """Design column ``j`` for every row: the source array itself for a number, an indicator
        as booleans, a constant repeated."""
        _, values, level = self.fills[j]
        if level is not None:
            return values == level
        return values if np.ndim(values) else np.full(self.n_rows, float(values))

    def _fill(self, rows: slice | np.ndarray, block: np.ndarray) -> None:
        for j, values, level in self.fills:
            if level is not None:
                np.equal(values[rows], level, out=block[:, j], casting="unsafe")
            elif np.ndim(values):
                block[:, j] = values[rows]
            else:
                block[:, j] = values


def design_columns(
    data: pd.DataFrame,
    covariates: Sequence[str],
    categorical: Sequence[str] | None = None,
    leading: Mapping[str, np.ndarray | float] | None = None,
) -> DesignColumns:
    """The design of :func:`numeric_design` as its source columns, nothing filled yet."""
    categorical = set(categorical or ())
    absent = [name for name in [*covariates, *categorical] if name not in data.columns]
    if absent:
        raise ValueError(f"covariates not in the data: {', '.join(map(repr, absent))}")
    unused = categorical - set(covariates)
    if unused:
        raise ValueError(f"categorical covariates not listed among the covariates: {', '.join(map(repr, sorted(unused)))}")
    leading = dict(leading or {})
    parts: list[tuple[str, np.ndarray | None, pd.Index | None]] = []  # (covariate, codes, levels)
    for name in covariates:
        column = data[name]
        # NumPy integers and booleans cannot be missing (pandas' nullable ones can).
        missing = 0 if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biu" else int(column.isna().sum())
        if missing:
            raise ValueError(f"covariate {name!r} has {missing} missing values")
        if name not in categorical and _is_number(column):
            parts.append((name, None, None))
        else:
            values = column.astype("category")
            parts.append((name, values.cat.codes.to_numpy(), values.cat.categories))
    names = [*leading]
    source = [*leading]
    for name, _, levels in parts:
        extra = [name] if levels is None else [f"{name}[{level}]" for level in levels[1:]]
        names.extend(extra)
        source.extend([name] * len(extra))
    # Every source column once; the design is filled from them a block of rows at a time.
    fills: list[tuple[int, np.ndarray | float, int | None]] = []  # (column, values, level or None)
    for j, values in enumerate(leading.values()):
        fills.append((j, values, None))
    j = len(leading)
    codes = {}
    for name, level_codes, levels in parts:
        if levels is None:
            fills.append((j, data[name].to_numpy(dtype=float), None))
            j += 1
            continue
        codes[name] = level_codes
        for level in range(1, len(levels)):
            fills.append((j, level_codes, level))
            j += 1
    return DesignColumns(tuple(names), tuple(source), codes, len(data), tuple(fills))


# Rows per block when the design is filled (a block of 30 columns is about 1 MB).
_FILL_ROWS = 4096
