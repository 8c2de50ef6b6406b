"""Every stored form of the domain's values, each with its version: the bytes in the stores.

- The dossier record (version 1): a dossier's state, its report timeline, its national-index
  track and its held events, as the worker's local store keeps it (`write_dossier_record`,
  `read_dossier_record`; `progress.DossierProgress.pack` / `unpack` use them).
- The history page (versions 1 and 2), its key, and the closed dossiers' totals (version 2),
  as history.py sums them.

Stores written by an older version stay readable: a format changes only by adding a version
(or, where a form says so, items at its end), and tests/unit/test_codec.py pins the bytes of
every version. Pure: bytes in, domain values out; the stores themselves are service/state's.
"""

from __future__ import annotations

import enum
import itertools
import struct
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from schemas import Channel, DossierEvent, EventType, OnlineLevel, PaymentMethod, Rating
from schemas.events import TYPE_ORDER
from schemas.validation import time_from_text
from service.domain.calendar import LOCAL_TZ
from service.domain.clock import Outcome
from service.domain.dossier import Key
from service.domain.index import IndexTrack
from service.domain.rules import DossierState, shared_code
from service.domain.steps import CompletedStep, OpenStep


class DecodeError(ValueError):
    """Stored bytes that this version cannot read."""


# -- codes of the closed sets -----------------------------------------------------------------

# In a fixed order: the stored forms hold the position.
TYPES: tuple[EventType, ...] = tuple(EventType)
_CHANNELS: tuple[Channel, ...] = tuple(Channel)
_OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)
_CHANNEL_CODE = {c: i for i, c in enumerate(_CHANNELS)}
_OUTCOME_CODE = {o: i for i, o in enumerate(_OUTCOMES)}
# One char per held event: "0".."8" by position for the first nine types; later types get
# a letter of their own, so inserting a type before them never changes what stored
# dossiers mean.
TYPE_CHAR = {t: chr(48 + i) for i, t in enumerate(TYPES[:9])} | {
    EventType.STEP_STARTED: "s",
    EventType.STEP_COMPLETED: "c",
    EventType.PAID: "p",
    EventType.RATED: "r",
}
CHAR_TYPE = {char: t for t, char in TYPE_CHAR.items()}
RANK = {t: TYPE_ORDER[t] for t in TYPES}  # a plain dict: cheaper than TYPE_ORDER's lookups
_RECEIVED = EventType.RECEIVED  # an Enum class attribute is a slower lookup (every event)


# -- the dossier record, version 1 ------------------------------------------------------------

DOSSIER_RECORD_VERSION = 1
# The head: version, flags, channel, outcome, closed_by's rank, the last event's rank,
# supplements, duplicates, the timeline's length, the last event's position among the ids.
# Then the report timeline (report.py's segments), a JSON line with the state, the event ids
# and types, the index track and the steps, then one JSON line per held event in arrival
# order (orjson never writes a raw newline, so lines split safely).
_RECORD_HEAD = struct.Struct("<BBbbbBBIHH")
_HAS_RECEIPT, _PASSED_DUE, _RELATIVE_IDS, _LOCAL_DUE = 1, 2, 4, 8  # the head's flags
_SEGMENT_VALUE = struct.Struct("<d")


class HeldEvents(NamedTuple):
    """What a dossier record holds beside the dossier's state."""

    duplicates: int
    timeline: bytes  # report.py's segments
    last_at: datetime | None  # the last event in R6 order: its instant, rank and position
    last_rank: int
    last_position: int
    kinds: str  # one TYPE_CHAR per held event, in arrival order
    ids: list[str]  # without the dossier id in front if `relative`
    relative: bool
    index_track: IndexTrack | None  # not `index`: that is tuple.index
    has_index: bool  # False: written before the index track existed (derive it)
    log: bytes  # one `event_row` per held event, newline-separated


