"""Which input partitions a set of worker answers covers: the test every sum over workers
passes before it may be called a total (exact or absent)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Coverage:
    """Which partitions the counted workers hold, against the topic's."""

    expected: int
    covered: list[int]
    missing: list[int]
    twice: list[int]
    # Partitions past the expected count: the topic has more than MOTCUA_PARTITIONS says,
    # so the ones a dead worker held past it would be missed unseen.
    unexpected: list[int]

    @property
    def complete(self) -> bool:
        return not self.missing and not self.twice and not self.unexpected

    def problem(self) -> str | None:
        """Why the answers are no total, in one line; None when complete."""
        if self.unexpected:
            return (
                f"partitions {ranges(self.unexpected)} are beyond the {self.expected} expected "
                "(MOTCUA_PARTITIONS, --partitions): the topic has more partitions, so some "
                "may be missing unseen; give the topic's count"
            )
        if self.missing:
            return f"partitions {ranges(self.missing)} of {self.expected} are not answered"
        if self.twice:
            return (
                f"partitions {ranges(self.twice)} are answered by two workers (a rebalance?): "
                "their dossiers would be counted twice"
            )
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "expected": self.expected,
            "covered": self.covered,
            "missing": self.missing,
            "twice": self.twice,
            "unexpected": self.unexpected,
            "complete": self.complete,
        }


def coverage(partition_lists: Iterable[Sequence[int]], expected: int) -> Coverage:
    seen: Counter[int] = Counter()
    for partitions in partition_lists:
        seen.update(partitions)
    return Coverage(
        expected=expected,
        covered=sorted(seen),
        missing=sorted(set(range(expected)) - set(seen)),
        twice=sorted(p for p, n in seen.items() if n > 1),
        unexpected=sorted(p for p in seen if p >= expected),
    )


def ranges(partitions: Sequence[int]) -> str:
    """0,1,2,5 → "0-2,5"."""
    parts: list[str] = []
    for p in partitions:
        if parts and parts[-1].split("-")[-1] == str(p - 1):
            first = parts[-1].split("-")[0]
            parts[-1] = f"{first}-{p}"
        else:
            parts.append(str(p))
    return ",".join(parts)
