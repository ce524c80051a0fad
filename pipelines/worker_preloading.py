"""Imported first by the programme workers' server (pipelines/worker_server.py), before the rest it imports.

The garbage collector is off while the server imports (desist/collector.py: 0.5 s of its CPU at every
`desist run`); pipelines.worker_preloaded, imported last, turns it on again.
"""
import gc

gc.disable()