def write_dossier_record(state: DossierState, held: HeldEvents) -> bytes:
    """A dossier's state and held events as version 1 bytes."""
    due = state.due
    flags = (
        (_HAS_RECEIPT if state.received_at is not None else 0)
        | (_PASSED_DUE if state.passed_due else 0)
        | (_RELATIVE_IDS if held.relative else 0)
        | (_LOCAL_DUE if due is not None and due.tzinfo is LOCAL_TZ else 0)
    )
    channel, outcome, closed_by = state.channel, state.outcome, state.closed_by
    head = _RECORD_HEAD.pack(
        DOSSIER_RECORD_VERSION,
        flags,
        _CHANNEL_CODE[channel] if channel is not None else -1,
        _OUTCOME_CODE[outcome] if outcome is not None else -1,
        RANK[closed_by] if closed_by is not None else -1,
        held.last_rank,
        state.supplements,
        held.duplicates,
        len(held.timeline),
        held.last_position,
    )
    index = held.index_track
    fields = orjson.dumps(
        [
            state.agency,
            state.procedure,
            state.received_at,
            due,
            state.paused_at,
            state.clock_end,
            state.closed_at,
            state.apology_at,
            state.new_due_at,
            held.last_at,
            held.kinds,
            held.ids,
            # Added later, at the end: the index track, then the steps if any.
            index_track_list(index) if index is not None else None,
            *_steps_list(state.step, state.steps_done),
        ]
    )
    return b"".join((head, held.timeline, fields, b"\n", held.log))


def read_dossier_record(raw: bytes, into: DossierState) -> HeldEvents:
    """`write_dossier_record`'s state, set into `into`, and the rest."""
    (
        version,
        flags,
        channel,
        outcome,
        closed_by,
        last_rank,
        supplements,
        duplicates,
        timeline_len,
        last,
    ) = _RECORD_HEAD.unpack_from(raw)
    if version != DOSSIER_RECORD_VERSION:
        raise DecodeError(f"unknown dossier record version {version}")
    start = _RECORD_HEAD.size + timeline_len
    end = raw.index(b"\n", start)
    fields = orjson.loads(raw[start:end])
    agency, procedure, received, due, paused, clock_end, closed, apology, new_due = fields[:9]
    last_at, kinds, ids = fields[9:12]
    into.agency = shared_code(agency)
    into.procedure = shared_code(procedure)
    into.channel = _CHANNELS[channel] if channel >= 0 else None
    into.received_at = time_from_text(received) if received is not None else None
    if due is None:
        into.due = None
    elif flags & _LOCAL_DUE:
        # Written as its local wall time and offset: the same wall time in the zone.
        naive = datetime.fromisoformat(due[:-6])
        into.due = datetime.combine(naive.date(), naive.time(), LOCAL_TZ)
    else:
        into.due = time_from_text(due)
    into.paused_at = time_from_text(paused) if paused is not None else None
    into.clock_end = time_from_text(clock_end) if clock_end is not None else None
    into.outcome = _OUTCOMES[outcome] if outcome >= 0 else None
    into.closed_by = TYPES[closed_by] if closed_by >= 0 else None
    into.closed_at = time_from_text(closed) if closed is not None else None
    into.apology_at = time_from_text(apology) if apology is not None else None
    into.new_due_at = time_from_text(new_due) if new_due is not None else None
    into.passed_due = bool(flags & _PASSED_DUE)
    into.supplements = supplements
    into.step, into.steps_done = _steps_of_list(fields[13:])
    index = fields[12] if len(fields) > 12 else None
    return HeldEvents(
        duplicates,
        raw[_RECORD_HEAD.size : start],
        time_from_text(last_at) if last_at is not None else None,
        last_rank,
        last,
        kinds,
        ids,
        bool(flags & _RELATIVE_IDS),
        index_track_of_list(index) if index is not None else None,
        len(fields) > 12,
        raw[end + 1 :],
    )


