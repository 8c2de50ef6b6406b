"""Dead letters always fit their topic, and a dead-letter topic too small is refused at start
with one clear sentence: a dead letter the broker refuses fails its batch, again and again."""

from __future__ import annotations

from typing import Any

from agents.status import DEAD_LETTER_OVERHEAD, dead_letter_value
from schemas import MAX_MESSAGE_BYTES
from service import worker
from service.app import settings


def test_a_dead_letter_is_the_original_bytes_when_they_fit() -> None:
    original = b"x" * (200 * 1024)  # rejected as too large, kept whole for a replay
    assert dead_letter_value(original, 2 * 1024 * 1024) == (original, [])
    assert dead_letter_value(None, 2 * 1024 * 1024) == (b"", [])


def test_a_dead_letter_too_large_for_its_topic_is_cut_to_the_contract_limit() -> None:
    original = b"y" * (200 * 1024)
    value, headers = dead_letter_value(original, MAX_MESSAGE_BYTES + DEAD_LETTER_OVERHEAD)
    assert value == original[:MAX_MESSAGE_BYTES]
    assert headers == [("motcua-truncated", str(200 * 1024).encode())]
    small = b"z" * 1000
    assert dead_letter_value(small, MAX_MESSAGE_BYTES + DEAD_LETTER_OVERHEAD) == (small, [])


class Admin:
    """kafka-python's describe_configs answer, shaped as worker._config_values reads it."""

    def __init__(self, max_bytes: str) -> None:
        self.max_bytes = max_bytes

    def describe_configs(self, resources: Any, config_filter: str) -> dict[str, Any]:
        return {"topic": {settings.dlq_topic: {"max.message.bytes": {"value": self.max_bytes}}}}


def test_a_dead_letter_topic_below_the_contract_limit_is_named_with_the_fix() -> None:
    problem = worker.check_dead_letter_topic(Admin("10000"))
    assert problem is not None
    assert f"topic {settings.dlq_topic} has max.message.bytes=10000" in problem
    assert "kafka-configs.sh" in problem and "\n" not in problem


def test_a_dead_letter_topic_large_enough_passes_and_sets_the_limit() -> None:
    from service import app

    assert worker.check_dead_letter_topic(Admin("1048588")) is None
    assert app.dead_letter_limit == 1048588
    app.dead_letter_limit = app.DLQ_MAX_BYTES
