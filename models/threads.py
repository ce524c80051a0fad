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
_THREAD_NAME = "desist-numpy"


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
            _pool, _pool_process = ThreadPoolExecutor(max_workers=cores(), thread_name_prefix=_THREAD_NAME), os.getpid()
        return _pool


def map_in_threads(function: Callable, tasks: Iterable) -> list:
    """``[function(task) for task in tasks]``, the tasks shared among one thread per core;
    results in task order. Called from one of those threads it runs the tasks itself (a
    task waiting for the pool it occupies could wait for ever)."""
    tasks = list(tasks)
    if min(len(tasks), cores()) <= 1 or threading.current_thread().name.startswith(_THREAD_NAME):
        return [function(task) for task in tasks]
    return list(_shared_pool().map(function, tasks))