def last_segment_value(timeline: bytes) -> float:
    """The value of the timeline's last segment (the due in force, for a running dossier)."""
    return _SEGMENT_VALUE.unpack_from(timeline, len(timeline) - 8)[0]


def _steps_list(step: OpenStep | None, done: tuple[CompletedStep, ...]) -> list[Any]:
    """The steps' part of the record: nothing for a dossier without steps (the form stays
    as before steps existed), else the open step and the completed ones."""
    if step is None and not done:
        return []
    return [
        None
        if step is None
        else [step.step, step.department, step.agency, step.started_at, step.due],
        [[d.step, d.department, d.agency, d.completed_ts, _OUTCOME_CODE[d.outcome]] for d in done],
    ]


def _steps_of_list(part: list[Any]) -> tuple[OpenStep | None, tuple[CompletedStep, ...]]:
    if not part:
        return None, ()
    stored_step, done = part
    step = None
    if stored_step is not None:
        name, department, agency, started_at, due = stored_step
        step = OpenStep(
            name,
            shared_code(department),
            shared_code(agency),
            time_from_text(started_at),
            time_from_text(due),
        )
    if not done:
        return step, ()
    outcomes = _OUTCOMES
    return step, tuple(
        [
            CompletedStep(name, shared_code(department), shared_code(agency), at, outcomes[o])
            for name, department, agency, at, o in done
        ]
    )


# The index track's flags in the record, two bits each (0 unknown, 1 false, 2 true), in this
# order; then its instants, trailing nulls dropped. Add at the end only.
_INDEX_FLAGS: tuple[str, ...] = (
    "fee_due",
    "digitised",
    "reused",
    "from_data_store",
    "identity_verified",
    "paid",
    "paid_online",
    "dissatisfied",
    "e_result",
    "paused",
    "ended",
    "closed",
)
# Added later, at the end: the receipt's due.
_INDEX_INSTANTS: tuple[str, ...] = ("new_due", "first", "back", "second", "receipt_due")


# A flag's two bits (see _INDEX_FLAGS).
_CODE_OF_FLAG: dict[bool | None, int] = {None: 0, False: 1, True: 2}


def index_track_list(track: IndexTrack) -> list[Any]:
    """The index track as the record's JSON list."""
    # The flags and instants named one by one, in `_INDEX_FLAGS` / `_INDEX_INSTANTS` order:
    # written for every changed dossier, so no getattr by name and no loop (test_codec pins
    # the bytes).
    code = _CODE_OF_FLAG
    bits = (
        code[track.fee_due]
        | code[track.digitised] << 2
        | code[track.reused] << 4
        | code[track.from_data_store] << 6
        | code[track.identity_verified] << 8
        | code[track.paid] << 10
        | code[track.paid_online] << 12
        | code[track.dissatisfied] << 14
        | code[track.e_result] << 16
        | code[track.paused] << 18
        | code[track.ended] << 20
        | code[track.closed] << 22
    )
    out: list[Any] = [
        bits,
        track.new_due,
        track.first,
        track.back,
        track.second,
        track.receipt_due,
    ]
    while out[-1] is None:
        out.pop()
    return out


_FLAG_OF_CODE = (None, False, True, None)  # a flag's two bits: 0 unknown, 1 false, 2 true


def index_track_of_list(values: list[Any]) -> IndexTrack:
    track = IndexTrack.__new__(IndexTrack)
    bits = values[0]
    flag = _FLAG_OF_CODE
    # `_INDEX_FLAGS` order, two bits each (see index_track_list).
    track.fee_due = flag[bits & 3]
    track.digitised = flag[(bits >> 2) & 3]
    track.reused = flag[(bits >> 4) & 3]
    track.from_data_store = flag[(bits >> 6) & 3]
    track.identity_verified = flag[(bits >> 8) & 3]
    track.paid = flag[(bits >> 10) & 3]
    track.paid_online = flag[(bits >> 12) & 3]
    track.dissatisfied = flag[(bits >> 14) & 3]
    track.e_result = flag[(bits >> 16) & 3]
    track.paused = flag[(bits >> 18) & 3]
    track.ended = flag[(bits >> 20) & 3]
    track.closed = flag[(bits >> 22) & 3]
    count = len(values)
    track.new_due = values[1] if count > 1 else None
    track.first = values[2] if count > 2 else None
    track.back = values[3] if count > 3 else None
    track.second = values[4] if count > 4 else None
    track.receipt_due = values[5] if count > 5 else None
    return track


