"""Does a Kafka answer at this address: a metadata request, after a plain TCP check."""

from __future__ import annotations

from service.tools.kafka.host import accepts


def reachable(bootstrap: str, timeout: float = 3.0) -> bool:
    """True if a Kafka metadata request to `bootstrap` succeeds within about `timeout` seconds."""
    from kafka import KafkaAdminClient  # heavy import, needed only here

    servers = [item.strip() for item in bootstrap.split("://", 1)[-1].split(",") if item.strip()]
    # A plain TCP check first: kafka-python logs every refused connection as an error, which
    # would litter `motcua demo` and `status` output whenever nothing is listening.
    if not any(accepts(server) for server in servers):
        return False
    ms = max(int(timeout * 1000), 100)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=servers,
            client_id="motcua-broker-probe",
            request_timeout_ms=ms,
            bootstrap_timeout_ms=ms,
            reconnect_backoff_ms=100,
            reconnect_backoff_max_ms=500,
        )
    except Exception:
        return False
    try:
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        admin.close()
