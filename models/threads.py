"""Work shared among the machine's cores by threads.

NumPy, SciPy and BLAS release the GIL inside their loops, so threads running vectorised code
on separate parts of an array use separate cores without copying the array into processes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

_pool: ThreadPoolExecutor | None = None
_pool_process: int | None = None
_pool_lock = threading.Lock()


def cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _shared_pool() -> ThreadPoolExecutor:
    """One pool per process, kept: its threads' memory arenas stay warm from call to call
    (fresh threads page-fault on every temporary). A forked child, which inherits the pool
    but not its threads, starts its own."""
    global _pool, _pool_process
    with _pool_lock:
        if _pool is None or _pool_process != os.getpid():
            _pool, _pool_process = ThreadPoolExecutor(max_workers=cores(), thread_name_prefix="desist-numpy"), os.getpid()
        return _pool


def map_in_threads(function: Callable, tasks: Iterable) -> list:
    """``[function(task) for task in tasks]``, the tasks shared among one thread per core;
    results in task order."""
    tasks = list(tasks)
    if min(len(tasks), cores()) <= 1:
        return [function(task) for task in tasks]
    return list(_shared_pool().map(function, tasks))
