"""The gateway's Kafka producer: acks=all, idempotent, and an answer in bounded time.

`send` returns only when the broker acknowledged every record, or raises BrokerUnavailable;
the HTTP layer then claims nothing. A send that timed out may still land later: the
worker drops the re-sent copy by event_id, so the caller's retry is always safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from service.kafka_security import KafkaSecurity

log = logging.getLogger("motcua.gateway")

# How long /readyz waits for a metadata answer before it says "not ready".
_READY_TIMEOUT = 2.0
_RECONNECT_PAUSE = 2.0


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka message: key = dossier_id, value = contract JSON, headers say who sent it."""

    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


class BrokerUnavailable(RuntimeError):
    """The broker did not acknowledge in time (or is not connected); nothing is claimed."""


class EventSink(Protocol):
    """Where validated records go: Kafka in production, a list in unit tests."""

    async def send(self, records: Sequence[Record]) -> None: ...

    async def ready(self) -> bool: ...


class KafkaSink:
    """An AIOKafkaProducer that (re)connects in the background, so the gateway starts and
    answers 503 while the broker is down instead of failing to start."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        security: KafkaSecurity,
        send_timeout: float,
        client_id: str = "motcua-gateway",
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.security = security
        self.send_timeout = send_timeout
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._connector: asyncio.Task[None] | None = None
        self._closing = False

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            # Bounded by our own timeout anyway; the client retries inside it.
            request_timeout_ms=int(self.send_timeout * 1000),
            max_request_size=2 * 1024 * 1024,
            **self.security.aiokafka_kwargs(),
        )

    async def start(self) -> None:
        """Begin connecting; returns at once."""
        self._connector = asyncio.create_task(self._connect(), name="gateway-producer-connect")

    async def _connect(self) -> None:
        waited = False
        while not self._closing:
            producer = self._new_producer()
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                if not waited:
                    log.warning(
                        "no Kafka broker answers at %s yet (%s); retrying",
                        self.bootstrap,
                        type(exc).__name__,
                    )
                    waited = True
                await asyncio.sleep(_RECONNECT_PAUSE)
                continue
            self._producer = producer
            log.info("connected to Kafka at %s", self.bootstrap)
            return

    async def stop(self) -> None:
        self._closing = True
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connector
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), self.send_timeout)
            self._producer = None

    async def ready(self) -> bool:
        """Connected, and the broker answers a metadata request now."""
        producer = self._producer
        if producer is None:
            return False
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), _READY_TIMEOUT)
        except (KafkaError, OSError, TimeoutError):
            return False
        return True

    async def send(self, records: Sequence[Record]) -> None:
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable(f"not connected to Kafka at {self.bootstrap} yet")
        if not records:
            return
        try:
            async with asyncio.timeout(self.send_timeout):
                futures = [
                    await producer.send(
                        self.topic, value=r.value, key=r.key, headers=list(r.headers)
                    )
                    for r in records
                ]
                await asyncio.gather(*futures)
        except TimeoutError:
            raise BrokerUnavailable(
                f"Kafka at {self.bootstrap} did not acknowledge within {self.send_timeout:g} s"
            ) from None
        except KafkaError as exc:
            raise BrokerUnavailable(f"Kafka refused the send: {type(exc).__name__}") from None