# -- the held events' log lines --------------------------------------------------------------


def event_row(event: DossierEvent) -> bytes:
    """An event's log line, without its id and type (kept beside) and trailing nulls: the
    seven base items, the step's five, then an object of the index fields set."""
    if event.type is _RECEIVED:
        channel = event.channel
        row: list[Any] = [
            event.occurred_at,
            event.agency,
            event.procedure,
            _CHANNEL_CODE[channel] if channel is not None else None,
            event.due_at,
            event.processing_days,
        ]
    elif event.step is not None:
        row = [
            event.occurred_at,
            event.agency,
            None,
            None,
            None,
            None,
            None,
            event.step,
            event.department,
            event.step_due_at,
            event.step_hours,
            event.step_days,
        ]
    elif event.due_at is not None:
        row = [event.occurred_at, None, None, None, event.due_at]
    else:
        row = [event.occurred_at]
    if event.new_due_at is not None:
        row += [None] * (6 - len(row))
        row.append(event.new_due_at)
    index = _index_fields(event)
    if index:
        row += [None] * (12 - len(row))
        row.append(index)
    while row[-1] is None:
        row.pop()
    return orjson.dumps(row)


def events_of_log(dossier_id: str, ids: list[str], kinds: str, log: bytes) -> list[DossierEvent]:
    """The held events back from their full ids, their TYPE_CHARs and the log."""
    rows = orjson.loads(b"[" + log.replace(b"\n", b",") + b"]")
    return [
        _event_of_row(dossier_id, event_id, CHAR_TYPE[kind], row)
        for event_id, kind, row in zip(ids, kinds, rows, strict=True)
    ]


_INDEX_FIELDS: tuple[str, ...] = (
    "fee_due",
    "components",
    "components_digitised",
    "components_reused",
    "components_from_data_store",
    "identity_verified",
    "online_level",
    "e_result",
    "method",
    "rating",
    "reason",
)
_WITH_INDEX_FIELDS = frozenset(
    {EventType.RECEIVED, EventType.RETURNED, EventType.PAID, EventType.RATED}
)
_INDEX_ENUMS: dict[str, type[enum.Enum]] = {
    "online_level": OnlineLevel,
    "method": PaymentMethod,
    "rating": Rating,
}


def _index_fields(event: DossierEvent) -> dict[str, Any] | None:
    if event.type not in _WITH_INDEX_FIELDS:
        return None
    # The fields one by one in _INDEX_FIELDS order (the object's key order), as a receipt's
    # log line is written for every receipt: no lookup by name. An enum is written as its
    # value (orjson writes an Enum member as its value).
    out: dict[str, Any] = {}
    value: Any
    if (value := event.fee_due) is not None:
        out["fee_due"] = value
    if (value := event.components) is not None:
        out["components"] = value
    if (value := event.components_digitised) is not None:
        out["components_digitised"] = value
    if (value := event.components_reused) is not None:
        out["components_reused"] = value
    if (value := event.components_from_data_store) is not None:
        out["components_from_data_store"] = value
    if (value := event.identity_verified) is not None:
        out["identity_verified"] = value
    if (value := event.online_level) is not None:
        out["online_level"] = value
    if (value := event.e_result) is not None:
        out["e_result"] = value
    if (value := event.method) is not None:
        out["method"] = value
    if (value := event.rating) is not None:
        out["rating"] = value
    if (value := event.reason) is not None:
        out["reason"] = value
    if event.criteria is not None:
        out["criteria"] = [list(pair) for pair in event.criteria]
    return out or None


