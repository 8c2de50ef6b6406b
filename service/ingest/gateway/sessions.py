"""OpenCPS's sessions: what its login route hands out and its sync bodies carry back.

A session is kept only as its SHA-256, beside its source and when it expires; it lives in
the gateway process that issued it (docs/senders.md: one gateway, or sticky routing, for
OpenCPS). Failed logins are limited per peer address, so a password cannot be guessed fast.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# A peer gets this many failed logins in a row, then waits LOCKOUT_SECONDS per further try.
MAX_FAILURES = 5
LOCKOUT_SECONDS = 60.0


def _digest(session: str) -> str:
    return hashlib.sha256(session.encode("utf-8")).hexdigest()


@dataclass
class SessionBook:
    """Issued sessions by hash: (source, expiry on the monotonic clock)."""

    clock: Callable[[], float] = time.monotonic
    _sessions: dict[str, tuple[str, float]] = field(default_factory=dict)

    def issue(self, source: str, minutes: int) -> str:
        """A new random session for `source`, valid `minutes`."""
        session = secrets.token_urlsafe(32)
        self.remember(session, source, minutes)
        return session

    def remember(self, session: str, source: str, minutes: int) -> None:
        """Accept `session` (e.g. the upstream's, in relay mode) for `source`."""
        now = self.clock()
        self._sessions = {k: v for k, v in self._sessions.items() if v[1] > now}
        self._sessions[_digest(session)] = (source, now + minutes * 60)

    def source_of(self, session: str) -> str | None:
        """The source of a live session; None for an unknown or expired one. A dict lookup
        by a hash of a random value: its timing says nothing about the session."""
        if not session:
            return None
        found = self._sessions.get(_digest(session))
        if found is None or found[1] <= self.clock():
            return None
        return found[0]


@dataclass
class LoginGuard:
    """Failed logins per peer: after MAX_FAILURES, one try per LOCKOUT_SECONDS."""

    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)

    def wait(self, peer: str) -> float:
        """Seconds `peer` must wait before its next login is even checked (0: may try)."""
        count, last = self._failures.get(peer, (0, 0.0))
        if count < MAX_FAILURES:
            return 0.0
        return max(0.0, last + LOCKOUT_SECONDS - self.clock())

    def failed(self, peer: str) -> None:
        count, _ = self._failures.get(peer, (0, 0.0))
        self._failures[peer] = (count + 1, self.clock())

    def succeeded(self, peer: str) -> None:
        self._failures.pop(peer, None)
