"""The dossiers the last transactions saved, kept decoded so the next event of a dossier does
not read and decode its record again.

It is a read cache of the store and nothing more: an entry is exactly the record the store
holds (put there only after the write that saved it), a transaction takes its dossiers out
before changing them in place and gives them back only when it committed, so a failed
transaction leaves the store's record as the truth. Bounded: the least recently saved go
first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from service.domain.progress import DossierProgress

Where = tuple[int, str]  # (partition, dossier id)

# Enough for a busy center's open work; what a decoded dossier weighs, and so what this
# costs in memory, is measured in docs/benchmarks.md and stated in docs/operations.md.
DEFAULT_SIZE = 20_000


class RecentDossiers:
    """Up to `size` committed dossiers, by (partition, dossier id); 0 keeps none."""

    __slots__ = ("_entries", "size")

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[Where, DossierProgress] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, where: Where) -> DossierProgress | None:
        """The dossier as saved, taken out: the caller may change it; only `keep` after a
        successful write puts it back."""
        return self._entries.pop(where, None)

    def keep(self, saved: Iterable[tuple[Where, DossierProgress]]) -> None:
        """Dossiers just written to the store, in their saved states."""
        if not self.size:
            return
        entries = self._entries
        for where, progress in saved:
            entries[where] = progress
            entries.move_to_end(where)
        while len(entries) > self.size:
            entries.popitem(last=False)

    def forget(self, partition: int | None = None) -> None:
        """Drop one partition's entries (its store was dropped or may have moved), or all."""
        if partition is None:
            self._entries.clear()
            return
        for where in [w for w in self._entries if w[0] == partition]:
            del self._entries[where]
