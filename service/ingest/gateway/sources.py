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
from typing import Any

from service.ingest.gateway.reference_file import ReferenceFile
from service.ingest.national_sync import DEFAULT_PROFILE, Meaning, SyncProfile

_HEX = re.compile(r"[0-9a-fA-F]{64}")
_CHANNELS = {"direct", "online", "postal"}


class SourcesFileError(ValueError):
    """The sources file cannot be used; str(e) names the file and the key."""


class Auth(enum.StrEnum):
    """How a source proves who it is."""

    BEARER = "bearer"  # `Authorization: Bearer <token>` (every source may use it)
    OPENCPS_SESSION = "opencps_session"  # body `session` + header `dstcode` (OpenCPS)


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

    def dstcode_matches(self, dstcode: str) -> bool:
        """The `dstcode` header hashes to the configured value (constant time)."""
        if self.dstcode_sha256 is None or not dstcode:
            return False
        digest = hashlib.sha256(dstcode.encode("utf-8")).hexdigest()
        return hmac.compare_digest(digest, self.dstcode_sha256)


DEFAULT_SOURCE = SourceProfile()
_KEYS = {
    "auth",
    "dstcode_sha256",
    "answer",
    "default_channel",
    "online_if_applicant_account",
    "statuses",
    "finished_without_date",
}


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
    if channel is not None and channel not in _CHANNELS:
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
    sync = SyncProfile(channel, online, statuses, finished_meaning)
    return SourceProfile(auth, dstcode.lower() if dstcode else None, answer, sync)


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
    return {name: _profile(name, table, origin) for name, table in sources.items()}


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
