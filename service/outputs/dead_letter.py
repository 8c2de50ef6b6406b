"""What a dead letter holds: the rejected message as it came, cut only where the dead-letter
topic could not take it. A dead letter the broker refuses fails its batch again and again, so
the whole record (key, value, headers) is sized against the topic's max.message.bytes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from schemas import MAX_MESSAGE_BYTES

# The dead-letter topic's max.message.bytes the worker creates it with: room for a copy of the
# largest message the broker accepts by default (1 MiB), plus headers.
DLQ_MAX_BYTES = 2 * 1024 * 1024
# Kafka's framing of one record in its batch (lengths, offset and time deltas, the batch
# header and CRC), with room to spare.
RECORD_FRAMING = 512
# A key longer than this is cut when the record does not fit: dossier ids are short, so a
# longer key is the bad input itself; its size and digest stay in headers.
KEY_KEPT = 1024

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    headers: Headers


def record_size(key: bytes | None, value: bytes, headers: Headers) -> int:
    """An upper bound of the record's size in the topic's terms."""
    named = sum(len(name.encode()) + len(raw) for name, raw in headers)
    return len(key or b"") + len(value) + named + RECORD_FRAMING


def fit_dead_letter(
    key: bytes | None, value: bytes | None, headers: Headers, limit: int
) -> DeadLetter:
    """The dead letter of a rejected message with `headers` (reason, offset…), within `limit`.

    Untouched when it fits. Else the key is cut to KEY_KEPT bytes (with `motcua-key-bytes`
    and `motcua-key-sha256` of the original) and the value to the contract's 64 KiB or to what
    room is left, with `motcua-truncated` giving the original value's size. The original stays
    in the input topic, which keeps everything: `motcua-offset` points at it.
    """
    raw = value if value is not None else b""
    if record_size(key, raw, headers) <= limit:
        return DeadLetter(key, raw, headers)
    cut = list(headers)
    if key is not None and len(key) > KEY_KEPT:
        cut.append(("motcua-key-bytes", str(len(key)).encode()))
        cut.append(("motcua-key-sha256", hashlib.sha256(key).hexdigest().encode()))
        key = key[:KEY_KEPT]
    cut.append(("motcua-truncated", str(len(raw)).encode()))
    room = max(0, limit - record_size(key, b"", cut))
    if len(raw) > room:
        raw = raw[: min(MAX_MESSAGE_BYTES, room)]
    return DeadLetter(key, raw, cut)
