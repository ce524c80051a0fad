"""Imported last by the programme workers' server (pipelines/worker_server.py), once it has imported the rest.

Everything the server imported is moved out of the garbage collector's reach (``gc.freeze``), then the
collector, off since pipelines.worker_preloading, is turned on again. The server's own exit, when
`desist run` ends, otherwise collects across Dagster, pandas and the models, about 0.9 s in which it still
holds the command's stdout and stderr open, so whoever reads the command's output waits for it. The
workers forked from the server inherit the frozen objects and never walk them either.

For the same reason the server leaves without tearing its modules down (0.1 s more): its last exit handler
ends the process. It holds no files or connections; the workers leave through their own ``os._exit``.
"""
import atexit
import gc
import os

gc.freeze()
gc.enable()
atexit.register(os._exit, 0)
