"""Secrets a sender proves itself with when it sends no motcua header: a secret in its base
URL (path secret) and OpenCPS's user name and password. Only hashes are stored; every
comparison is constant time; nothing here logs.

Path secrets are random (`motcua gateway-secret` makes one), so a SHA-256 is enough; a
password may be a person's choice, so it is stored as scrypt (stdlib hashlib) with its own
salt, in one line: `scrypt$N$r$p$SALT$HASH` (salt and hash in unpadded URL-safe base64).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Iterable

# scrypt's cost: N=2^14, r=8, p=1 (about 16 MiB, the stdlib's default memory ceiling is 32).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 14, 8, 1
_SCRYPT_LINE = re.compile(
    r"scrypt\$([0-9]+)\$([0-9]+)\$([0-9]+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)"
)
_MAX_N = 1 << 20
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, salt: bytes | None = None) -> str:
    """The line the sources file holds for `password` (a new random salt unless given)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def is_password_hash(line: str) -> bool:
    match = _SCRYPT_LINE.fullmatch(line)
    if match is None:
        return False
    n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    return 2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16


def password_matches(password: str, line: str) -> bool:
    """`password` is the one `line` (hash_password's form) was made from."""
    match = _SCRYPT_LINE.fullmatch(line)
    if match is None or not is_password_hash(line):
        return False
    n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    salt, want = _unb64(match.group(4)), _unb64(match.group(5))
    got = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(want), maxmem=128 << 20
    )
    return hmac.compare_digest(got, want)


def secret_hash(secret: str) -> str:
    """What the sources file holds for a path secret: the hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_path_secret() -> str:
    """A path secret: 32 random bytes, URL-safe (no character a URL would escape)."""
    return secrets.token_urlsafe(32)


def any_hash_matches(secret: str, hashes: Iterable[str]) -> bool:
    """`secret` hashes to one of `hashes`; every entry is compared, in constant time, so the
    time does not say which (or whether an old one, during a rotation) matched."""
    digest = secret_hash(secret)
    found = False
    for known in hashes:
        found |= hmac.compare_digest(known, digest)
    return found


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDR blocks (ValueError for one that is not)."""
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def address_in(address: str | None, networks: tuple[Network, ...]) -> bool:
    """`address` (the TCP peer) is in one of `networks`; no allowlist admits every address."""
    if not networks:
        return True
    if not address:
        return False
    try:
        peer = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    return any(peer in network for network in networks)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: tuple[Network, ...]
) -> str | None:
    """The caller's address: the TCP `peer`, unless it is one of the `trusted` proxies; then
    the right-most X-Forwarded-For address that is not a trusted proxy (each proxy appends
    the address it saw, so what is left of it may be forged by the caller). A malformed
    entry is returned as it is, so no allowlist admits it. No trusted proxies: the peer,
    whatever the header says."""
    if not trusted or not address_in(peer, trusted):
        return peer
    chain = [entry.strip() for value in forwarded_for for entry in value.split(",")]
    for entry in reversed(chain):
        if not address_in(entry, trusted):
            return entry
    return chain[0] if chain else peer
