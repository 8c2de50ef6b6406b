"""Hostile input on the real topic: hypothesis makes the messages, a real worker eats them.

Random bytes, truncated JSON, deep nesting, huge strings, wrong types, extreme timestamps,
key games and messages of about 1 MB, interleaved with simulated center traffic. The
worker must stay up, send every bad message to `<topic>-dlq` with the reason the contract
gives (headers motcua-reason, motcua-detail, motcua-offset), and count every valid one.

What is expected comes from a reference model of the agent (`expected_outcome`): the
service's own validator (service.state.intake.parse) plus R7 (first stored event_id wins) and
the 200-events-per-dossier cap, applied in produce order.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from harness import WorkerProcess, consume_all
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from kafka import KafkaProducer
from kafka.errors import KafkaError
from reliability_tools import as_message, scenario, wait_settled_exact

from schemas import SCHEMA_PATH, EventType, InvalidEvent, Reason
from service.domain.progress import MAX_EVENTS_PER_DOSSIER
from service.state.intake import parse

pytestmark = pytest.mark.reliability

Message = tuple[bytes | None, bytes | None]

# The broker's default message.max.bytes is 1,048,588 for a whole record batch; a value of
# 1,048,000 bytes with a short key is just under it.
BROKER_LIMIT = 1_048_588
NEAR_LIMIT_VALUE = 1_048_000

# -- strategies ---------------------------------------------------------------------------

# The contract's fields and types, from the schema and the validator's own enum.
FIELDS = tuple(json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))["properties"])
TYPES = tuple(t.value for t in EventType)
EXTREME_TIMES = (
    "0001-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "1999-12-31T23:59:59+07:00",
    "2000-01-01T00:00:00-23:59",
    "2099-12-31T23:59:59+23:59",
    "2099-12-31T23:59:59.999999999-23:59",
    "2100-01-01T00:00:00Z",
    "9999-12-31T23:59:59+14:00",
    "2026-02-29T10:00:00+07:00",
    "2028-02-29T10:00:00+07:00",
    "2026-12-31T23:59:60+07:00",
    "2026-13-01T00:00:00+07:00",
    "2026-00-10T00:00:00+07:00",
    "2026-01-01T24:00:00+07:00",
    "2026-01-01T10:00:00+24:00",
    "2026-01-01T10:00:00+7:00",
    "2026-01-01T10:00:00",
    "2026-01-01 10:00:00+07:00",
    "2026-01-01t10:00:00z",
    "2026-01-01T10:00:00.1234567890123+07:00",
    "+2026-01-01T10:00:00Z",
    "２０２６-01-01T10:00:00Z",
    "2026-01-01T10:00:00Z\n",
    "",
    "now",
    "2098-01-01T00:00:00+07:00",
)


def ident(prefix: str) -> st.SearchStrategy[str]:
    return st.integers(0, 2**40).map(lambda n: f"{prefix}-{n:x}")


@st.composite
def valid_event(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event of any type, in the past, with a fuzz dossier id."""
    dossier = draw(ident("FZ"))
    kind = draw(st.sampled_from(TYPES))
    when = datetime(2026, 1, 5, 9, tzinfo=UTC) + timedelta(
        minutes=draw(st.integers(-400_000, 400_000))
    )
    event: dict[str, Any] = {
        "event_id": f"{dossier}-{draw(st.integers(0, 9))}",
        "dossier_id": dossier,
        "type": kind,
        "occurred_at": when.isoformat(),
    }
    if kind == "received":
        event.update(agency="FZA", procedure="1.000948", channel="online", processing_days=5)
    if kind == "extended":
        event["new_due_at"] = (when + timedelta(days=10)).isoformat()
    return event


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=30),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )


def keyed(event: dict[str, Any]) -> bytes | None:
    dossier = event.get("dossier_id")
    return dossier.encode("utf-8", "surrogatepass") if isinstance(dossier, str) else b"FZ"


