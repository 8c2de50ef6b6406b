"""Relay mode: a sender's body forwarded unchanged to its old destination (the national
portal, or the province's integration platform), and the upstream's answer handed back.

The sender keeps one target (both open senders have only one) and the portal keeps
receiving. What happens when either side fails is decided in app.py and documented in
docs/senders.md. Nothing here logs a body, a header value or an answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict, CIMultiDictProxy

# Headers that belong to one connection (RFC 9110 §7.6.1).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Of the sender's headers, also those aiohttp sets itself, and those of the body as it came:
# the body forwarded is the one aiohttp decoded, so its Content-Encoding and length no
# longer describe it.
_NOT_FORWARDED = _HOP_BY_HOP | {"host", "content-length", "content-encoding", "accept-encoding"}
# Of the upstream's answer, likewise: its body is handed back decoded, with our own length.
_NOT_RETURNED = _HOP_BY_HOP | {"content-length", "content-encoding"}


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    """What the upstream said: passed back to the sender as it is."""

    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()  # its end-to-end headers, Content-Type among them

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    @property
    def accepted(self) -> bool:
        """A 2xx whose JSON says error_code 0, as both senders read the portal's answer."""
        data = self.json()
        code = data.get("error_code") if isinstance(data, dict) else None
        return 200 <= self.status < 300 and str(code) == "0"


class UpstreamFailed(Exception):
    """No answer: `kind` is "timeout" or "unreachable" (never the URL or a body)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _named_by_connection(headers: CIMultiDictProxy[str]) -> frozenset[str]:
    """The headers a `Connection` header names: they belong to that connection too."""
    return frozenset(
        name.strip().lower()
        for value in headers.getall("Connection", [])
        for name in value.split(",")
    )


def forwarded_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The sender's own headers, less the connection's and the undecoded body's."""
    skip = _NOT_FORWARDED | _named_by_connection(headers)
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in skip)


def returned_headers(headers: CIMultiDictProxy[str]) -> tuple[tuple[str, str], ...]:
    """The upstream's end-to-end headers (Location, Set-Cookie, …), less the connection's
    and the encoded body's."""
    skip = _NOT_RETURNED | _named_by_connection(headers)
    return tuple((k, v) for k, v in headers.items() if k.lower() not in skip)


class Relay:
    """One HTTP client for every upstream, opened at the first forward."""

    def __init__(self) -> None:
        self._client: aiohttp.ClientSession | None = None

    async def forward(
        self, url: str, body: bytes, headers: CIMultiDictProxy[str], timeout: float
    ) -> UpstreamAnswer:
        if self._client is None:
            self._client = aiohttp.ClientSession(auto_decompress=True)
        try:
            async with self._client.post(
                url,
                data=body,
                headers=forwarded_headers(headers),
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                answer = await response.read()
                kind = response.headers.get("Content-Type", "application/octet-stream")
                return UpstreamAnswer(
                    response.status, answer, kind, returned_headers(response.headers)
                )
        except TimeoutError:
            raise UpstreamFailed("timeout") from None
        except (aiohttp.ClientError, OSError):
            raise UpstreamFailed("unreachable") from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
