"""Imported last by the programme workers' server (pipelines/worker_server.py), once it has imported the rest.

Everything the server imported is moved out of the garbage collector's reach (``gc.freeze``), then the
collector, off since pipelines.worker_preloading, is turned on again: the workers forked from the server
inherit the frozen objects, so their collections never walk Dagster, pandas and the models.

The server leaves, when `desist run` ends, through its last exit handler, without tearing its modules down:
that teardown (a collection across them, then freeing each) took up to a second in which the server still
held the command's stdout and stderr open, so whoever read the command's output waited for it. It holds no
files or connections; the workers leave through their own ``os._exit``.
"""
import atexit
import gc
import os

gc.freeze()
gc.enable()
atexit.register(os._exit, 0)