@st.composite
def random_bytes(draw: st.DrawFn) -> Message:
    key = draw(st.one_of(st.none(), st.binary(max_size=20)))
    return key, draw(st.binary(max_size=400))


@st.composite
def truncated_json(draw: st.DrawFn) -> Message:
    event = draw(valid_event())
    raw = orjson.dumps(event)
    return keyed(event), raw[: draw(st.integers(0, len(raw) - 1))]


@st.composite
def deep_nesting(draw: st.DrawFn) -> Message:
    depth = draw(st.one_of(st.integers(1, 1100), st.integers(1100, 12_000)))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    nested = (opener * depth + "1" + closer * depth).encode()
    event = draw(valid_event())
    if draw(st.booleans()):
        return keyed(event), nested  # the whole message
    # Inside an otherwise valid event, as an unknown field (ignored when it parses).
    body = orjson.dumps(event)[:-1] + b',"extra":' + nested + b"}"
    return keyed(event), body


@st.composite
def huge_strings(draw: st.DrawFn) -> Message:
    event = draw(valid_event())
    name = draw(st.sampled_from([*FIELDS, "note"]))
    size = draw(
        st.one_of(
            st.integers(0, 300),
            st.sampled_from([63, 64, 65, 127, 128, 129, 65_400, 65_536, 70_000]),
        )
    )
    unit = draw(st.sampled_from(["x", "é", "𝄞", "\u0000", " ", "\\"]))
    event[name] = unit * size
    return keyed(event), orjson.dumps(event)


@st.composite
def wrong_types(draw: st.DrawFn) -> Message:
    event = draw(valid_event())
    for name in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)):
        event[name] = draw(json_values())
    return keyed(event), orjson.dumps(event)


@st.composite
def extreme_timestamps(draw: st.DrawFn) -> Message:
    event = draw(valid_event())
    name = draw(st.sampled_from(["occurred_at", "due_at", "new_due_at"]))
    value = draw(
        st.one_of(
            st.sampled_from(EXTREME_TIMES),
            st.datetimes(
                min_value=datetime(1, 1, 1),
                max_value=datetime(9999, 12, 31),
                timezones=st.sampled_from([UTC, None]),
            ).map(lambda d: d.isoformat()),
            st.integers(-(2**63), 2**63).map(str),
        )
    )
    event[name] = value
    if name == "due_at" and event["type"] == "received":
        del event["processing_days"]
    return keyed(event), orjson.dumps(event)


@st.composite
def key_games(draw: st.DrawFn) -> Message:
    event = draw(valid_event())
    key = draw(
        st.sampled_from(
            [
                None,
                b"",
                b"FZ-other",
                event["dossier_id"].encode() + b" ",
                event["dossier_id"].upper().encode(),
                b"\xff" * 8,
                b"k" * 70_000,
            ]
        )
    )
    return key, orjson.dumps(event)


@st.composite
def broken_contract(draw: st.DrawFn) -> Message:
    """Almost valid: a field missing, an unknown type or channel, a second version."""
    event = draw(valid_event())
    change = draw(st.sampled_from(["drop", "type", "channel", "version", "days", "not_object"]))
    if change == "drop":
        event.pop(draw(st.sampled_from(sorted(event))))
    elif change == "type":
        event["type"] = draw(st.sampled_from(["RECEIVED", "teleported", "", "received "]))
    elif change == "channel":
        event.update(type="received", agency="FZA", procedure="1.1", processing_days=3)
        event["channel"] = draw(st.sampled_from(["fax", "ONLINE", "", None, 1]))
    elif change == "version":
        event["schema_version"] = draw(st.sampled_from([0, 2, "1", 1.5, True, None, 1.0]))
    elif change == "days":
        event.update(type="received", agency="FZA", procedure="1.1", channel="postal")
        event["processing_days"] = draw(st.sampled_from([0, 366, -1, 3.5, "3", True, 1e300]))
    else:
        return keyed(event), orjson.dumps([event])
    return keyed(event), orjson.dumps(event)