def _index_kwargs(stored: dict[str, Any]) -> dict[str, Any]:
    out = dict(stored)
    for name, kind in _INDEX_ENUMS.items():
        if name in out:
            out[name] = kind(out[name])
    if "criteria" in out:
        out["criteria"] = tuple((code, score) for code, score in out["criteria"])
    return out


def _event_of_row(dossier_id: str, event_id: str, kind: EventType, row: list[Any]) -> DossierEvent:
    row = row + [None] * (13 - len(row))
    occurred_at, agency, procedure, channel, due_at, days, new_due_at = row[:7]
    step, department, step_due_at, step_hours, step_days, index = row[7:]
    return DossierEvent(
        event_id,
        dossier_id,
        kind,
        time_from_text(occurred_at),
        agency,
        procedure,
        _CHANNELS[channel] if channel is not None else None,
        time_from_text(due_at) if due_at is not None else None,
        days,
        time_from_text(new_due_at) if new_due_at is not None else None,
        step,
        department,
        time_from_text(step_due_at) if step_due_at is not None else None,
        step_hours,
        step_days,
        **(_index_kwargs(index) if index is not None else {}),
    )


# -- the history page, versions 1 and 2 -------------------------------------------------------

HISTORY_PAGE_VERSION = 1
WIDE_HISTORY_PAGE_VERSION = 2  # a page of more than 255 keys (step outcomes of many departments)
PAGE_DAYS = 32  # days per stored page (docs/benchmarks.md: pages read at a restart)
_KEYS_SEPARATOR = "\n"
_PAGE_HEAD = struct.Struct("<BBB")  # version 1: version, days, keys
_WIDE_PAGE_HEAD = struct.Struct("<BBH")  # version 2: version, days, keys (two bytes)
_MAX_KEYS = 65535


def encode_page(rows: dict[int, dict[str, int]]) -> bytes:
    """One agency's non-empty day rows within one page (days `p * PAGE_DAYS` onwards).

    Version 1: version, number of days, number of keys (one byte each); each day's offset
    in the page (one byte each, ascending); the totals as little-endian int32, all days of
    the first key, then of the next; the keys in UTF-8, sorted, joined by newlines.
    Version 2, only for a page of more than 255 keys: the same with the number of keys in
    two bytes (little-endian). Fixed-width columns decode at C speed: a restart reads every
    page.
    """
    days = sorted(day for day, row in rows.items() if any(row.values()))
    if not days:
        raise ValueError("a page holds one or more days of one page")
    keys = sorted({key for day in days for key, value in rows[day].items() if value})
    day_rows = [rows[day] for day in days]
    values = array("i", [row.get(key, 0) for key in keys for row in day_rows])
    head, tail = _page_frame(days, keys)
    return EncodedPage(head, days, keys, values, tail).data


def encode_page_columns(days: Sequence[int], columns: Mapping[str, Sequence[int]]) -> bytes | None:
    """`encode_page` of the rows these columns hold, `columns[key][i]` the key's total on
    `days[i]` (ascending): the same bytes, None when every total is zero.

    The day totals are kept by column: a batch's pages are encoded from slices of them,
    with no dict per row. All-zero columns and days are left out, as `encode_page` does.
    """
    page = EncodedPage.of_columns(days, columns)
    return page.data if page is not None else None


