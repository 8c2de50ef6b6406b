"""Per-source profiles: how each calling system authenticates, is answered and is read.

A source is the NAME of a line in the tokens file (tokens.py). MOTCUA_GATEWAY_SOURCES_FILE is
a TOML file with one table per source, `[sources.NAME]`; a source without a table gets the
default profile (bearer token, motcua's answer, the national meaning of every code). The
file is re-read when it changes; a file that turns bad keeps the last good version in force.
docs/gateway.md documents every key; deploy/gateway/sources.toml is an example.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from service.ingest.gateway.credentials import (
    Network,
    any_hash_matches,
    is_password_hash,
    parse_networks,
)
from service.ingest.gateway.reference_file import ReferenceFile
from service.ingest.national_sync import DEFAULT_PROFILE, Meaning, SyncProfile

_HEX = re.compile(r"[0-9a-fA-F]{64}")
_CHANNELS = frozenset({"direct", "online", "postal"})


class SourcesFileError(ValueError):
    """The sources file cannot be used; str(e) names the file and the key."""


class Auth(enum.StrEnum):
    """How a source proves who it is."""

    BEARER = "bearer"  # `Authorization: Bearer <token>` (every source may use it)
    OPENCPS_SESSION = "opencps_session"  # body `session` + header `dstcode` (OpenCPS)
    PATH_SECRET = "path_secret"  # a secret in its base URL: /v1/in/<secret>/… (.NET sender)
    OPENCPS_LOGIN = "opencps_login"  # OpenCPS's own login at /v1/opencps/…, then its session


class Answer(enum.StrEnum):
    """The shape of the national-sync answer."""

    MOTCUA = "motcua"  # {"accepted", "rejected", "results"}
    PORTAL = "portal"  # {"error_code", "message", "motcua": {...}} as the portal answers


@dataclass(frozen=True, slots=True)
class SourceProfile:
    """One source's settings (see the module docstring)."""

    auth: Auth = Auth.BEARER
    dstcode_sha256: str | None = None
    answer: Answer = Answer.MOTCUA
    sync: SyncProfile = DEFAULT_PROFILE
    path_secret_sha256: tuple[str, ...] = ()  # several during a rotation
    networks: tuple[Network, ...] = ()  # the TCP peers allowed; empty: any
    progress_path: str | None = None  # the tail after the path secret that carries progress
    login_user: str | None = None
    login_password: str | None = None  # credentials.hash_password's line
    session_minutes: int = 60
    upstream: str | None = None  # relay: forward each body to upstream + the path's tail
    upstream_timeout: float = 30.0

    def dstcode_matches(self, dstcode: str) -> bool:
        """The `dstcode` header hashes to the configured value (constant time)."""
        if self.dstcode_sha256 is None or not dstcode:
            return False
        try:
            digest = hashlib.sha256(dstcode.encode("utf-8")).hexdigest()
        except UnicodeEncodeError:  # a header that is not UTF-8: matches no hash
            return False
        return hmac.compare_digest(digest, self.dstcode_sha256)


DEFAULT_SOURCE = SourceProfile()
_KEYS = frozenset(
    {
        "auth",
        "dstcode_sha256",
        "answer",
        "default_channel",
        "online_if_applicant_account",
        "statuses",
        "finished_without_date",
        "path_secret_sha256",
        "networks",
        "progress_path",
        "login_user",
        "login_password",
        "session_minutes",
        "upstream",
        "upstream_timeout",
    }
)
# OpenCPS keeps a session ten minutes (AccessTokenLocalServiceImpl.addAccessToken); ours
# must outlive that, or a session it still uses would be refused.
MIN_SESSION_MINUTES = 11


def _choice(value: Any, allowed: type[enum.StrEnum], where: str) -> Any:
    try:
        return allowed(value)
    except ValueError:
        names = ", ".join(member.value for member in allowed)
        raise SourcesFileError(f"{where}: must be one of {names}") from None


