"""`motcua bench`: how fast and how big the worker is, against a real Kafka broker.

Five measurements — throughput against a raw consumer, end-to-end latency, overdue detection
lag, scale and memory, a year's replay — each on real `python -m service worker` processes.
A table for people, Markdown on request, and ONE line of JSON last on stdout; progress goes
to stderr. The broker is the one MOTCUA_BROKER names, else a local one started here.
The steps and their order are in steps.py.
"""

from service.tools.bench.runner import run_bench

__all__ = ["run_bench"]
