"""Start a worker: agents, timers, web endpoints and /metrics on faust's web server."""

from __future__ import annotations

import logging

from faust.sensors.prometheus import setup_prometheus_sensors

import agents.deadlines
import agents.lifecycle
import agents.recovery
import service.web
from service.app import app, ledger, registry, settings
from service.metrics import LedgerCollector

# Imported for their decorators (agents, timers, pages); named so linters keep them.
REGISTERED = (agents.deadlines, agents.lifecycle, agents.recovery, service.web)


def run(loglevel: str = "info") -> None:
    from faust.worker import Worker

    registry.register(LedgerCollector(ledger))
    setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix="motcua_faust")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("faust").setLevel(logging.WARNING)
    worker = Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
