"""The usual-event fast path (schemas/parsing.py) agrees with the full validation
(schemas/validation.py).

`_usual_event` may only ever return what `_checked_event` (the full validation, which
production falls back to) returns for the same input, and it never rejects by itself: so
`parse_event` and `event_from_dict` must give, for every input, the same event (field by
field: types, values, time zone objects and offsets) or the same rejection (reason and
detail) as the full validation alone. Generated here: valid events of every type and
near misses of them (wrong types, nulls, empty strings, odd timestamps and offsets,
missing and extra keys, out-of-range numbers), against a `now` at the future boundary.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from schemas import (
    DossierEvent,
    EventType,
    InvalidEvent,
    parse_event,
    parse_timestamp,
    parsing,
    validation,
)
from schemas import events as ev

SETTINGS = settings(deadline=None, max_examples=400, suppress_health_check=list(HealthCheck))
NOW = datetime(2026, 3, 5, 3, 0, tzinfo=UTC)
PLUS_7 = timezone(timedelta(hours=7))

# ----------------------------------------------------------------------------- comparing


def outcome(call: Any) -> DossierEvent | tuple[ev.Reason, str] | tuple[str, str]:
    """What a call gives: its event, or its rejection (reason, detail), or another error."""
    try:
        return call()
    except InvalidEvent as exc:
        return (exc.reason, exc.detail)
    except Exception as exc:  # both paths must fail alike, whatever the failure
        return (type(exc).__name__, str(exc))


def assert_same_event(got: DossierEvent, want: DossierEvent) -> None:
    assert type(got) is DossierEvent
    for field in dataclasses.fields(DossierEvent):
        a, b = getattr(got, field.name), getattr(want, field.name)
        assert type(a) is type(b), field.name
        assert a == b, field.name
        if isinstance(a, datetime):
            # Equal instants are not enough: the same wall time, offset and zone object.
            assert (a.replace(tzinfo=None), a.fold) == (b.replace(tzinfo=None), b.fold)
            assert a.utcoffset() == b.utcoffset() and a.tzinfo is b.tzinfo, field.name
    assert got == want and hash(got) == hash(want)


def assert_same_outcome(got: Any, want: Any) -> None:
    if isinstance(want, DossierEvent):
        assert isinstance(got, DossierEvent), got
        assert_same_event(got, want)
    else:
        assert got == want


def check(doc: Any, now: datetime | None) -> None:
    """Every entry point against the full validation alone, for one decoded document."""
    # The full validation first: it teaches the fast path the offsets it has accepted.
    want = outcome(lambda: validation._checked_event(doc, now))
    if isinstance(doc, dict):
        usual = parsing._usual_event(doc, now)
        if usual is not None:  # the fast path only ever answers with the same event
            assert isinstance(want, DossierEvent), want
            assert_same_event(usual, want)
    assert_same_outcome(outcome(lambda: parsing.event_from_dict(doc, now)), want)
    try:
        raw = orjson.dumps(doc)
    except TypeError:  # not JSON (a key that is not a string, an integer beyond 64 bits)
        return
    decoded = orjson.loads(raw)
    want = outcome(lambda: validation._checked_event(decoded, now))
    assert_same_outcome(outcome(lambda: parse_event(raw, now)), want)
    if isinstance(want, DossierEvent):
        key = want.dossier_id.encode()
        assert_same_outcome(outcome(lambda: parse_event(raw, now, key=key)), want)
        mismatch = outcome(lambda: parse_event(raw, now, key=key + b"x"))
        assert mismatch[0] is ev.Reason.KEY_MISMATCH  # type: ignore[index]


# ----------------------------------------------------------------------------- generating

_text = st.characters(blacklist_categories=("Cs",))
_code = st.text(
    st.characters(
        blacklist_categories=("Cs",), blacklist_characters=[chr(c) for c in range(32)] + ["\x7f"]
    ),
    min_size=1,
    max_size=64,
).filter(lambda s: s.strip() != "")
# Codes as centers write them, and near misses: blank, padded, control characters, no-break
# and ideographic spaces, 64 and 65 characters.
_odd_codes = st.sampled_from(
    [
        *("SXD", "1.000948", "Sở Tư pháp", " SXD", "SXD ", "   ", "", "S\x00D", "SXD\n", "\x7f"),
        *("\u00a0", "\u3000X", "X\u2028", "\u200b", "A" * 64, "A" * 65, "😀" * 64, "😀" * 65),
    ]
)


@st.composite
def offsets(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(st.sampled_from(["Z", "z", "+00:00", "-00:00", "+07:00", "+23:59", "-12:00"]))
    sign = draw(st.sampled_from("+-"))
    return f"{sign}{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}"


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """RFC 3339 date-times in years 2000–2099 with an offset, fractions of 0 to 9 digits."""
    moment = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)))
    sep = draw(st.sampled_from(["T", "T", "T", "t", " "]))
    digits = draw(st.sampled_from([0, 0, 0, 1, 3, 6, 7, 9]))
    fraction = (
        "" if digits == 0 else "." + draw(st.text("0123456789", min_size=digits, max_size=digits))
    )
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}{sep}"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}{fraction}{draw(offsets())}"
    )


# Characters that matter to a timestamp parser: digits, separators, signs, zone letters,
# a week marker, a comma fraction, a non-ASCII digit, whitespace.
_TIMESTAMP_CHARS = "0123456789-:+TtZz .,W\u0663\n"
_odd_timestamp_texts = st.sampled_from(
    [
        "2026-03-05T09:30:00+07:00",
        "2026-03-05T09:30:00Z",
        "2026-03-05T09:30:00",
        "2026-03-05T09:30:00.+0000+07:00",
        "2026-03-05T09:30:00.1-0+07:00",
        "2026-03-05T09:30:0.+07:00",
        "2026-03-05T09:30:00,5+07:00",
        "2026-03-05T09:30:00.1234567+07:00",
        "2026-03-05T09:30:00+0700",
        "2026-03-05T09:30:00+24:00",
        "2026-03-05T09:30:00+07:60",
        "2026-02-30T09:30:00+07:00",
        "2026-03-05T24:00:00+07:00",
        "2026-03-05T23:59:60+07:00",
        "2026-W10-4T09:30:00+07:00",
        "20260305T093000+07:00",
        "2026-03-05x09:30:00+07:00",
        "1999-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
        "2026-03-05T09:30:00+07:00\n",
        "2026-03-05T09:30:00+07:00Z",
        "2026-03-05T09:30:00ZZ",
        "+07:00",
        "Z",
        "",
    ]
)


@st.composite
def mangled_timestamps(draw: st.DrawFn) -> str:
    """A valid timestamp with a few characters replaced, inserted or removed."""
    chars = list(draw(timestamps()))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(chars)))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        char = draw(st.sampled_from(_TIMESTAMP_CHARS))
        if action == "insert" or at == len(chars):
            chars.insert(at, char)
        elif action == "replace":
            chars[at] = char
        else:
            del chars[at]
    return "".join(chars)


any_timestamp = timestamps() | mangled_timestamps() | _odd_timestamp_texts

# Values a field may wrongly hold.
_wrong_values = st.sampled_from(
    [
        *(None, "", " ", 0, 1, -1, 3, 3.0, 2.5, True, False, [], {}, ["a"], {"v": 1}, "3", "true"),
        *(365, 366, 1000, 1001, 2000, 2001, 2**63 - 1, 1e300, "received", "Direct", "ONLINE"),
        *("full", "partial", "national_portal", "cash", "satisfied", "5"),
    ]
)

_INTEGER_FIELDS = {
    "processing_days": (1, 365),
    "step_hours": (1, 2000),
    "step_days": (1, 365),
    "components": (0, 1000),
    "components_digitised": (0, 1000),
    "components_reused": (0, 1000),
    "components_from_data_store": (0, 1000),
}
_CODE_FIELDS = ("agency", "procedure", "step", "department", "reason")
_TIME_FIELDS = ("occurred_at", "due_at", "new_due_at", "step_due_at")
_ENUM_VALUES = {
    "channel": ["direct", "online", "postal"],
    "online_level": ["partial", "full"],
    "method": ["national_portal", "provincial_gateway", "counter"],
    "rating": ["very_satisfied", "satisfied", "dissatisfied"],
    "type": [t.value for t in EventType],
}
KNOWN = [
    "schema_version",
    "event_id",
    "dossier_id",
    "type",
    *_TIME_FIELDS,
    *_CODE_FIELDS,
    *_INTEGER_FIELDS,
    *_ENUM_VALUES,
    "fee_due",
    "identity_verified",
    "e_result",
    "criteria",
]


def field_values(name: str) -> st.SearchStrategy[Any]:
    """Plausible and near-miss values for one contract field."""
    wrong = _wrong_values | st.from_regex(r"[a-z]{0,3}", fullmatch=True)
    if name in _TIME_FIELDS:
        return any_timestamp | wrong
    if name in _CODE_FIELDS:
        return _code | _odd_codes | wrong
    if name in _INTEGER_FIELDS:
        low, high = _INTEGER_FIELDS[name]
        near = st.sampled_from([low - 1, low, high, high + 1])
        return st.integers(low, high) | near | near.map(float) | wrong
    if name in _ENUM_VALUES:
        return st.sampled_from(_ENUM_VALUES[name]) | wrong
    if name in ("fee_due", "identity_verified", "e_result"):
        return st.booleans() | wrong
    if name == "criteria":
        return (
            st.dictionaries(_code | _odd_codes, st.sampled_from([0, 1, 2, 3, 1.0, -1]), max_size=4)
            | wrong
        )
    if name == "schema_version":
        return st.sampled_from([1, 1.0, True, "1", 2, 0, None])
    if name == "event_id":
        return (
            st.text(_text, min_size=1, max_size=128)
            | st.sampled_from(["e" * 128, "e" * 129])
            | wrong
        )
    if name == "dossier_id":
        return (
            st.text(_text, min_size=1, max_size=64) | st.sampled_from(["d" * 64, "d" * 65]) | wrong
        )
    return wrong


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event of any type, in the shapes centers send (fields of its type only)."""
    kind = draw(st.sampled_from([t.value for t in EventType]))
    doc: dict[str, Any] = {
        "event_id": draw(st.text(_text, min_size=1, max_size=128)),
        "dossier_id": draw(st.text(_text, min_size=1, max_size=64)),
        "type": kind,
        "occurred_at": draw(timestamps()),
    }
    if draw(st.booleans()):
        doc["schema_version"] = 1
    if kind == "received":
        doc["agency"] = draw(_code)
        doc["procedure"] = draw(_code)
        doc["channel"] = draw(st.sampled_from(_ENUM_VALUES["channel"]))
        which = draw(st.sampled_from(["due_at", "processing_days", "both", "neither"]))
        if which in ("due_at", "both"):
            doc["due_at"] = draw(timestamps())
        if which in ("processing_days", "both"):
            doc["processing_days"] = draw(st.integers(1, 365))
        if draw(st.booleans()):
            total = draw(st.integers(0, 1000))
            doc["components"] = total
            for name in ("components_digitised", "components_reused", "components_from_data_store"):
                if draw(st.booleans()):
                    doc[name] = draw(st.integers(0, total))
        for name in ("fee_due", "identity_verified"):
            if draw(st.booleans()):
                doc[name] = draw(st.booleans())
        if draw(st.booleans()):
            doc["online_level"] = draw(st.sampled_from(_ENUM_VALUES["online_level"]))
    elif kind == "supplement_received" and draw(st.booleans()):
        doc["due_at"] = draw(timestamps())
    elif kind == "extended":
        doc["new_due_at"] = draw(timestamps())
    elif kind in ("step_started", "step_completed"):
        doc["step"] = draw(_code)
        if kind == "step_started":
            doc["department"] = draw(_code)
            if draw(st.booleans()):
                doc["agency"] = draw(_code)
            dues = draw(
                st.sets(st.sampled_from(["step_due_at", "step_hours", "step_days"]), min_size=1)
            )
            if "step_due_at" in dues:
                doc["step_due_at"] = draw(timestamps())
            if "step_hours" in dues:
                doc["step_hours"] = draw(st.integers(1, 2000))
            if "step_days" in dues:
                doc["step_days"] = draw(st.integers(1, 365))
    elif kind == "returned" and draw(st.booleans()):
        doc["e_result"] = draw(st.booleans())
    elif kind == "paid":
        doc["method"] = draw(st.sampled_from(_ENUM_VALUES["method"]))
    elif kind == "rated":
        doc["rating"] = draw(st.sampled_from(_ENUM_VALUES["rating"]))
        if draw(st.booleans()):
            doc["criteria"] = draw(st.dictionaries(_code, st.integers(0, 2), max_size=9))
        if draw(st.booleans()):
            doc["reason"] = draw(_code)
    return doc


