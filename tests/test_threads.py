"""Threads shared among the cores: order of results, nesting, and a forked child."""
from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

from models.threads import cores, map_in_threads, threads_limited


def test_results_come_back_in_task_order():
    assert map_in_threads(lambda k: k * k, range(50)) == [k * k for k in range(50)]


@pytest.mark.skipif(cores() < 2, reason="one core: tasks run in the calling thread")
def test_tasks_run_in_pool_threads():
    names = set(map_in_threads(lambda _: threading.current_thread().name, range(8)))
    assert all(name.startswith("desist-numpy") for name in names)


def test_a_limit_of_one_thread_runs_the_tasks_in_the_caller():
    with threads_limited(1):
        names = set(map_in_threads(lambda _: threading.current_thread().name, range(8)))
    assert names == {threading.current_thread().name}


def test_a_task_that_shares_out_work_itself_runs_it():
    def outer(k):
        return sum(map_in_threads(lambda j: j + k, range(4)))

    assert map_in_threads(outer, range(6)) == [6 + 4 * k for k in range(6)]


def _sum_in_child(queue):
    queue.put(sum(map_in_threads(lambda part: int(part.sum()), np.array_split(np.arange(1000), 4))))


def test_a_forked_child_gets_pool_threads_of_its_own():
    map_in_threads(abs, range(4))  # the parent's pool exists before the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_sum_in_child, args=(queue,))
    child.start()
    child.join(timeout=30)
    if child.is_alive():  # waiting for threads that do not exist in the child
        child.kill()
    assert child.exitcode == 0
    assert queue.get(timeout=5) == 499_500
