"""Work shared among the machine's cores by threads.

NumPy, SciPy and BLAS release the GIL inside their loops, so threads running vectorised code
on separate parts of an array use separate cores without copying the array into processes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

_THREAD_NAME = "desist-numpy"
_pools: dict[int, ThreadPoolExecutor] = {}  # by thread count
_pools_process: int | None = None
_pools_lock = threading.Lock()
_threads_allowed: int | None = None


def cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def threads_limited(threads: int) -> Iterator[None]:
    """Within the block, work is shared among at most ``threads`` threads: for processes that
    already fill the cores between them, whose threads would only wait on each other."""
    global _threads_allowed
    before, _threads_allowed = _threads_allowed, threads
    try:
        yield
    finally:
        _threads_allowed = before


def _pool(threads: int) -> ThreadPoolExecutor:
    """A pool of ``threads`` threads, kept for the process: its threads' memory arenas stay warm
    from call to call (fresh threads page-fault on every temporary). A forked child, which
    inherits the pools but not their threads, starts its own."""
    global _pools_process
    with _pools_lock:
        if _pools_process != os.getpid():
            _pools.clear()
            _pools_process = os.getpid()
        if threads not in _pools:
            _pools[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=_THREAD_NAME)
        return _pools[threads]


def map_in_threads(function: Callable, tasks: Iterable) -> list:
    """``[function(task) for task in tasks]``, the tasks shared among one thread per core (or
    fewer, see :func:`threads_limited`); results in task order. Called from one of those
    threads it runs the tasks itself (a task waiting for the pool it occupies could wait for
    ever)."""
    tasks = list(tasks)
    threads = min(len(tasks), cores(), _threads_allowed or len(tasks))
    if threads <= 1 or threading.current_thread().name.startswith(_THREAD_NAME):
        return [function(task) for task in tasks]
    return list(_pool(threads).map(function, tasks))
