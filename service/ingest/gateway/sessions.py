"""OpenCPS's sessions: what its login route hands out and its sync bodies carry back.

A session the gateway issues is signed, not stored: `m1.<source>.<expiry>.<nonce>.<mac>`,
the MAC an HMAC-SHA256 under the gateway's session key over the rest and the source's
password line. Any gateway with the same key and sources file accepts it, also after a
restart (OpenCPS keeps a session ten minutes and never logs in again on a refusal, so a
restart used to refuse its syncs until then); a changed password or a source taken out of
the sources file ends its sessions. Without MOTCUA_GATEWAY_SESSION_KEY_FILE the key is
random per process, as the sessions were before. A portal's own session (relay mode) cannot
be signed: it is kept as its SHA-256, with that of its source's password line, in the process
that relayed the login, so a changed password or a removed source ends it too. Failed logins
are limited per peer address, so a password cannot be guessed fast.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# A peer gets this many failed logins in a row, then waits LOCKOUT_SECONDS per further try.
MAX_FAILURES = 5
LOCKOUT_SECONDS = 60.0
SIGNED = "m1"  # the signed form's version
KEY_BYTES = 32  # a session key file holds at least this many bytes

# The source's password line (None: the source has no login, or no longer exists).
PasswordLine = Callable[[str], "str | None"]


def _digest(session: str) -> str:
    return hashlib.sha256(session.encode("utf-8")).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SessionBook:
    """Issues and checks sessions (see the module doc): signed under `key`; relayed ones by
    hash, (source, expiry, password line's hash) each."""

    key: bytes = field(default_factory=lambda: secrets.token_bytes(KEY_BYTES))
    clock: Callable[[], float] = time.time  # wall time: another gateway checks the expiry
    # By a relayed session's digest: its source, expiry and its password line's digest.
    _sessions: dict[str, tuple[str, float, str]] = field(default_factory=dict)

    def issue(self, source: str, minutes: int, password_line: str) -> str:
        """A new signed session for `source`, valid `minutes` while its password line is
        `password_line`."""
        expires = int(self.clock()) + minutes * 60
        signed = f"{SIGNED}.{_b64(source.encode())}.{expires}.{secrets.token_urlsafe(12)}"
        return f"{signed}.{self._mac(signed, password_line)}"

    def remember(self, session: str, source: str, minutes: int, password_line: str) -> None:
        """Accept `session` (the upstream's, in relay mode) for `source`, in this process,
        while its password line is `password_line`."""
        now = self.clock()
        self._sessions = {k: v for k, v in self._sessions.items() if v[1] > now}
        self._sessions[_digest(session)] = (source, now + minutes * 60, _digest(password_line))

    def source_of(self, session: str, password_line: PasswordLine) -> str | None:
        """The source of a live session; None for an unknown, forged or expired one, or one
        of a source whose password line changed or is gone. The MAC is compared in constant
        time; a relayed session is found by a hash of a random value."""
        if not session:
            return None
        if session.startswith(SIGNED + "."):
            # What issue() signs is all ASCII; anything else is no session (and could not be
            # compared in constant time as text).
            return self._signed_source(session, password_line) if session.isascii() else None
        found = self._sessions.get(_digest(session))
        if found is None or found[1] <= self.clock():
            return None
        source, line_digest = found[0], found[2]
        # A relayed session lives only while its source still logs in with the same password
        # line: a source taken out of the sources file, or given a new password, ends it.
        line = password_line(source)
        if line is None or not hmac.compare_digest(_digest(line), line_digest):
            return None
        return source

    def _signed_source(self, session: str, password_line: PasswordLine) -> str | None:
        signed, _, mac = session.rpartition(".")
        parts = signed.split(".")
        if len(parts) != 4 or not (parts[2].isascii() and parts[2].isdigit()):
            return None
        try:
            source = _unb64(parts[1]).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        line = password_line(source)
        if line is None or not hmac.compare_digest(self._mac(signed, line), mac):
            return None
        if int(parts[2]) <= self.clock():
            return None
        return source

    def _mac(self, signed: str, password_line: str) -> str:
        message = f"{signed}\n{password_line}".encode()
        return _b64(hmac.new(self.key, message, hashlib.sha256).digest())


def read_session_key(path: str) -> bytes:
    """The key in a session key file (its bytes, surrounding whitespace stripped); ValueError
    with one line if it cannot be read or is too short to be a key."""
    try:
        with open(path, "rb") as handle:
            key = handle.read().strip()
    except OSError as exc:
        raise ValueError(f"MOTCUA_GATEWAY_SESSION_KEY_FILE {path}: {exc.strerror}") from None
    if len(key) < KEY_BYTES:
        raise ValueError(
            f"MOTCUA_GATEWAY_SESSION_KEY_FILE {path}: {len(key)} bytes; a key needs at least"
            f" {KEY_BYTES} (`head -c 32 /dev/urandom | base64 > FILE`)"
        )
    return key


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