class EncodedPage:
    """A history page as `encode_page` writes it, kept in parts so that a change to totals
    it already holds gives the new bytes without encoding the page again (`patched`): the
    day totals of a live center change on the same few pages batch after batch."""

    __slots__ = ("_day_at", "_key_at", "days", "head", "keys", "tail", "values")

    def __init__(
        self, head: bytes, days: list[int], keys: list[str], values: array[int], tail: bytes
    ) -> None:
        self.head = head  # the version's head and the days' offsets
        self.days = days  # the page's days (ordinals), ascending
        self.keys = keys  # its keys, sorted
        self.values = values  # key-major totals, native byte order
        self.tail = tail  # the keys, joined
        # Each day's and key's position, made when the page is first patched (most pages
        # written by encoding are never patched).
        self._day_at: dict[int, int] | None = None
        self._key_at: dict[str, int] | None = None

    @classmethod
    def of_columns(
        cls, days: Sequence[int], columns: Mapping[str, Sequence[int]]
    ) -> EncodedPage | None:
        """The page of these columns (see `encode_page_columns`); None when all are zero."""
        count = len(days)
        keys = sorted([key for key, column in columns.items() if column.count(0) != count])
        if not keys:
            return None
        values = array("i")
        for key in keys:
            values.extend(columns[key])
        width = len(keys)
        if len(values) != width * count:
            raise ValueError("a column's length is not the number of days")
        # A day is empty when its totals, every count-th value from its index, are all zero;
        # there are too few zeros for that more often than not.
        if values.count(0) >= width:
            kept = [i for i in range(count) if values[i::count].count(0) != width]
            if len(kept) != count:
                values = array("i", [values[k * count + i] for k in range(width) for i in kept])
                days = [days[i] for i in kept]
        head, tail = _page_frame(days, keys)
        return cls(head, list(days), keys, values, tail)

    @property
    def data(self) -> bytes:
        """The stored bytes."""
        values = self.values
        if sys.byteorder == "big":
            values = values[:]
            values.byteswap()
        return b"".join((self.head, values.tobytes(), self.tail))

    def patched(self, changes: Iterable[tuple[int, Mapping[str, int]]]) -> EncodedPage | None:
        """This page with `changes` ((day, {key: delta}) of its days) added, as
        `of_columns` would encode the columns after them; None when that needs a day or a
        key the page does not hold, or a total falling to zero empties a day or a key
        (the caller encodes the columns then)."""
        day_at, key_at = self._day_at, self._key_at
        if day_at is None or key_at is None:
            day_at = self._day_at = {day: i for i, day in enumerate(self.days)}
            key_at = self._key_at = {key: k for k, key in enumerate(self.keys)}
        count = len(day_at)
        values = self.values[:]
        zeroed: list[tuple[int, int]] = []
        for day, row in changes:
            i = day_at.get(day)
            for key, delta in row.items():
                if not delta:
                    continue  # a mark taken back in the same batch: written nowhere
                k = key_at.get(key)
                if i is None or k is None:
                    return None
                at = k * count + i
                total = values[at] + delta
                values[at] = total
                if not total:
                    zeroed.append((k, i))
        width = len(key_at)
        for k, i in zeroed:
            if values[k * count : (k + 1) * count].count(0) == count:
                return None  # the key leaves the page
            if values[i::count].count(0) == width:
                return None  # the day leaves the page
        page = EncodedPage(self.head, self.days, self.keys, values, self.tail)
        page._day_at, page._key_at = day_at, key_at
        return page


def _page_frame(days: Sequence[int], keys: list[str]) -> tuple[bytes, bytes]:
    """What comes before a page's totals (the head, the days' offsets) and after (the keys),
    for these days (ascending, one page) and sorted keys."""
    first = days[0] // PAGE_DAYS * PAGE_DAYS
    if days[-1] - first >= PAGE_DAYS or any(b <= a for a, b in itertools.pairwise(days)):
        raise ValueError("a page holds one or more days of one page")
    joined = _KEYS_SEPARATOR.join(keys)
    # Sorted, so an empty key comes first; a key with a newline adds a separator.
    if len(keys) > _MAX_KEYS or not keys[0] or joined.count(_KEYS_SEPARATOR) != len(keys) - 1:
        raise ValueError(f"a page holds at most {_MAX_KEYS} keys, none empty or with a newline")
    if len(keys) > 255:
        head = _WIDE_PAGE_HEAD.pack(WIDE_HISTORY_PAGE_VERSION, len(days), len(keys))
    else:
        head = _PAGE_HEAD.pack(HISTORY_PAGE_VERSION, len(days), len(keys))
    return head + bytes([day - first for day in days]), joined.encode()


