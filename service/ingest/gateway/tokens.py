"""Who is calling: bearer tokens per center system, from MOTCUA_GATEWAY_TOKENS_FILE.

One line per system, `NAME SHA256-HEX-OF-TOKEN`; `#` starts a comment. Only hashes are kept,
so the file can be read by operators without revealing a token. The file is re-read when it
changes, so a system is added or revoked without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from service.ingest.gateway.reference_file import ReferenceFile

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


class TokenBook(ReferenceFile[dict[str, str]]):
    """The token file, re-read when its modification time or size changes.

    A file that turns bad while running keeps the last good version in force (and
    `last_error` says why), so a half-saved edit never locks every system out.
    """

    KIND = "tokens"
    Error = TokenFileError

    def _parse(self, text: str, origin: str) -> dict[str, str]:
        return parse_tokens(text, origin)

    def _empty(self) -> dict[str, str]:
        return {}

    def system_for(self, token: str) -> str | None:
        """The calling system's name, or None for a token the file does not list."""
        by_hash = self.content
        if not by_hash or not token:
            return None
        try:
            digest = token_hash(token)
        except UnicodeEncodeError:
            # A header that is not UTF-8 (aiohttp keeps its bytes as surrogates): no token
            # the file can list.
            return None
        # Compare against every entry in constant time; dict lookup alone would be fine for
        # hashes, but this keeps timing independent of which system matched.
        found = None
        for known, name in by_hash.items():
            if hmac.compare_digest(known, digest):
                found = name
        return found