def _profile(name: str, table: Any, origin: str) -> SourceProfile:
    where = f"{origin} [sources.{name}]"
    if not isinstance(table, dict):
        raise SourcesFileError(f"{where}: must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise SourcesFileError(f"{where}: unknown key {unknown[0]!r}")
    auth = _choice(table.get("auth", "bearer"), Auth, f"{where} auth")
    dstcode = table.get("dstcode_sha256")
    if dstcode is not None and (not isinstance(dstcode, str) or not _HEX.fullmatch(dstcode)):
        raise SourcesFileError(f"{where} dstcode_sha256: the hex SHA-256 of the dstcode header")
    if auth is Auth.OPENCPS_SESSION and dstcode is None:
        raise SourcesFileError(f"{where}: auth = opencps_session needs dstcode_sha256")
    answer = _choice(table.get("answer", "motcua"), Answer, f"{where} answer")
    channel = table.get("default_channel")
    if channel is not None and (not isinstance(channel, str) or channel not in _CHANNELS):
        raise SourcesFileError(f"{where} default_channel: direct, online or postal")
    online = table.get("online_if_applicant_account", False)
    if not isinstance(online, bool):
        raise SourcesFileError(f"{where} online_if_applicant_account: true or false")
    statuses_table = table.get("statuses", {})
    if not isinstance(statuses_table, dict):
        raise SourcesFileError(f"{where} statuses: a table of code = meaning")
    statuses: dict[int, Meaning] = {}
    for code, meaning in statuses_table.items():
        if not (code.isdigit() and 1 <= int(code) <= 10):
            raise SourcesFileError(f"{where} statuses: {code!r} is not a national code 1–10")
        statuses[int(code)] = _choice(meaning, Meaning, f"{where} statuses.{code}")
    finished = table.get("finished_without_date")
    finished_meaning = (
        None
        if finished in (None, "refuse")
        else _choice(finished, Meaning, f"{where} finished_without_date")
    )
    sync = SyncProfile(channel, online, MappingProxyType(statuses), finished_meaning)
    access = _access(auth, table, where)
    return SourceProfile(auth, dstcode.lower() if dstcode else None, answer, sync, **access)


def _access(auth: Auth, table: dict[str, Any], where: str) -> dict[str, Any]:
    """The keys of the senders that send no motcua header: path secret, login, relay."""
    out: dict[str, Any] = {}
    hashes = table.get("path_secret_sha256", [])
    hashes = [hashes] if isinstance(hashes, str) else hashes
    if not isinstance(hashes, list) or not all(
        isinstance(h, str) and _HEX.fullmatch(h) for h in hashes
    ):
        raise SourcesFileError(f"{where} path_secret_sha256: hex SHA-256, or a list of them")
    out["path_secret_sha256"] = tuple(h.lower() for h in hashes)
    if auth is Auth.PATH_SECRET and not hashes:
        raise SourcesFileError(f"{where}: auth = path_secret needs path_secret_sha256")
    networks = table.get("networks", [])
    try:
        if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
            raise ValueError
        out["networks"] = parse_networks(networks)
    except ValueError:
        raise SourcesFileError(f"{where} networks: a list of CIDR blocks") from None
    progress = table.get("progress_path")
    if progress is not None and (not isinstance(progress, str) or not progress.startswith("/")):
        raise SourcesFileError(f"{where} progress_path: the path's tail, starting with /")
    out["progress_path"] = progress
    user, password = table.get("login_user"), table.get("login_password")
    if auth is Auth.OPENCPS_LOGIN:
        if not isinstance(user, str) or not user:
            raise SourcesFileError(f"{where}: auth = opencps_login needs login_user")
        if not isinstance(password, str) or not is_password_hash(password):
            raise SourcesFileError(
                f"{where} login_password: the line `motcua gateway-password` prints"
                " (scrypt$N$r$p$SALT$HASH), never the password itself"
            )
        out["login_user"], out["login_password"] = user, password
    elif user is not None or password is not None:
        raise SourcesFileError(f"{where}: login_user and login_password need auth = opencps_login")
    minutes = table.get("session_minutes", 60)
    if (
        isinstance(minutes, bool)
        or not isinstance(minutes, int)
        or not MIN_SESSION_MINUTES <= minutes <= 1440
    ):
        raise SourcesFileError(
            f"{where} session_minutes: {MIN_SESSION_MINUTES}–1440 (OpenCPS keeps a session 10)"
        )
    out["session_minutes"] = minutes
    upstream = table.get("upstream")
    if upstream is not None and (
        not isinstance(upstream, str) or not upstream.startswith(("https://", "http://"))
    ):
        raise SourcesFileError(f"{where} upstream: an http(s) URL (the sender's old base URL)")
    out["upstream"] = upstream.rstrip("/") if upstream else None
    timeout = table.get("upstream_timeout", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 1 <= timeout <= 300:
        raise SourcesFileError(f"{where} upstream_timeout: seconds, 1–300")
    out["upstream_timeout"] = float(timeout)
    return out


def parse_sources(text: str, origin: str = "sources file") -> dict[str, SourceProfile]:
    """{source name: profile} from the TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SourcesFileError(f"{origin}: not TOML: {exc}") from None
    unknown = sorted(set(data) - {"sources"})
    if unknown:
        raise SourcesFileError(f"{origin}: unknown table {unknown[0]!r} (only [sources.NAME])")
    sources = data.get("sources", {})
    if not isinstance(sources, dict):
        raise SourcesFileError(f"{origin}: sources must be tables [sources.NAME]")
    profiles = {name: _profile(name, table, origin) for name, table in sources.items()}
    users = [p.login_user for p in profiles.values() if p.login_user is not None]
    if len(users) != len(set(users)):
        raise SourcesFileError(f"{origin}: two sources have the same login_user")
    return profiles


class SourcesFile(ReferenceFile[Mapping[str, SourceProfile]]):
    """The profiles file, re-read when it changes."""

    KIND = "sources"
    Error = SourcesFileError

    def _parse(self, text: str, origin: str) -> Mapping[str, SourceProfile]:
        return parse_sources(text, origin)

    def _empty(self) -> Mapping[str, SourceProfile]:
        return {}

    def profile(self, source: str) -> SourceProfile:
        """The source's profile; the default for a source the file does not name."""
        return self.content.get(source, DEFAULT_SOURCE)

    def by_path_secret(self, secret: str) -> str | None:
        """The path-secret source whose hashes include `secret`'s (constant time each)."""
        found = None
        for name, profile in self.content.items():
            if profile.auth is Auth.PATH_SECRET and any_hash_matches(
                secret, profile.path_secret_sha256
            ):
                found = name
        return found

    def by_login(self, user: str) -> str | None:
        """The opencps_login source whose login_user is `user`."""
        found = None
        for name, profile in self.content.items():
            known = profile.login_user if profile.auth is Auth.OPENCPS_LOGIN else None
            if known is not None and hmac.compare_digest(known.encode(), user.encode()):
                found = name
        return found