def decode_page(page: int, data: bytes) -> dict[int, dict[str, int]]:
    """`encode_page`'s rows back, by day ordinal."""
    days, columns = decode_page_columns(page, data)
    return {
        day: {key: values[i] for key, values in columns.items() if values[i]}
        for i, day in enumerate(days)
    }


def decode_page_columns(page: int, data: bytes) -> tuple[list[int], dict[str, array[int]]]:
    """`encode_page`'s days and, per key, its totals on those days."""
    heads = {HISTORY_PAGE_VERSION: _PAGE_HEAD, WIDE_HISTORY_PAGE_VERSION: _WIDE_PAGE_HEAD}
    head = heads.get(data[0]) if data else None
    if head is None or len(data) < head.size:
        raise DecodeError(f"page version {data[:1].hex() or 'missing'}")
    _, count, width = head.unpack_from(data)
    offsets = data[head.size : head.size + count]
    start = head.size + count
    stop = start + 4 * count * width
    if count == 0 or len(data) < stop:
        raise DecodeError("truncated page")
    if any(b <= a for a, b in itertools.pairwise(offsets)) or offsets[-1] >= PAGE_DAYS:
        raise DecodeError("page days out of order")
    try:
        keys = data[stop:].decode().split(_KEYS_SEPARATOR) if width else []
    except UnicodeDecodeError:
        raise DecodeError("a key is not UTF-8") from None
    if len(keys) != width or "" in keys:
        raise DecodeError(f"{len(keys)} keys for {width} columns")
    values = array("i", data[start:stop])
    if sys.byteorder == "big":
        values.byteswap()
    first = page * PAGE_DAYS
    columns = {key: values[k * count : (k + 1) * count] for k, key in enumerate(keys)}
    return [first + offset for offset in offsets], columns


_PAGE_KEY_NUMBER = struct.Struct(">I")  # big-endian: one agency's pages sort in order


def encode_page_key(agency: str, page: int) -> bytes:
    """A page's key within the history's key range: the agency's length and code, the page."""
    raw = agency.encode()
    if len(raw) > 255:
        raise ValueError("agency code longer than 255 bytes")
    return bytes((len(raw),)) + raw + _PAGE_KEY_NUMBER.pack(page)


def decode_page_key(key: bytes) -> tuple[str, int]:
    size = key[0] if key else -1
    if size < 0 or len(key) != 1 + size + _PAGE_KEY_NUMBER.size:
        raise DecodeError("malformed page key")
    return key[1 : 1 + size].decode(), _PAGE_KEY_NUMBER.unpack_from(key, 1 + size)[0]


# -- the closed dossiers' totals, version 2 ---------------------------------------------------

CLOSED_TOTALS_VERSION = 2


def encode_closed_totals(totals: Counter[Key]) -> bytes:
    """Version 2, then a JSON array of [part, …, total] sorted by key. Written with every
    batch that closes a dossier, so encoded by orjson in C."""
    items = sorted([*key, value] for key, value in totals.items() if value)
    return bytes((CLOSED_TOTALS_VERSION,)) + orjson.dumps(items)


def decode_closed_totals(data: bytes) -> Counter[Key]:
    if not data or data[0] != CLOSED_TOTALS_VERSION:
        raise DecodeError(f"closed totals version {data[:1].hex() or 'missing'}")
    try:
        items = orjson.loads(data[1:])
        totals: Counter[Key] = Counter()
        for item in items:
            *parts, value = item
            if type(value) is not int or not parts or not all(type(p) is str for p in parts):
                raise DecodeError("a closed total is not [part, …, count]")
            totals[tuple(parts)] = value
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"closed totals: {exc}") from None
    return totals