@st.composite
def raw_text(draw: st.DrawFn) -> Message:
    """Byte-level tricks orjson must refuse or the validator must catch."""
    event = draw(valid_event())
    body = orjson.dumps(event)
    trick = draw(st.sampled_from(["bom", "nan", "surrogate", "bad_utf8", "dup_key", "trailing"]))
    if trick == "bom":
        body = b"\xef\xbb\xbf" + body
    elif trick == "nan":
        body = body[:-1] + b',"x":NaN}'
    elif trick == "surrogate":
        body = body.replace(b'"FZ-', b'"\\ud800FZ-', 1)
    elif trick == "bad_utf8":
        body = body.replace(b"FZ-", b"FZ-\xc3\x28", 1)
    elif trick == "dup_key":
        body = body[:-1] + b',"dossier_id":"FZ-dup"}'
    else:
        body = body + b" {}"
    return keyed(event), body


def hostile_messages() -> st.SearchStrategy[Message]:
    return st.one_of(
        random_bytes(),
        truncated_json(),
        deep_nesting(),
        huge_strings(),
        wrong_types(),
        extreme_timestamps(),
        key_games(),
        broken_contract(),
        raw_text(),
        valid_event().map(lambda e: (keyed(e), orjson.dumps(e))),
        st.just((b"FZ-tombstone", None)),
    )


@st.composite
def near_limit_messages(draw: st.DrawFn) -> Message:
    """About 1 MB: over faust's default producer limit (1,000,000), under the broker's."""
    size = draw(st.integers(1_000_001, NEAR_LIMIT_VALUE))
    shape = draw(st.sampled_from(["bytes", "json_string", "json_event"]))
    if shape == "bytes":
        return b"FZ-big", bytes([draw(st.integers(0, 255))]) * size
    if shape == "json_string":
        return b"FZ-big", b'"' + b"x" * (size - 2) + b'"'
    event = draw(valid_event())
    body = orjson.dumps(event)[:-1] + b',"note":"'
    return keyed(event), body + b"y" * (size - len(body) - 2) + b'"}'