@st.composite
def near_misses(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with a few fields changed, removed, or added (of its type or another,
    or unknown to the contract)."""
    doc = draw(valid_documents())
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["change", "change", "remove", "add", "unknown"]))
        if action == "remove":
            doc.pop(draw(st.sampled_from(sorted(doc))), None)
        elif action == "unknown":
            doc[draw(st.sampled_from(["note", "Agency", "agency ", "ghi_chu", ""]))] = draw(
                _wrong_values
            )
        else:
            name = draw(st.sampled_from(sorted(doc) if action == "change" else KNOWN))
            doc[name] = draw(field_values(name))
    return doc


@st.composite
def nows(draw: st.DrawFn, doc: dict[str, Any]) -> datetime | None:
    """A `now` in UTC or another zone, or at the future boundary of the document's
    occurred_at (a microsecond either side), or far ahead."""
    choice = draw(st.sampled_from(["boundary", "boundary", "utc", "plus7", "far"]))
    if choice == "far":
        return datetime(2200, 1, 1, tzinfo=UTC)
    if choice == "utc":
        return NOW
    if choice == "plus7":
        return NOW.astimezone(PLUS_7)
    try:
        at = parse_timestamp(doc.get("occurred_at"), "occurred_at")
    except InvalidEvent:
        return NOW
    step = timedelta(microseconds=draw(st.integers(-2, 2)))
    zone = draw(st.sampled_from([UTC, UTC, PLUS_7, timezone(timedelta(hours=-3, minutes=-30))]))
    return (at - ev.FUTURE_TOLERANCE + step).astimezone(zone)


# ----------------------------------------------------------------------------- properties


@SETTINGS
@given(st.data())
def test_valid_events_come_out_equal(data: st.DataObject) -> None:
    doc = data.draw(valid_documents())
    check(doc, data.draw(nows(doc)))
    # The usual shapes do take the fast path (else the agreement above is vacuous): all but
    # fractions beyond microseconds and codes with characters that are not printable.
    far = datetime(2200, 1, 1, tzinfo=UTC)
    validation._checked_event(doc, far)  # teaches the fast path the document's offsets
    fine_times = all(re.search(r"\.[0-9]{7}", doc[f]) is None for f in _TIME_FIELDS if f in doc)
    printable = all(doc[f].isprintable() for f in _CODE_FIELDS if f in doc)
    if fine_times and printable:
        assert parsing._usual_event(doc, far) is not None


@SETTINGS
@given(st.data())
def test_near_misses_come_out_equal(data: st.DataObject) -> None:
    doc = data.draw(near_misses())
    check(doc, data.draw(nows(doc)))


@SETTINGS
@given(any_timestamp, st.sampled_from(list(_TIME_FIELDS)))
def test_odd_timestamps_come_out_equal(text: str, field: str) -> None:
    base = {"received": {"due_at"}, "extended": {"new_due_at"}, "step_started": {"step_due_at"}}
    kind = next((k for k, names in base.items() if field in names), "approved")
    fields = {
        "agency": "SXD",
        "procedure": "1.000948",
        "channel": "direct",
        "step": "THAM_DINH",
        "department": "SXD.QLXD",
        "new_due_at": "2026-03-20T17:00:00+07:00",
    }
    keep = {
        "received": ("agency", "procedure", "channel"),
        "extended": ("new_due_at",),
        "step_started": ("step", "department"),
        "approved": (),
    }[kind]
    doc = _base(kind, **{name: fields[name] for name in keep})
    doc[field] = text
    check(doc, NOW)
    check(doc, datetime(2200, 1, 1, tzinfo=UTC))


@SETTINGS
@given(any_timestamp)
@example("2026-03-05T09:30:00.+0000+07:00")
@example("2026-03-05T09:30:00.1-0+07:00")
def test_usual_time_is_parse_timestamp(text: str) -> None:
    try:
        want: datetime | None = parse_timestamp(text, "t")
    except InvalidEvent:
        want = None
    usual = validation._usual_time(text)
    if usual is None:
        return
    assert want is not None, "the fast path took a timestamp parse_timestamp refuses"
    naive, zone, ahead = usual
    got = datetime.combine(naive, naive.time(), zone)
    assert got == want and got.tzinfo is want.tzinfo and got.utcoffset() == want.utcoffset()
    assert got.replace(tzinfo=None) == want.replace(tzinfo=None)
    assert ahead == want.utcoffset() + ev.FUTURE_TOLERANCE


@SETTINGS
@given(st.data())
def test_random_json_values_come_out_equal(data: st.DataObject) -> None:
    value = data.draw(
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False)
            | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=8), inner, max_size=3)
            ),
            max_leaves=6,
        )
    )
    check(value, NOW)


@SETTINGS
@given(
    st.datetimes(
        timezones=st.sampled_from([UTC, PLUS_7, timezone(timedelta(hours=-9, minutes=-30))])
    )
)
def test_time_from_text_reads_isoformat(moment: datetime) -> None:
    text = moment.isoformat()
    got = validation.time_from_text(text)
    naive = datetime.fromisoformat(text[:-6])  # the former reading: date, time, shared zone
    want = datetime.combine(naive.date(), naive.time(), validation._zone(text[-6:]))
    assert got == want and got.tzinfo is want.tzinfo
    assert got.replace(tzinfo=None) == want.replace(tzinfo=None) and got.fold == want.fold


# ----------------------------------------------------------------------------- every field

# Per kind of field: the values on and just past each rule's edge, and the wrong kinds.
_EDGE_VALUES: dict[str, list[Any]] = {
    "code": [
        *("SXD", "Sở Tư pháp", "", " ", "   ", " X", "X ", "\x00", "S\x00D", "X\n", "\x7f"),
        *("\u00a0", "\u3000", "X\u2028", "\u200b", "\u00ad", "A" * 64, "A" * 65, "😀" * 65),
        *(None, 1, 1.5, True, ["a"], {"a": 1}),
    ],
    "flag": [True, False, 0, 1, 1.0, None, "true", []],
    "time": [
        *("2026-03-04T09:30:00+07:00", "2026-03-04T02:30:00Z", "2026-03-04t02:30:00.5z"),
        *("2026-03-04 09:30:00.123456+07:00", "2026-03-04T09:30:00.1234567+07:00"),
        *("2026-03-04T09:30:00.123456789-03:30", "2026-03-04T09:30:00,5+07:00"),
        *("2026-03-04T09:30:00", "2026-03-04T09:30:00+0700", "2026-03-04T09:30:00+24:00"),
        *("2026-02-30T09:30:00+07:00", "2026-03-04T24:00:00Z", "2026-03-04T23:59:60Z"),
        *("2026-03-04T09:30:00.+0000+07:00", "2026-03-04T09:30+07:00", "1999-12-31T23:59:59Z"),
        *("2026-03-04T09:30:00+07:00\n", "2026-03-04T09:30:00ZZ", "\u0662026-03-04T09:30:00Z"),
        *("", "Z", "+07:00", None, 20260304, ["2026-03-04T09:30:00Z"]),
    ],
    "schema_version": [1, 1.0, True, False, "1", 2, 0, 1.5, None],
    "event_id": ["e", " ", "", "e" * 128, "e" * 129, None, 1, ["e"]],
    "dossier_id": ["d", " ", "", "d" * 64, "d" * 65, None, 1, ["d"]],
    "criteria": [
        *({}, {"TC1": 0}, {"TC1": 2, "TC0": 1}, {"TC1": 3}, {"TC1": -1}, {"TC1": 1.0}),
        *({"TC1": True}, {" ": 1}, {"T\x00": 1}, {"A" * 65: 1}, {f"T{i}": 1 for i in range(33)}),
        *([], None, "TC1", 1),
    ],
}
for _name, (_low, _high) in _INTEGER_FIELDS.items():
    _EDGE_VALUES[_name] = [
        *(_low - 1, _low, _low + 1, _high - 1, _high, _high + 1, float(_low), float(_high)),
        *(_low + 0.5, True, False, str(_low), None, 2**64, [1]),
    ]
for _name, _values in _ENUM_VALUES.items():
    _EDGE_VALUES[_name] = [*_values, _values[0].upper(), "", " ", None, 1, [_values[0]]]


def _edge_values(name: str) -> list[Any]:
    if name in _CODE_FIELDS:
        return _EDGE_VALUES["code"]
    if name in _TIME_FIELDS:
        return _EDGE_VALUES["time"]
    if name in ("fee_due", "identity_verified", "e_result"):
        return _EDGE_VALUES["flag"]
    return _EDGE_VALUES[name]


def _base(kind: str, **fields: Any) -> dict[str, Any]:
    doc = {
        "schema_version": 1,
        "event_id": "e-1",
        "dossier_id": "d-1",
        "type": kind,
        "occurred_at": "2026-03-05T09:30:00+07:00",
        **fields,
    }
    return doc


# Each type in its plain shape and in its fullest one.
BASES = [_base(t.value) for t in EventType] + [
    _base("received", agency="SXD", procedure="1.000948", channel="direct", processing_days=3),
    _base(
        "received",
        agency="SXD",
        procedure="1.000948",
        channel="online",
        due_at="2026-03-10T17:00:00+07:00",
        processing_days=3,
        fee_due=True,
        identity_verified=False,
        components=3,
        components_digitised=2,
        components_reused=1,
        components_from_data_store=0,
        online_level="full",
    ),
    _base("supplement_received", due_at="2026-03-10T17:00:00+07:00"),
    _base("extended", new_due_at="2026-03-20T17:00:00+07:00"),
    _base("step_started", step="TD", department="SXD.CM", step_hours=8),
    _base(
        "step_started",
        step="TD",
        department="SXD.CM",
        agency="SXD",
        step_due_at="2026-03-06T17:00:00+07:00",
        step_hours=8,
        step_days=2,
    ),
    _base("step_started", step="TD", department="SXD.CM", step_hours=8, step_days=2),
    _base("step_completed", step="TD"),
    _base("returned", e_result=True),
    _base("paid", method="counter"),
    _base("rated", rating="dissatisfied", criteria={"TC2": 0, "TC1": 2}, reason="LATE"),
]


@pytest.mark.parametrize("base", BASES, ids=lambda doc: "-".join(sorted(doc))[:60])
def test_every_field_at_its_edges_comes_out_equal(base: dict[str, Any]) -> None:
    # Each field of the contract (and an unknown one) set to each edge value, or removed.
    for name in [*KNOWN, "note"]:
        changed = {k: v for k, v in base.items() if k != name}
        check(changed, NOW)
        for value in _edge_values(name) if name != "note" else [None, "", 1]:
            check({**base, name: value}, NOW)


@pytest.mark.parametrize("offset", ["+07:00", "Z", "-03:30", "+00:00"])
@pytest.mark.parametrize("fraction", ["", ".5", ".123456", ".1234567"])
def test_the_future_edge_comes_out_equal(offset: str, fraction: str) -> None:
    text = f"2026-03-05T09:30:00{fraction}{offset}"
    at = parse_timestamp(text, "occurred_at")
    for zone in (UTC, PLUS_7, timezone(timedelta(hours=-9))):
        for step in (-1, 0, 1):
            now = (at - ev.FUTURE_TOLERANCE + timedelta(microseconds=step)).astimezone(zone)
            got = outcome(
                lambda now=now: parsing.event_from_dict(_base("approved", occurred_at=text), now)
            )
            assert isinstance(got, DossierEvent) == (step >= 0)
            check(_base("approved", occurred_at=text), now)


# ----------------------------------------------------------------------------- examples


def _receipt(**fields: Any) -> dict[str, Any]:
    doc = {
        "schema_version": 1,
        "event_id": "e-1",
        "dossier_id": "d-1",
        "type": "received",
        "occurred_at": "2026-03-05T09:30:00+07:00",
        "agency": "SXD",
        "procedure": "1.000948",
        "channel": "online",
        "processing_days": 3,
    }
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not ...}


@pytest.mark.parametrize(
    "doc",
    [
        _receipt(),
        _receipt(due_at="2026-03-10T17:00:00+07:00"),
        _receipt(components=3, components_digitised=3, fee_due=True, online_level="full"),
        _receipt(components=2, components_reused=3),  # over the total
        _receipt(components_reused=3),  # no total to be over
        _receipt(channel="direct", online_level="full"),  # checked, not kept
        _receipt(processing_days=3.0),  # the same integer to JSON
        _receipt(schema_version=1.0),
        _receipt(schema_version=True),
        _receipt(agency=None),
        _receipt(note="x"),  # unknown: dropped, by the full validation
        _receipt(rating="meh"),  # known on another type: checked there
        _receipt(occurred_at="2026-03-05T09:30:00.123456789Z"),
        _receipt(occurred_at="2026-03-05 09:30:00.5-03:30"),
    ],
)
def test_examples_come_out_equal(doc: dict[str, Any]) -> None:
    for now in (NOW, NOW.astimezone(PLUS_7), None, datetime.max.replace(tzinfo=UTC)):
        check(doc, now)


def test_the_usual_receipt_takes_the_fast_path() -> None:
    doc = _receipt(due_at="2026-03-10T17:00:00+07:00", components=3, fee_due=False)
    want = validation._checked_event(doc, NOW)
    got = parsing._usual_event(doc, NOW)
    assert got is not None
    assert_same_event(got, want)


def test_records_of_a_subclass_are_built_through_the_descriptors() -> None:
    # direct_init lends an instance of the class itself to an unfrozen twin; an instance of
    # a subclass (which could add slots) is filled the former way, to the same values.
    class Marked(DossierEvent):
        __slots__ = ("mark",)

    at = datetime(2026, 3, 5, 9, 30, tzinfo=PLUS_7)
    plain = DossierEvent("e", "d", EventType.APPROVED, at, step="S")
    marked = Marked("e", "d", EventType.APPROVED, at, step="S")
    assert type(plain) is DossierEvent and type(marked) is Marked
    assert dataclasses.astuple(plain) == dataclasses.astuple(marked)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.step = "T"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        marked.step = "T"  # type: ignore[misc]
