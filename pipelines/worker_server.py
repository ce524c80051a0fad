"""The server process the programme workers of `desist run` are forked from (pipelines/stages.py).

A fork from a server that imported the pipeline once starts in milliseconds; a fresh interpreter
takes seconds to import Dagster, pandas and the models. Each fork opens its own DuckDB and Dagster
connections; the server holds none, and no threads, so forking it is safe.

This module imports neither Dagster nor the pipeline, so that `desist run` starts the server
first thing: the server imports on one core while the run's own process imports the same on the
other (both otherwise competed with the first steps' DuckDB threads for the cores).
"""
from __future__ import annotations

import multiprocessing
from multiprocessing import forkserver
from pathlib import Path

import yaml

WORKER_CONTEXT = multiprocessing.get_context("forkserver")
# What a worker imports (the pipeline; the modules Dagster imports when it opens an instance), besides the
# modules of the instance's own storage classes.
WORKER_PRELOAD = ["pipelines.definitions", "dagster._core.instance.factory", "dagster._core.storage.migration",
                  "upath"]


def configured_modules(dagster_yaml: Path) -> list[str]:
    """The modules of the classes an instance's dagster.yaml names (``module:`` of its storages, run launcher
    and so on), read without Dagster; none when there is no such file."""
    try:
        config = yaml.safe_load(dagster_yaml.read_text()) or {}
    except FileNotFoundError:
        return []
    return sorted({section["module"] for section in config.values()
                   if isinstance(section, dict) and isinstance(section.get("module"), str)})


def start(modules: list[str]) -> None:
    """Start the server (once per process), importing WORKER_PRELOAD and ``modules`` in it between
    pipelines.worker_preloading and pipelines.worker_preloaded (the garbage collector off, then what
    was imported frozen)."""
    WORKER_CONTEXT.set_forkserver_preload(
        ["pipelines.worker_preloading", *WORKER_PRELOAD, *modules, "pipelines.worker_preloaded"])
    forkserver.ensure_running()