def generate(
    strategy: st.SearchStrategy[Message], count: int, seed: int, batch: int = 25
) -> list[Message]:
    """`count` messages drawn by hypothesis (generation only: nothing here can fail).

    Each example is a batch of messages: hypothesis' cost per example, not per message,
    dominates at this volume.
    """
    out: list[Message] = []
    round_ = 0
    while len(out) < count:

        @hypothesis_seed(seed + round_)
        @settings(
            max_examples=max(1, (count - len(out)) // batch + 1),
            database=None,
            phases=[Phase.generate],
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(strategy, min_size=1, max_size=2 * batch, unique=True))
        def collect(messages: list[Message]) -> None:
            out.extend(messages)

        collect()
        round_ += 1
    return out[:count]


# -- the reference model ------------------------------------------------------------------


@dataclass
class Expected:
    dead: Counter[tuple[bytes, bytes, str]] = field(default_factory=Counter)
    valid: list[dict[str, Any]] = field(default_factory=list)
    # A copy of the stored event for each later message with its event_id (a duplicate).
    resent: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0  # ambiguous near the 5-minute future limit: not sent

    def rejected(self) -> Counter[str]:
        """Rejections by reason: one per bad message (offset)."""
        return Counter(reason for _, _, reason in self.dead.elements())


def expected_outcome(messages: list[Message], now: datetime) -> tuple[list[Message], Expected]:
    """What the agent must do with `messages` in this order: the DLQ (key, value, reason)
    and the events it stores. Returns the messages to send (ambiguous ones left out)."""
    out = Expected()
    send: list[Message] = []
    stored: dict[str, dict[str, dict[str, Any]]] = {}
    later = now + timedelta(minutes=15)
    for key, value in messages:
        verdicts = []
        for moment in (now, later):
            try:
                verdicts.append(parse(value, key, moment))
            except InvalidEvent as exc:
                verdicts.append(exc.reason)
        if verdicts[0] != verdicts[1]:
            out.skipped += 1
            continue
        send.append((key, value))
        verdict = verdicts[0]
        if isinstance(verdict, Reason):
            out.dead[(key or b"", value or b"", verdict.value)] += 1
            continue
        record = stored.setdefault(verdict.dossier_id, {})
        if verdict.event_id in record:
            out.resent.append(record[verdict.event_id])
            continue
        if len(record) >= MAX_EVENTS_PER_DOSSIER:
            out.dead[(key or b"", value or b"", Reason.TOO_MANY_EVENTS.value)] += 1
            continue
        record[verdict.event_id] = verdict.to_dict()
    out.valid = [event for record in stored.values() for event in record.values()]
    return send, out


def produce_hostile(bootstrap: str, topic: str, messages: list[Message]) -> list[Message]:
    """Send raw messages in order (acks=all); the ones the broker refuses are returned.

    Messages over 100 kB go alone, through a producer of their own: a batch near the limit is
    over it with a neighbour, and a refused batch would fail the producer's later sends.
    """

    def producer() -> KafkaProducer:
        return KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=20,
            max_request_size=4 * 1024 * 1024,
        )

    shared = producer()
    futures = []
    refused: list[Message] = []
    for message in messages:
        if len(message[1] or b"") <= 100_000:
            futures.append((message, shared.send(topic, key=message[0], value=message[1])))
            continue
        shared.flush(120)
        alone = producer()
        try:
            alone.send(topic, key=message[0], value=message[1]).get(120)
        except KafkaError:
            refused.append(message)
        finally:
            alone.close(10)
    shared.flush(120)
    for message, future in futures:
        try:
            future.get(60)
        except KafkaError:
            refused.append(message)
    shared.close(10)
    return refused


