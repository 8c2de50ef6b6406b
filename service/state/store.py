"""The worker's local dossier store: RocksDB, one per worker, rebuilt from the log when lost.

Every key is a kind byte, the input partition (two bytes, big-endian), then the rest, so each
kind of a partition is one contiguous range that can be read, or dropped, on its own:
- `o` + dossier id: an open dossier (or one not received yet) — what a restart loads;
- `c` + dossier id: a closed dossier (returned, rejected, withdrawn) — read only when a late
  event reaches it, never at a restart;
- `m`: the meta: the highest input offset applied and the operational counters (events by
  type, rejections by reason, duplicates by source);
- `t`: the closed dossiers' summed contributions to the live counters;
- `a` + agency + day: the closed dossiers' per-day aggregates for period reports.
A batch of work is one atomic RocksDB write of all of these, so after any crash the store is
the fold of a prefix of the log: offsets 0..applied of each partition, nothing more, nothing
less. A restart's cost follows the open dossiers and the days, not the closed history.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from rocksdict import Options, Rdict, WriteBatch

log = logging.getLogger(__name__)

_OPEN = b"o"
_CLOSED = b"c"
_META = b"m"
_CLOSED_TOTALS = b"t"
_DAYS = b"a"
# Public for tools that read a store beside a running worker (tests/reliability).
DOSSIER_PREFIXES = (_OPEN, _CLOSED)
META_PREFIX = _META
_IDENTITY = b"i"  # which topic this store folds; another topic's store is not reused
# The stored state's version: a store of another version is set aside and rebuilt from the
# log. It changes with the key layout, and with a rule fix that changes what is derived from
# the same events (stored records keep what the old rules derived): 3, the portal's
# appointment follows a new appointment given while the clock runs (R2), and is the
# receipt's own when a supplement is asked at the receipt's instant.
_FORMAT = b"f"
FORMAT = b"3"
_KINDS = (_OPEN, _CLOSED, _META, _CLOSED_TOTALS, _DAYS)


class StoreError(RuntimeError):
    """The local store cannot be opened, read or written (disk full, corruption)."""


# RocksDB's status texts that mean the store itself is damaged (a missing table or manifest
# file inside it is damage too). Anything else — no space, permission denied, a lock held by
# another process, an I/O error — is the machine's, and the store is left as it is.
_CORRUPTION = ("Corruption:", "No such file or directory", "Invalid argument:")


def is_corruption(status: str) -> bool:
    """Whether RocksDB's error text says the store is damaged (set aside and rebuilt)."""
    return any(mark in status for mark in _CORRUPTION)


def _environment_line(path: Path, status: str) -> str:
    """One line: why the store cannot be used now, and what the operator does about it."""
    text = " ".join(status.split())[:200]
    lowered = text.lower()
    if "no space" in lowered or "disk quota" in lowered:
        fix = f"the disk is full: free space on the disk of {path.parent} (df -h), then start again"
    elif "lock" in lowered:
        fix = (
            "it is in use by another process (another worker with the same MOTCUA_DATA_DIR?): "
            "give each worker its own MOTCUA_DATA_DIR"
        )
    elif "permission denied" in lowered or "read-only" in lowered:
        fix = f"the worker may not write there: give its user write access to {path.parent}"
    else:
        fix = "fix the cause and start again (the store is kept; docs/runbook.md)"
    return f"local store {path} cannot be used ({text}): {fix}; the store was left untouched"


def _prefix(kind: bytes, partition: int) -> bytes:
    return kind + partition.to_bytes(2, "big")


def open_key(partition: int, dossier_id: bytes) -> bytes:
    return _OPEN + partition.to_bytes(2, "big") + dossier_id


def closed_key(partition: int, dossier_id: bytes) -> bytes:
    return _CLOSED + partition.to_bytes(2, "big") + dossier_id


def meta_key(partition: int) -> bytes:
    return _META + partition.to_bytes(2, "big")


def closed_totals_key(partition: int) -> bytes:
    return _CLOSED_TOTALS + partition.to_bytes(2, "big")


def day_key(partition: int, name: bytes) -> bytes:
    """An aggregate record of `partition` named `name` (agency and day, see history)."""
    return _DAYS + partition.to_bytes(2, "big") + name


