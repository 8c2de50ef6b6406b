"""A peer for `motcua bench --peers`: a Quix Streams application doing the job of a lean
worker on the same topic — per-dossier state in RocksDB with a changelog, per-agency counters.

    python -m service.tools.bench.peer_quix

It reads what the bench gives every worker from the environment (MOTCUA_BROKER, MOTCUA_APP_ID
as its consumer group, MOTCUA_TOPIC, MOTCUA_DATA_DIR, MOTCUA_WEB_PORT) and serves /metrics
with the worker's own counter name, so the bench waits for it as for the worker. It does less
per event than the worker: no validation, no duplicate check, no replay of late events, no
status messages. Needs the `peers` extra (`pip install -e '.[peers]'`).
"""

from __future__ import annotations

import argparse
import os
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from quixstreams import Application, State

# Quix writes state to RocksDB and its changelog only when it commits a checkpoint (every 5 s
# by default), so a short run would end before paying for any of it. Every 1,000 events, the
# worker's batch (agents/lifecycle.py BATCH_MAX), puts that cost inside the measurement.
COMMIT_EVERY = 1000

# Events taken (read from the HTTP thread; only this module's processing thread writes it).
taken = 0
# (agency, event type) -> events: the per-agency counters, as the worker's ledger keeps them.
by_agency: Counter[tuple[str, str]] = Counter()


def apply_event(event: dict[str, Any], state: State) -> None:
    """Advance one dossier: its agency (only `received` carries it), last event type and
    event count live in the state store; the agency's counter goes up by one."""
    global taken
    dossier = state.get("dossier") or {}
    agency = event.get("agency") or dossier.get("agency", "")
    kind = event["type"]
    state.set("dossier", {"agency": agency, "last": kind, "events": dossier.get("events", 0) + 1})
    by_agency[agency, kind] += 1
    taken += 1


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/metrics":
            body = f'motcua_events_total{{type="peer_quix"}} {taken}\n'.encode()
        elif self.path == "/readyz":
            body = b'{"ready":true}'
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a poll every half second is not worth a log line


def serve_metrics(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Metrics)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--commit-every",
        type=int,
        default=COMMIT_EVERY,
        help="events between checkpoints (0: Quix's default, every 5 s only)",
    )
    args = parser.parse_args()
    env = os.environ
    serve_metrics(int(env["MOTCUA_WEB_PORT"]))
    app = Application(
        broker_address=env["MOTCUA_BROKER"],
        consumer_group=env["MOTCUA_APP_ID"],
        auto_offset_reset="earliest",
        state_dir=Path(env["MOTCUA_DATA_DIR"]) / "state",
        commit_every=args.commit_every,
    )
    # Keys stay bytes (the dossier id); values are the contract's JSON objects.
    events = app.topic(env["MOTCUA_TOPIC"], value_deserializer="json")
    sdf = app.dataframe(events)
    sdf.update(apply_event, stateful=True)
    app.run()


if __name__ == "__main__":
    main()
