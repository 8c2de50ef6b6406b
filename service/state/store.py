"""The worker's local dossier store: RocksDB, one per worker, rebuilt from the log when lost.

Keys are the input partition (two bytes, big-endian) then the dossier id, so a partition is
one contiguous range: it can be read, or dropped, on its own. Beside the dossiers, each
partition has one meta record: the highest input offset applied and the operational counters
(events by type, rejections by reason, duplicates by source). A batch of work is one atomic
RocksDB write holding both, so after any crash the store is the fold of a prefix of the log:
offsets 0..applied of each partition, nothing more, nothing less.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from rocksdict import Options, Rdict, WriteBatch

log = logging.getLogger(__name__)

_DOSSIER = b"d"
_META = b"m"
# Public for tools that read a store beside a running worker (tests/reliability).
DOSSIER_PREFIXES = (_DOSSIER,)
META_PREFIX = _META
_IDENTITY = b"i"  # which topic this store folds; another topic's store is not reused


class StoreError(RuntimeError):
    """The local store cannot be opened, read or written (disk full, corruption)."""


def _partition_prefix(partition: int) -> bytes:
    return _DOSSIER + partition.to_bytes(2, "big")


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self._unreadable_mark.exists():
                raise StoreError(self._unreadable_mark.read_text(encoding="utf-8").strip())
            db = Rdict(str(self.path), _options())
        except Exception as exc:  # rocksdict raises plain Exceptions for corruption
            # A store that cannot be opened is only a cache of the log: set it aside (for a
            # post-mortem, never deleted silently) and rebuild from the log.
            aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
            log.error(
                "local store %s cannot be opened (%s); moved to %s, rebuilding from the log",
                self.path,
                str(exc)[:200],
                aside,
            )
            try:
                if self.path.exists():
                    shutil.move(str(self.path), str(aside))
                self._unreadable_mark.unlink(missing_ok=True)
                db = Rdict(str(self.path), _options())
            except Exception as again:
                raise StoreError(f"local store {self.path}: {str(again)[:200]}") from None
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
        self._db.close()

    def meta(self, partition: int) -> PartitionMeta:
        raw = self._db.get(_META + partition.to_bytes(2, "big"))
        return PartitionMeta.decode(raw) if raw is not None else PartitionMeta()

    def get(self, partition: int, dossier_id: bytes) -> bytes | None:
        try:
            return self._db.get(_partition_prefix(partition) + dossier_id)
        except Exception as exc:  # a corrupt block
            raise self._unreadable(f"read failed: {str(exc)[:200]}") from None

    def dossiers(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """(dossier id, record) for every dossier stored for `partition`.

        Raises StoreError if the scan stopped early: RocksDB ends an iteration at a corrupt
        block as if the data ended there, and a partial rebuild would look exact.
        """
        prefix = _partition_prefix(partition)
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
            raise self._unreadable(
                f"partition {partition} cannot be read whole: {str(exc)[:200]}"
            ) from None

    def _unreadable(self, why: str) -> StoreError:
        """A read found corruption: marked, so that the next start rebuilds from the log."""
        error = StoreError(f"local store {self.path}: {why}")
        self.mark_unreadable(str(error))
        return error

    def write(
        self,
        records: dict[tuple[int, bytes], bytes],
        metas: dict[int, PartitionMeta],
    ) -> None:
        """Write dossier records and partition metas atomically."""
        batch = WriteBatch(raw_mode=True)
        for (partition, dossier_id), value in records.items():
            batch.put(_partition_prefix(partition) + dossier_id, value)
        for partition, meta in metas.items():
            batch.put(_META + partition.to_bytes(2, "big"), meta.encode())
        try:
            self._db.write(batch)
        except Exception as exc:
            raise StoreError(f"local store {self.path}: write failed: {str(exc)[:200]}") from None

    def drop(self, partition: int) -> None:
        """Forget a partition (its dossiers and meta): it is read again from the log."""
        batch = WriteBatch(raw_mode=True)
        batch.delete_range(_partition_prefix(partition), _partition_prefix(partition + 1))
        batch.delete(_META + partition.to_bytes(2, "big"))
        try:
            self._db.write(batch)
        except Exception as exc:
            raise StoreError(f"local store {self.path}: write failed: {str(exc)[:200]}") from None


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    return options
