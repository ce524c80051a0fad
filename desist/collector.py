"""Python's cyclic garbage collector around the heavy imports of a run.

A full collection walks every object the process holds: once Dagster, pandas, SciPy and Great
Expectations are imported that is most of a million objects and 0.1–0.5 s each time, several
times in a run of 100,000 people (1.4 s in all). Imports leave little garbage, so
``imports_uncollected`` turns the collector off while they run, then moves everything the process
holds out of its reach (``gc.freeze``): later collections walk only what the run makes afterwards.
A frozen object is still freed as soon as nothing refers to it; only a reference cycle among
frozen objects outlives its use, so freeze where little but imported modules is alive.
"""
from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def imports_uncollected() -> Iterator[None]:
    """No collection while the block imports; afterwards what it imported (and all else alive) is frozen."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
