"""Dead letters always fit their topic, and a dead-letter topic too small is refused at start
with one clear sentence: a dead letter the broker refuses fails its batch, again and again."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from schemas import MAX_MESSAGE_BYTES
from service import worker
from service.outputs.dead_letter import KEY_KEPT, fit_dead_letter, record_size
from service.settings import Settings

settings = Settings(topic="center-events")
HEADERS = [
    ("motcua-reason", b"schema_invalid"),
    ("motcua-detail", "không phải JSON".encode()),
    ("motcua-offset", b"dossier-events/3/1234"),
    ("motcua-source", b"direct"),
]
SMALL_DLQ = 100 * 1024  # the topic of the failure-injection run: passes the start check


def test_a_dead_letter_is_the_original_bytes_when_they_fit() -> None:
    original = b"x" * (200 * 1024)  # rejected as too large, kept whole for a replay
    letter = fit_dead_letter(b"HS-1", original, HEADERS, 2 * 1024 * 1024)
    assert (letter.key, letter.value, letter.headers) == (b"HS-1", original, HEADERS)
    assert fit_dead_letter(None, None, HEADERS, SMALL_DLQ).value == b""


def test_a_dead_letter_too_large_for_its_topic_is_cut_to_the_contract_limit() -> None:
    original = b"y" * (200 * 1024)
    letter = fit_dead_letter(b"HS-1", original, HEADERS, SMALL_DLQ)
    assert letter.key == b"HS-1"
    assert letter.value == original[:MAX_MESSAGE_BYTES]
    assert letter.headers == [*HEADERS, ("motcua-truncated", str(200 * 1024).encode())]
    assert record_size(letter.key, letter.value, letter.headers) <= SMALL_DLQ


def test_a_huge_key_is_cut_with_its_size_and_digest_kept() -> None:
    key = bytes(range(256)) * 800  # 200 KiB
    value = b'{"not": "an event"}'
    letter = fit_dead_letter(key, value, HEADERS, SMALL_DLQ)
    assert letter.key == key[:KEY_KEPT]
    assert letter.value == value  # the value fitted once the key was cut
    extra = dict(letter.headers[len(HEADERS) :])
    assert extra == {
        "motcua-key-bytes": b"204800",
        "motcua-key-sha256": hashlib.sha256(key).hexdigest().encode(),
        "motcua-truncated": str(len(value)).encode(),
    }
    assert record_size(letter.key, letter.value, letter.headers) <= SMALL_DLQ


@given(
    key=st.one_of(st.none(), st.integers(0, 400_000)),
    value=st.one_of(st.none(), st.integers(0, 1_200_000)),
    limit=st.integers(MAX_MESSAGE_BYTES + 4 * 1024, 3 * 1024 * 1024),
)
def test_every_dead_letter_fits_a_topic_that_passes_the_start_check(
    key: int | None, value: int | None, limit: int
) -> None:
    """Whatever came in: the record is within the topic's limit, and cut only if it had to."""
    raw_key = None if key is None else b"k" * key
    raw_value = None if value is None else b"v" * value
    letter = fit_dead_letter(raw_key, raw_value, HEADERS, limit)
    assert record_size(letter.key, letter.value, letter.headers) <= limit
    whole = record_size(raw_key, raw_value or b"", HEADERS) <= limit
    assert whole == (letter.headers == HEADERS)
    assert (raw_value or b"").startswith(letter.value)
    assert raw_key is None or raw_key.startswith(letter.key or b"")


class Admin:
    """kafka-python's describe_configs answer, shaped as input_topic.config_values reads it."""

    def __init__(self, max_bytes: str) -> None:
        self.max_bytes = max_bytes

    def describe_configs(self, resources: Any, config_filter: str) -> dict[str, Any]:
        return {"topic": {settings.dlq_topic: {"max.message.bytes": {"value": self.max_bytes}}}}


def test_a_dead_letter_topic_below_the_contract_limit_is_named_with_the_fix() -> None:
    limit, problem = worker.check_dead_letter_topic(Admin("10000"), settings)
    assert limit == 10000 and problem is not None
    assert f"topic {settings.dlq_topic} has max.message.bytes=10000" in problem
    assert "\n" not in problem
    # The fix is a command the project installs, with the broker it must reach.
    assert (
        f"MOTCUA_BROKER={settings.bootstrap} MOTCUA_TOPIC={settings.topic} motcua dlq-limit"
        in problem
    )


def test_a_dead_letter_topic_large_enough_passes_and_gives_its_limit() -> None:
    assert worker.check_dead_letter_topic(Admin("1048588"), settings) == (1048588, None)
    assert worker.check_dead_letter_topic(Admin("102400"), settings) == (102400, None)


def test_the_printed_fix_says_in_one_line_when_the_broker_does_not_answer(
    capsys: Any, monkeypatch: Any
) -> None:
    from service.cli import main

    monkeypatch.setenv("MOTCUA_BROKER", "127.0.0.1:1")
    assert main(["dlq-limit", "--bytes", "2097152"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("motcua dlq-limit: cannot reach the broker at 127.0.0.1:1")
    assert "\n" not in err
