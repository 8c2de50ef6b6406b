"""The gateway's own /metrics (prefix motcua_gateway_), in its own registry.

Labels are routes, status codes, reason codes and system names from the token file: small,
closed sets. Never a dossier id, never anything from a request body.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Seconds from the first send of a request's events to the broker's last acknowledgement.
_PRODUCE_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class GatewayMetrics:
    """Every gateway family, registered in `registry`."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "motcua_gateway_requests",
            "HTTP requests answered, by route and status code.",
            ("route", "status"),
            registry=r,
        )
        self.items_accepted = Counter(
            "motcua_gateway_items_accepted",
            "Items (events or national-sync dossiers) acknowledged by the broker, by route"
            " and calling system.",
            ("route", "source"),
            registry=r,
        )
        self.items_rejected = Counter(
            "motcua_gateway_items_rejected",
            "Items refused by the contract or the national-sync mapping, by route, calling"
            " system and reason code.",
            ("route", "source", "reason"),
            registry=r,
        )
        self.events_produced = Counter(
            "motcua_gateway_events_produced",
            "Contract events produced to Kafka and acknowledged, by route and calling system.",
            ("route", "source"),
            registry=r,
        )
        self.produce_seconds = Histogram(
            "motcua_gateway_produce_seconds",
            "Time from sending a request's events to the broker's acknowledgement of all.",
            buckets=_PRODUCE_BUCKETS,
            registry=r,
        )
        self.broker_unavailable = Counter(
            "motcua_gateway_broker_unavailable",
            "Requests answered 503 because the broker did not acknowledge in time.",
            registry=r,
        )
        self.relayed = Counter(
            "motcua_gateway_relayed",
            "Bodies forwarded to a source's upstream (relay mode), by calling system and"
            " the upstream's status class (2xx, 4xx, 5xx) or timeout / unreachable.",
            ("source", "outcome"),
            registry=r,
        )
        self.logins = Counter(
            "motcua_gateway_logins",
            "OpenCPS logins, by result: accepted, refused, locked (too many failures).",
            ("result",),
            registry=r,
        )
        self.ready = Gauge(
            "motcua_gateway_ready",
            "1 when the broker answered the gateway's producer at this scrape, else 0.",
            registry=r,
        )
        self.units = Gauge(
            "motcua_gateway_units",
            "Units listed in the units file (MOTCUA_UNITS_FILE) in force.",
            registry=r,
        )
