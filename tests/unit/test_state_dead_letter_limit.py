"""The limit a worker sizes its dead letters to (service/worker.py `dead_letter_limit`): the
dead-letter topic's max.message.bytes, never above what the worker's own producer sends. A
topic raised past the producer's max_request_size once let a dead letter grow past it: the
producer refused it every time, and its batch failed and was read again forever."""

from __future__ import annotations

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from service.outputs.dead_letter import fit_dead_letter
from service.settings import Settings
from service.worker import build_worker, dead_letter_limit

HEADERS = [
    ("motcua-reason", b"too_large"),
    ("motcua-detail", b"d" * 300),
    ("motcua-offset", b"dossier-events/0/12345"),
    ("motcua-source", b"direct"),
]


def test_a_dead_letter_topic_larger_than_the_producer_allows_is_capped_at_the_producer() -> None:
    worker = build_worker(Settings())
    producer_max = int(worker.app.conf.producer_max_request_size)
    topic_limit = 5 * producer_max  # an operator raised max.message.bytes generously
    limit = dead_letter_limit(worker, topic_limit)
    assert limit == producer_max
    # A rejected message larger than the producer's maximum (the broker's own limit was
    # raised too): its dead letter is cut to what the producer will send.
    letter = fit_dead_letter(b"key", b"v" * (3 * producer_max), HEADERS, limit)
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(
        letter.key, letter.value, letter.headers
    )
    assert size <= producer_max  # aiokafka's own check before it sends (max_request_size)


def test_a_smaller_dead_letter_topic_keeps_its_own_limit() -> None:
    worker = build_worker(Settings())
    assert dead_letter_limit(worker, 100_000) == 100_000
    producer_max = int(worker.app.conf.producer_max_request_size)
    assert dead_letter_limit(worker, producer_max) == producer_max