@dataclass
class PartitionMeta:
    """What a partition's store holds beside its dossiers: how far it goes, what it counted.

    `applied` is the highest input offset folded in (-1: none). `start` is the first offset
    the counts cover: 0, unless an operator accepted a log whose beginning was deleted.
    """

    applied: int = -1
    start: int = 0
    events: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)

    def copy(self) -> PartitionMeta:
        """A copy a transaction can change without touching the saved one."""
        return PartitionMeta(
            self.applied,
            self.start,
            Counter(self.events),
            Counter(self.rejected),
            Counter(self.duplicates),
        )

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "applied": self.applied,
                "start": self.start,
                "events": self.events,
                "rejected": self.rejected,
                "duplicates": self.duplicates,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> PartitionMeta:
        data = orjson.loads(raw)
        return cls(
            data["applied"],
            data.get("start", 0),
            Counter(data["events"]),
            Counter(data["rejected"]),
            Counter(data["duplicates"]),
        )


class DossierStore:
    """Dossier records and partition metas in one RocksDB at `path`."""

    def __init__(self, path: Path, topic: str) -> None:
        self.path = path
        self.topic = topic
        self._db = self._open()

    @property
    def _unreadable_mark(self) -> Path:
        return self.path.with_name(f"{self.path.name}.unreadable")

    def mark_unreadable(self, why: str) -> None:
        """Found corrupt while running: the next start sets it aside and rebuilds."""
        self._unreadable_mark.write_text(why + "\n", encoding="utf-8")

    def _open(self) -> Rdict:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(_environment_line(self.path, str(exc))) from None
        if self._unreadable_mark.exists():
            # Found corrupt by a read while running: set aside and rebuilt.
            self._set_aside(self._unreadable_mark.read_text(encoding="utf-8").strip())
        try:
            db = Rdict(str(self.path), _options())
        except Exception as exc:  # rocksdict raises plain Exceptions, RocksDB's status text
            if not is_corruption(str(exc)):
                # Disk full, permission denied, a lock held by another worker, an I/O error:
                # the store may well be whole. Stop and say why; never move it.
                raise StoreError(_environment_line(self.path, str(exc))) from None
            self._set_aside(str(exc))
            try:
                db = Rdict(str(self.path), _options())
            except Exception as again:
                raise StoreError(_environment_line(self.path, str(again))) from None
        try:
            return self._check_layout(db)
        except StoreError:
            raise
        except Exception as exc:  # a write of the identity or layout on a full disk
            db.close()
            raise StoreError(_environment_line(self.path, str(exc))) from None

    def _set_aside(self, why: str) -> None:
        """A corrupt store is only a cache of the log: set it aside (for a post-mortem, never
        deleted silently) and let the worker rebuild it from the log."""
        aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
        log.error(
            "local store %s cannot be opened (%s); moved to %s, rebuilding from the log",
            self.path,
            why[:200],
            aside,
        )
        try:
            if self.path.exists():
                shutil.move(str(self.path), str(aside))
            self._unreadable_mark.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(_environment_line(self.path, str(exc))) from None

    def _check_layout(self, db: Rdict) -> Rdict:
        layout = db.get(_FORMAT)
        if layout != FORMAT and db.get(_IDENTITY) is not None:
            # Written by an older release (another key layout): a cache of the log like any
            # other, so it is set aside and rebuilt rather than misread.
            db.close()
            aside = self.path.with_name(f"{self.path.name}.format-{(layout or b'1').decode()}")
            log.warning(
                "local store %s has key layout %s, this release writes %s: moved to %s, "
                "rebuilding from the log",
                self.path,
                (layout or b"1").decode(),
                FORMAT.decode(),
                aside,
            )
            if aside.exists():
                shutil.rmtree(aside)
            shutil.move(str(self.path), str(aside))
            db = Rdict(str(self.path), _options())
        if db.get(_FORMAT) != FORMAT:
            db[_FORMAT] = FORMAT
        identity = db.get(_IDENTITY)
        if identity is None:
            db[_IDENTITY] = self.topic.encode()
        elif identity != self.topic.encode():
            db.close()
            raise StoreError(
                f"local store {self.path} holds topic {identity.decode(errors='replace')!r}, "
                f"not {self.topic!r}: use another MOTCUA_DATA_DIR"
            )
        return db

    def close(self) -> None:
        """Flush the memtables to table files, then close: the next start opens the store
        without replaying a write-ahead log of up to a memtable (64 MiB) of recent writes."""
        try:
            self._db.flush()
        except Exception as exc:  # closing anyway: the write-ahead log still holds it all
            log.warning("local store %s: flush at close failed: %s", self.path, str(exc)[:200])
        self._db.close()

    def meta(self, partition: int) -> PartitionMeta:
        raw = self._read(meta_key(partition))
        return PartitionMeta.decode(raw) if raw is not None else PartitionMeta()

    def closed_totals(self, partition: int) -> bytes | None:
        """The encoded sums of the closed dossiers' contributions, if any."""
        return self._read(closed_totals_key(partition))

    def get(self, partition: int, dossier_id: bytes) -> bytes | None:
        """A dossier's record, open or closed (open first: live events mostly reach those)."""
        raw = self._read(open_key(partition, dossier_id))
        if raw is None:
            raw = self._read(closed_key(partition, dossier_id))
        return raw

    def _read(self, key: bytes) -> bytes | None:
        try:
            return self._db.get(key)
        except Exception as exc:  # a corrupt block, or the disk's own failure
            raise self._read_failed(f"read failed: {str(exc)[:200]}") from None

    def open_dossiers(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """(dossier id, record) of every open (or not yet received) dossier of `partition`."""
        return self._scan(_OPEN, partition)

    def closed_dossiers(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        return self._scan(_CLOSED, partition)

    def dossiers(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Every stored dossier of `partition`, open then closed (tools and tests)."""
        yield from self._scan(_OPEN, partition)
        yield from self._scan(_CLOSED, partition)

    def days(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """(name, record) of every aggregate record of `partition`."""
        return self._scan(_DAYS, partition)

    def _scan(self, kind: bytes, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Raises StoreError if the scan stopped early: RocksDB ends an iteration at a corrupt
        block as if the data ended there, and a partial rebuild would look exact."""
        prefix = _prefix(kind, partition)
        skip = len(prefix)
        it = self._db.iter()
        it.seek(prefix)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                return
            yield key[skip:], it.value()
            it.next()
        try:
            it.status()
        except Exception as exc:
            raise self._read_failed(
                f"partition {partition} cannot be read whole: {str(exc)[:200]}"
            ) from None

    def _read_failed(self, why: str) -> StoreError:
        """A read found corruption: marked, so that the next start rebuilds from the log. Any
        other failure (an I/O error of the disk) leaves the store as it is."""
        if not is_corruption(why):
            return StoreError(_environment_line(self.path, why))
        error = StoreError(f"local store {self.path}: {why}")
        with contextlib.suppress(OSError):  # the next start finds the corruption again
            self.mark_unreadable(str(error))
        return error

    def write(
        self,
        puts: dict[bytes, bytes],
        deletes: Iterable[bytes] = (),
        metas: dict[int, PartitionMeta] | None = None,
    ) -> None:
        """Put and delete records, and write partition metas, in one atomic write."""
        batch = WriteBatch(raw_mode=True)
        for key in deletes:
            batch.delete(key)
        for key, value in puts.items():
            batch.put(key, value)
        for partition, meta in (metas or {}).items():
            batch.put(meta_key(partition), meta.encode())
        try:
            self._db.write(batch)
        except Exception as exc:
            raise StoreError(_environment_line(self.path, f"write failed: {exc}")) from None

    def partition_records(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Every record of `partition`, of every kind, with its whole key (a catch-up
        helper's store handed to the worker's: service/state/catch_up_helper.py)."""
        for kind in _KINDS:
            prefix = _prefix(kind, partition)
            for rest, value in self._scan(kind, partition):
                yield prefix + rest, value

    def put_records(self, partition: int, records: Iterable[tuple[bytes, bytes]]) -> None:
        """Write records of `partition` as they are, keys whole (a catch-up helper's, taken
        in chunk by chunk with the meta last: service/state/recovery.py). A record of
        another partition is refused (ValueError) before anything is written."""
        batch = WriteBatch(raw_mode=True)
        own = partition.to_bytes(2, "big")
        for key, value in records:
            if key[:1] not in _KINDS or key[1:3] != own:
                raise ValueError(f"a record of another partition or kind: {key[:3]!r}")
            batch.put(key, value)
        try:
            self._db.write(batch)
        except Exception as exc:
            raise StoreError(_environment_line(self.path, f"write failed: {exc}")) from None

    def drop(self, partition: int) -> None:
        """Forget a partition (every kind of record): it is read again from the log."""
        batch = WriteBatch(raw_mode=True)
        for kind in _KINDS:
            batch.delete_range(_prefix(kind, partition), _prefix(kind, partition + 1))
        try:
            self._db.write(batch)
        except Exception as exc:
            raise StoreError(_environment_line(self.path, f"write failed: {exc}")) from None


@dataclass(frozen=True)
class DiskSpace:
    """The store's filesystem: a full one stops the worker (exit 70), so it is watched."""

    free: int
    total: int


def disk_space(path: Path) -> DiskSpace | None:
    """Free and total bytes of the filesystem holding `path` (or its nearest existing parent)."""
    for where in (path, *path.parents):
        if where.exists():
            try:
                usage = shutil.disk_usage(where)
            except OSError:
                return None
            return DiskSpace(usage.free, usage.total)
    return None


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    return options
