"""Who is calling: bearer tokens per center system, from MOTCUA_GATEWAY_TOKENS_FILE.

One line per system, `NAME SHA256-HEX-OF-TOKEN`; `#` starts a comment. Only hashes are kept,
so the file can be read by operators without revealing a token. The file is re-read when it
changes, so a system is added or revoked without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path

# The name goes into a Kafka header and a metric label: a short code, nothing else.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX = re.compile(r"[0-9a-fA-F]{64}")
ANONYMOUS = "anonymous"


class TokenFileError(ValueError):
    """The token file cannot be used; str(e) names the file and line."""


def token_hash(token: str) -> str:
    """What the token file holds for `token`: the hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_tokens(text: str, origin: str = "tokens file") -> dict[str, str]:
    """{sha256 hex: system name} from the file's text."""
    out: dict[str, str] = {}
    names: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not _NAME.fullmatch(parts[0]) or not _HEX.fullmatch(parts[1]):
            raise TokenFileError(
                f"{origin} line {number}: expected `NAME SHA256-HEX-OF-TOKEN` (name: letters,"
                " digits, . _ -, at most 64)"
            )
        name, digest = parts[0], parts[1].lower()
        if name == ANONYMOUS:
            raise TokenFileError(f"{origin} line {number}: the name {ANONYMOUS!r} is reserved")
        if name in names:
            raise TokenFileError(f"{origin} line {number}: {name} is listed twice")
        if digest in out:
            raise TokenFileError(f"{origin} line {number}: the same token hash is listed twice")
        names.add(name)
        out[digest] = name
    if not out:
        raise TokenFileError(f"{origin}: no `NAME SHA256-HEX` line; no system could call")
    return out


@dataclass
class TokenBook:
    """The token file, re-read when its modification time or size changes.

    A file that turns bad while running keeps the last good version in force (and
    `last_error` says why), so a half-saved edit never locks every system out.
    """

    path: Path
    _by_hash: dict[str, str] | None = None
    _stamp: tuple[int, int] | None = None
    last_error: str | None = None

    def load(self) -> None:
        """Read the file now; TokenFileError if it is missing or bad (used at start-up)."""
        try:
            stat = self.path.stat()
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenFileError(f"cannot read the tokens file {self.path}: {exc}") from None
        self._by_hash = parse_tokens(text, str(self.path))
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        self.last_error = None

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
        except OSError as exc:
            self.last_error = f"cannot read the tokens file: {exc.strerror or exc}"
            return
        if (stat.st_mtime_ns, stat.st_size) == self._stamp:
            return
        try:
            self.load()
        except TokenFileError as exc:
            self.last_error = str(exc)

    def system_for(self, token: str) -> str | None:
        """The calling system's name, or None for a token the file does not list."""
        self._refresh()
        if not self._by_hash or not token:
            return None
        digest = token_hash(token)
        # Compare against every entry in constant time; dict lookup alone would be fine for
        # hashes, but this keeps timing independent of which system matched.
        found = None
        for known, name in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                found = name
        return found
