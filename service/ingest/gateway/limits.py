"""How much one center system may send: a token bucket of items per second, per system.

An item is one contract event or one national-sync dossier. A request that does not fit is
refused whole (429) with the seconds to wait, so a retry of the same request succeeds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """`rate` items a second per system with bursts of `burst`; rate 0 means no limit."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, system: str, items: int) -> float:
        """0.0 if `system` may send `items` now (and they are counted), else the seconds to
        wait before the same request would fit; infinity if it never can (items > burst)."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        bucket = self._buckets.get(system)
        if bucket is None:
            bucket = self._buckets[system] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        need = max(1, items)
        if need <= bucket.tokens:
            bucket.tokens -= need
            return 0.0
        if need > self.burst:
            return math.inf
        return max(0.001, (need - bucket.tokens) / self.rate)

    @staticmethod
    def retry_after_header(seconds: float) -> str:
        """Retry-After is whole seconds (RFC 9110), at least 1."""
        return str(max(1, math.ceil(seconds)))