@dataclass
class DeadLetters:
    """The DLQ as read back: (key, value, reason) of each message, where it came from."""

    messages: Counter[tuple[bytes, bytes, str]] = field(default_factory=Counter)
    sources: dict[tuple[bytes, bytes, str], list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def dead_letters(worker: WorkerProcess, count: int, timeout: float = 180.0) -> DeadLetters:
    out = DeadLetters()
    source = re.compile(re.escape(worker.topic) + r"/\d+/\d+")
    for message in consume_all(worker.bootstrap, f"{worker.topic}-dlq", count, timeout=timeout):
        headers = dict(message.headers)
        reason = headers.get("motcua-reason", b"").decode()
        where = headers.get("motcua-offset", b"").decode()
        if reason not in {r.value for r in Reason}:
            out.problems.append(f"unknown reason {reason!r}")
        if not headers.get("motcua-detail"):
            out.problems.append(f"no detail for {reason}")
        if not source.fullmatch(where):
            out.problems.append(f"bad source {where!r}")
        item = (message.key or b"", message.value or b"", reason)
        out.messages[item] += 1
        out.sources.setdefault(item, []).append(where)
    return out


def check_dead_letters(got: DeadLetters, want: Counter[Any]) -> list[str]:
    """Every bad message in the DLQ with its reason, and nothing else (extra copies of the
    same message are checked by the caller: `redelivered`)."""
    problems = list(got.problems[:5])
    missing = want - got.messages
    unexpected = Counter({k: v for k, v in got.messages.items() if k not in want})
    if missing:
        problems.append(f"missing from the DLQ: {summarize(missing)}")
    if unexpected:
        problems.append(f"unexpected in the DLQ: {summarize(unexpected)}")
    return problems


def redelivered(got: DeadLetters, want: Counter[Any]) -> list[str]:
    """Sources of the extra copies (for the failure message and the docs)."""
    return [s for k, n in (got.messages - want).items() for s in got.sources[k]]


def agent_crashes(worker: WorkerProcess) -> list[str]:
    return [
        line[:300]
        for line in worker.log_text().splitlines()
        if "Restarting dead" in line or "crashed" in line.lower()
    ]


def summarize(counter: Counter[tuple[bytes, bytes, str]]) -> str:
    shown = [f"{r}: key={k[:20]!r} value[{len(v)}]={v[:40]!r}" for k, v, r in list(counter)[:5]]
    return f"{sum(counter.values())} messages, e.g. {shown}"


@pytest.mark.parametrize(
    ("count", "near_limit"),
    [
        pytest.param(10_000, 4, id="10k"),
        pytest.param(50_000, 12, id="50k", marks=pytest.mark.long),
    ],
)
def test_fuzzed_messages_go_to_the_dlq_and_valid_ones_are_counted(
    kafka_broker: Any, worker_factory: Any, count: int, near_limit: int
) -> None:
    seed = random.randrange(2**32)
    hostile = generate(hostile_messages(), count, seed)
    hostile += generate(near_limit_messages(), near_limit, seed)
    center = scenario(count // 20, seed=seed % 10_000)
    messages: list[Message] = [as_message(e) for e in center]
    rng = random.Random(seed)
    for message in hostile:
        messages.insert(rng.randrange(len(messages) + 1), message)
    send, expected = expected_outcome(messages, datetime.now(UTC))
    detail = f"hypothesis seed {seed}"
    assert len(hostile) - expected.skipped >= count, detail

    worker: WorkerProcess = worker_factory()
    refused = produce_hostile(kafka_broker.bootstrap, worker.topic, send)
    assert refused == [], f"the broker refused {len(refused)} messages under its limit; {detail}"

    # Exact, the operational counters too: events by type, duplicates, rejections by reason.
    wait_settled_exact(
        [worker],
        expected.valid + expected.resent,
        timeout=60 + count / 100,
        rejected=expected.rejected(),
    )
    want = expected.dead
    got = dead_letters(worker, sum(want.values()))
    assert worker.alive(), detail
    assert agent_crashes(worker) == [], f"{detail}: {agent_crashes(worker)[:3]}"
    problems = check_dead_letters(got, want)
    assert problems == [], f"{detail}: {problems}"
    # No crash, no rebalance: each bad offset is dead-lettered exactly once.
    again = redelivered(got, want)
    assert again == [], f"{detail}: sent again {again[:5]}"
    print(
        f"fuzz: {len(hostile)} hostile + {len(center)} center messages, "
        f"{sum(want.values())} to the DLQ, {len(expected.valid)} valid events stored, "
        f"{len(expected.resent)} duplicates"
    )


def test_a_message_just_under_the_broker_limit_goes_to_the_dlq(
    kafka_broker: Any, worker_factory: Any
) -> None:
    """~1 MB: bigger than faust's default producer.max_request_size (1,000,000 bytes), which
    the worker uses to forward it to the DLQ, but accepted by the broker (1,048,588)."""
    worker: WorkerProcess = worker_factory()
    events = scenario(20, seed=3, duplicate_ratio=0.0)
    big = (b"FZ-big", b"x" * NEAR_LIMIT_VALUE)
    over = (b"FZ-over", b"x" * (BROKER_LIMIT + 1000))
    refused = produce_hostile(
        kafka_broker.bootstrap,
        worker.topic,
        [*(as_message(e) for e in events[:10]), big, over, *(as_message(e) for e in events[10:])],
    )
    # Over the broker's limit: refused to the producer, never in the topic (not lost: the
    # sender is told).
    assert refused == [over]
    try:
        wait_settled_exact([worker], events, timeout=90, rejected=Counter({"too_large": 1}))
        counted = "all counted"
    except AssertionError as exc:
        counted = f"valid events NOT all counted: {exc}"
    dead = check_dead_letters(
        dead_letters(worker, 1, timeout=30), Counter({(big[0], big[1], "too_large"): 1})
    )
    assert (counted, agent_crashes(worker), dead) == ("all counted", [], [])
