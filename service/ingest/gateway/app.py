"""The gateway's HTTP layer (aiohttp): one pipeline for every ingestion route.

Each route (routes.py) supplies how its body is read, how an item maps to contract events
and what an accepted item's result says; authentication, body limits, rate limiting,
producing and every answer are done here, once. Every decision about an item is made in
intake.py, national_sync.py and national_progress.py. A source's profile (sources.py) says
how it authenticates, how its snapshots are read and in which shape it is answered.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas import SOURCE_HEADER
from service.ingest.gateway import intake
from service.ingest.gateway.answers import PORTAL_OK, error, json_response, results
from service.ingest.gateway.credentials import (
    Network,
    address_in,
    client_address,
    hash_password,
    password_matches,
)
from service.ingest.gateway.intake import Accepted, BodyError, Outcome, Rejection
from service.ingest.gateway.limits import RateLimiter
from service.ingest.gateway.metrics import GatewayMetrics
from service.ingest.gateway.openapi import LOOKUP_SERVICE, openapi_document
from service.ingest.gateway.procedures import ProceduresFile
from service.ingest.gateway.producer import BrokerUnavailable, EventSink, Record
from service.ingest.gateway.relay import Relay, UpstreamAnswer, UpstreamFailed
from service.ingest.gateway.routes import DOSSIERS, PROGRESS, ROUTES, References, Route
from service.ingest.gateway.sessions import LoginGuard, SessionBook
from service.ingest.gateway.sources import (
    DEFAULT_SOURCE,
    Answer,
    Auth,
    SourceProfile,
    SourcesFile,
)
from service.ingest.gateway.tokens import ANONYMOUS, TokenBook
from service.ingest.gateway.units import DepartmentsFile, UnitsFile
from service.ingest.national_progress import PROGRESS_SERVICE

log = logging.getLogger("motcua.gateway")

VIA_HEADER = "motcua-via"
# Seconds a caller is asked to wait after a 503.
BROKER_RETRY_AFTER = 5
# OpenCPS's header naming the receiving system, checked against the profile's hash.
DSTCODE_HEADER = "dstcode"
UNAUTHORIZED_SENTENCE = (
    "send `Authorization: Bearer <token>` with a token listed for your system"
    " (or, for a source whose profile says opencps_session, the token as the"
    " body's `session` and the `dstcode` header)"
)

# A sender's own base URL: a path secret, or OpenCPS's adapter_url; the tail is the path the
# sender appends (its old endpoint), kept for relaying. Any tail, control characters
# included (`(?s:…)`), so a strange path is refused by its credential, never a bare 404.
INBOX_ROUTE = "/v1/in/{secret}{tail:(/(?s:.*))?}"
OPENCPS_ROUTE = "/v1/opencps{tail:(/(?s:.*))?}"
# OpenCPS's envelope services, by the route that reads them.
_OPENCPS_SERVICES = MappingProxyType({intake.SYNC_SERVICE: DOSSIERS, PROGRESS_SERVICE: PROGRESS})
# Keeps a refused login as slow as an accepted one when the user name is unknown (hashed at
# the first such login, not at import).
_NO_SUCH_USER_SALT = b"motcua-no-user!!"

_ROUTE_LABELS = MappingProxyType(
    {
        **{route.path: route.label for route in ROUTES},
        # aiohttp's canonical form of a pattern drops the regular expressions.
        "/v1/in/{secret}{tail}": "sender_inbox",
        "/v1/opencps{tail}": "opencps",
        "/healthz": "healthz",
        "/readyz": "readyz",
        "/metrics": "metrics",
        "/openapi.json": "openapi",
    }
)


@dataclass(frozen=True)
class GatewayLimits:
    """Per request: the body's bytes and its items (events or dossiers)."""

    max_body_bytes: int
    max_items: int


def unauthorized() -> web.Response:
    """401: nobody is known yet, so the answer is motcua's shape whatever the route."""
    return error(
        401,
        "unauthorized",
        UNAUTHORIZED_SENTENCE,
        headers={"WWW-Authenticate": 'Bearer realm="motcua"'},
    )


class Gateway:
    """The application's state: who may call, reference data, limits, where events go."""

    def __init__(
        self,
        sink: EventSink,
        tokens: TokenBook | None,
        units: UnitsFile,
        limits: GatewayLimits,
        limiter: RateLimiter,
        metrics: GatewayMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sources: SourcesFile | None = None,
        procedures: ProceduresFile | None = None,
        trusted_proxies: tuple[Network, ...] = (),
        session_key: bytes | None = None,
    ) -> None:
        self.sink = sink
        self.tokens = tokens
        self.units = units
        self.limits = limits
        self.limiter = limiter
        self.metrics = metrics or GatewayMetrics()
        self.clock = clock
        self.sources = sources or SourcesFile(None)
        self.procedures = procedures or ProceduresFile(None)
        self.trusted_proxies = trusted_proxies
        self.references = References(units, self.procedures, DepartmentsFile(units.path))
        # OpenCPS's sessions, signed: a shared key lets any gateway, also after a restart,
        # accept them; without one, a random key of this process (sessions.py).
        self.sessions = SessionBook(session_key) if session_key else SessionBook()
        self.login_guard = LoginGuard()
        self.relay = Relay()
        self._no_such_user: str | None = None
        self.openapi_json = orjson.dumps(openapi_document())

    # -- access -----------------------------------------------------------------------------

    def caller(self, request: web.Request) -> str | None:
        """The calling system's name by its bearer token; "anonymous" on an open gateway;
        None if there is no bearer token or the tokens file does not list it."""
        if self.tokens is None:
            return ANONYMOUS
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.tokens.system_for(token.strip())

    def session_caller(self, request: web.Request, body: bytes) -> str | None:
        """OpenCPS's form: the body's `session` is a token of the tokens file, the source's
        profile says `auth = "opencps_session"`, and the `dstcode` header matches its hash."""
        if self.tokens is None:
            return None
        session = intake.session_of(body)
        if session is None:
            return None
        source = self.tokens.system_for(session)
        if source is None:
            return None
        profile = self.sources.profile(source)
        if profile.auth is not Auth.OPENCPS_SESSION:
            return None
        if not profile.dstcode_matches(request.headers.get(DSTCODE_HEADER, "")):
            return None
        return source

    def profile_for(self, route: Route, source: str) -> SourceProfile:
        return self.sources.profile(source) if route.profiled else DEFAULT_SOURCE

    # -- the one ingestion pipeline -------------------------------------------------------------

    def handler(self, route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The aiohttp handler of `route`: who calls, then the pipeline."""

        async def handle(request: web.Request) -> web.Response:
            source = self.caller(request)
            body: bytes | None = None
            if source is None and route.profiled and "Authorization" not in request.headers:
                read = await self.read_body(request)
                if isinstance(read, BodyError):
                    # Too large or undecodable: its session, if any, cannot be read, and
                    # the sender must hear why (motcua's shape: nobody is known yet).
                    return self.body_refused(request, read, Answer.MOTCUA)
                body = read  # OpenCPS's form: the token as the body's session
                source = self.session_caller(request, body)
            if source is None:
                return unauthorized()
            return await self.ingest(request, route, source, body)

        return handle

    def client(self, request: web.Request) -> str | None:
        """The caller's address: the TCP peer, or behind a trusted proxy the address it
        forwarded (credentials.client_address)."""
        forwarded = request.headers.getall("X-Forwarded-For", [])
        return client_address(request.remote, forwarded, self.trusted_proxies)

    def admitted(self, request: web.Request, source: str, answer: Answer) -> web.Response | None:
        """None if the source's network allowlist admits the caller's address, else the 403."""
        if address_in(self.client(request), self.sources.profile(source).networks):
            return None
        log.warning("refused %s: its request came from outside its networks", source)
        return error(
            403,
            "forbidden_network",
            "this source may only call from the networks its profile lists",
            answer,
        )

    async def ingest(
        self,
        request: web.Request,
        route: Route,
        source: str,
        body: bytes | None = None,
        tail: str | None = None,
    ) -> web.Response:
        """From an authenticated request to its answer: network, body, items, limits,
        mapping, producing, and relaying when the profile names an upstream (only on a
        sender's own base URL, whose `tail` is the path it appended). `body` when the
        caller already read it (to authenticate)."""
        profile = self.profile_for(route, source)
        answer = profile.answer
        refused = self.admitted(request, source, answer)
        if refused is not None:
            return refused
        read = await self.read_body(request) if body is None else body
        if isinstance(read, BodyError):
            return self.body_refused(request, read, answer)
        body = read
        try:
            items = route.read(body, request.content_type, self.limits.max_items)
        except BodyError as exc:
            return error(exc.status, exc.code, exc.sentence, answer)
        refused = self.rate_limit(source, len(items), answer)
        if refused is not None:
            return refused
        outcomes = route.map(items, self.references, profile.sync, self.clock())
        if tail is None or profile.upstream is None:
            return await self.produce(route, source, outcomes, answer)
        # Relay: counted first, so nothing the upstream accepts goes uncounted; a broker
        # that does not acknowledge stops the body here (503: the sender sends it again,
        # to both). A re-send after any failure gives the same event ids: no double count.
        refused = await self.send(route, source, outcomes, answer)
        if refused is not None:
            return refused
        self.count(route, source, outcomes)
        return await self.forward(request, source, profile, tail, body)

    async def forward(
        self, request: web.Request, source: str, profile: SourceProfile, tail: str, body: bytes
    ) -> web.Response:
        """The upstream's answer to the unchanged body, as it is."""
        upstream = await self.ask_upstream(request, source, profile, tail, body)
        if isinstance(upstream, web.Response):
            return upstream
        headers = CIMultiDict(upstream.headers)
        headers.setdefault("Content-Type", upstream.content_type)
        return web.Response(status=upstream.status, body=upstream.body, headers=headers)

    async def ask_upstream(
        self, request: web.Request, source: str, profile: SourceProfile, tail: str, body: bytes
    ) -> UpstreamAnswer | web.Response:
        """The upstream's answer, or our 502/504 when it gives none."""
        assert profile.upstream is not None
        # The path the sender appended, and its query string as it sent it.
        query = request.rel_url.raw_query_string
        url = profile.upstream + tail + (f"?{query}" if query else "")
        try:
            upstream = await self.relay.forward(
                url, body, request.headers, profile.upstream_timeout
            )
        except UpstreamFailed as exc:
            self.metrics.relayed.labels(source, exc.kind).inc()
            log.warning("relay for %s: the upstream gave no answer (%s)", source, exc.kind)
            timeout = exc.kind == "timeout"
            return error(
                504 if timeout else 502,
                "upstream_timeout" if timeout else "upstream_unreachable",
                "the upstream (the portal) did not answer; send the same request again",
                profile.answer,
            )
        self.metrics.relayed.labels(source, f"{upstream.status // 100}xx").inc()
        return upstream

    # -- the senders' own base URLs -----------------------------------------------------------

    async def post_inbox(self, request: web.Request) -> web.Response:
        """`/v1/in/<path secret>/<the sender's own path>`: a sender that sends no credential
        (the .NET system). Its `progress_path` carries progress rows, any other path
        dossiers."""
        source = self.sources.by_path_secret(request.match_info["secret"])
        if source is None:
            return unauthorized()
        tail = request.match_info["tail"]
        profile = self.sources.profile(source)
        route = PROGRESS if profile.progress_path == tail else DOSSIERS
        return await self.ingest(request, route, source, tail=tail)

    async def post_opencps(self, request: web.Request) -> web.Response:
        """OpenCPS's adapter_url: its login (username, password) and then, with the session
        it got, its integration envelopes, dispatched by their `service`."""
        tail = request.match_info["tail"]
        body = await self.read_body(request)
        if isinstance(body, BodyError):
            return self.body_refused(request, body, Answer.PORTAL)
        doc = intake.json_object(body)
        if doc is not None and "username" in doc and "password" in doc:
            return await self.login(request, tail, body, doc)
        session = doc.get("session") if doc is not None else None
        source = (
            self.sessions.source_of(session, self.password_line)
            if isinstance(session, str)
            else None
        )
        if source is None:
            return unauthorized()
        profile = self.sources.profile(source)
        if profile.dstcode_sha256 is not None and not profile.dstcode_matches(
            request.headers.get(DSTCODE_HEADER, "")
        ):
            return unauthorized()
        service = doc.get("service") if doc is not None else None
        route = _OPENCPS_SERVICES.get(service) if isinstance(service, str) else None
        if route is not None:
            return await self.ingest(request, route, source, body, tail=tail)
        # Another service (the lookup before each sync): nothing to count.
        refused = self.admitted(request, source, profile.answer)
        if refused is not None:
            return refused
        if profile.upstream is not None:
            return await self.forward(request, source, profile, tail, body)
        if service == LOOKUP_SERVICE:  # motcua keeps no dossier to find
            return json_response(200, {"error_code": PORTAL_OK, "message": "", "result": []})
        return error(
            422,
            "unsupported_service",
            f"only {intake.SYNC_SERVICE} and {PROGRESS_SERVICE} are read here",
            profile.answer,
        )

    async def login(
        self, request: web.Request, tail: str, body: bytes, doc: dict[str, Any]
    ) -> web.Response:
        """OpenCPS's getAccessToken: {"username", "password"} in, {"error_code": 0,
        "session"} out. Checked against the sources file's scrypt line, and the dstcode
        header when the profile has its hash; never logged; failures limited per peer."""
        peer = self.client(request) or ""
        wait = self.login_guard.wait(peer)
        if wait > 0:
            self.metrics.logins.labels("locked").inc()
            return error(
                429,
                "too_many_failed_logins",
                "too many failed logins from this address; wait",
                Answer.PORTAL,
                retry_after=max(1, math.ceil(wait)),
            )
        user, password = doc.get("username"), doc.get("password")
        source = self.sources.by_login(user) if isinstance(user, str) else None
        profile = self.sources.profile(source) if source is not None else DEFAULT_SOURCE
        line = profile.login_password or self.no_such_user()
        ok = password_matches(password if isinstance(password, str) else "", line)
        dstcode = request.headers.get(DSTCODE_HEADER, "")
        ok = ok and source is not None
        ok = ok and (profile.dstcode_sha256 is None or profile.dstcode_matches(dstcode))
        ok = ok and address_in(peer, profile.networks)
        if not ok or source is None:
            self.login_guard.failed(peer)
            self.metrics.logins.labels("refused").inc()
            log.warning("OpenCPS login refused for %s from %s", source or "an unknown user", peer)
            return error(401, "login_failed", "wrong user name or password", Answer.PORTAL)
        self.login_guard.succeeded(peer)
        if profile.upstream is not None:
            # Relay: the portal's own session, which the sender then sends to it through us.
            answer = await self.forward(request, source, profile, tail, body)
            data = intake.json_object(answer.body if isinstance(answer.body, bytes) else b"")
            session = data.get("session") if data is not None else None
            if (
                answer.status < 300
                and isinstance(session, str)
                and session
                and data is not None  # implied by a session; said for the type checker
                and str(data.get("error_code")) == "0"
            ):
                self.sessions.remember(session, source, profile.session_minutes, line)
                self.metrics.logins.labels("accepted").inc()
            return answer
        self.metrics.logins.labels("accepted").inc()
        session = self.sessions.issue(source, profile.session_minutes, line)
        return json_response(
            200, {"error_code": 0, "message": "Đăng nhập thành công", "session": session}
        )

    def password_line(self, source: str) -> str | None:
        """The password line a session of `source` is signed with; None once the source no
        longer logs in (taken out of the sources file, or its auth changed)."""
        profile = self.sources.profile(source)
        return profile.login_password if profile.auth is Auth.OPENCPS_LOGIN else None

    def no_such_user(self) -> str:
        """The password line an unknown user name is checked against."""
        if self._no_such_user is None:
            self._no_such_user = hash_password("", salt=_NO_SUCH_USER_SALT)
        return self._no_such_user

    async def read_body(self, request: web.Request) -> bytes | BodyError:
        """The body (decoded by its Content-Encoding), or why it cannot be had: 413 too
        large, 400 not decodable; the caller answers it in its shape."""
        length = request.content_length
        if length is not None and length > self.limits.max_body_bytes:
            return self.too_large()
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self.too_large()
        except web.RequestPayloadError:
            # aiohttp decodes the body as it reads: a corrupt gzip or deflate stream, or a
            # broken chunked transfer, ends here.
            return BodyError(
                400,
                "bad_content_encoding",
                "the body cannot be decoded (its Content-Encoding or chunked transfer is"
                " corrupt); send it again",
            )

    def body_refused(
        self, request: web.Request, refused: BodyError, answer: Answer
    ) -> web.Response:
        """The answer to a body read_body could not give, in `answer`'s shape."""
        response = error(refused.status, refused.code, refused.sentence, answer)
        if request.content.exception() is not None:
            # The rest of the body cannot be read, so aiohttp closes the connection after
            # this answer: say so, or the sender's next request meets a closed socket.
            response.force_close()
            # And mark it ended: aiohttp would otherwise try to read the rest after the
            # answer (its lingering close), meet the same error and log it as unhandled.
            request.content.feed_eof()
        return response

    def too_large(self) -> BodyError:
        """413: the body is over MOTCUA_GATEWAY_MAX_BODY_BYTES."""
        limit = self.limits.max_body_bytes
        return BodyError(
            413, "body_too_large", f"the body is larger than {limit} bytes; split the request"
        )

    def rate_limit(self, source: str, items: int, answer: Answer) -> web.Response | None:
        """None if `source` may send `items` now, else the 413 or 429 answer."""
        wait = self.limiter.take(source, items)
        if wait == float("inf"):
            return error(
                413,
                "too_many_items",
                f"{items} items exceed what one system may send at once"
                f" ({self.limiter.burst:g}); split the request",
                answer,
            )
        if wait > 0:
            return error(
                429,
                "rate_limited",
                f"{source} sent more than {self.limiter.rate:g} items a second; retry later",
                answer,
                retry_after=int(RateLimiter.retry_after_header(wait)),
            )
        return None

    async def produce(
        self, route: Route, source: str, outcomes: Sequence[Outcome], answer: Answer
    ) -> web.Response:
        """Send the accepted items' events; answer per item once the broker acknowledged,
        or 503 claiming nothing."""
        refused = await self.send(route, source, outcomes, answer)
        if refused is not None:
            return refused
        return results(self.count(route, source, outcomes), answer)

    async def send(
        self, route: Route, source: str, outcomes: Sequence[Outcome], answer: Answer
    ) -> web.Response | None:
        """None once the broker acknowledged every accepted item's events, else the 503."""
        headers = ((SOURCE_HEADER, source.encode()), (VIA_HEADER, route.via))
        records = [
            Record(event.dossier_id.encode("utf-8"), event.to_json(), headers)
            for outcome in outcomes
            if isinstance(outcome, Accepted)
            for event in outcome.events
        ]
        try:
            if records:
                with self.metrics.produce_seconds.time():
                    await self.sink.send(records)
        except BrokerUnavailable as exc:
            self.metrics.broker_unavailable.inc()
            log.warning("answering 503: %s", exc)
            return error(
                503,
                "broker_unavailable",
                "the event log (Kafka) did not acknowledge; nothing from this request is"
                " claimed as accepted. Send the same request again (safe: event ids).",
                answer,
                retry_after=BROKER_RETRY_AFTER,
            )
        if records:
            self.metrics.events_produced.labels(route.label, source).inc(len(records))
        return None

    def count(self, route: Route, source: str, outcomes: Sequence[Outcome]) -> dict[str, Any]:
        """Our per-item answer ({"accepted", "rejected", "results"}), counted in metrics."""
        entries: list[dict[str, Any]] = []
        accepted = rejected = 0
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, Rejection):
                rejected += 1
                self.metrics.items_rejected.labels(route.label, source, outcome.reason).inc()
                entries.append(
                    {
                        "index": index,
                        "status": "rejected",
                        "reason": outcome.reason,
                        "sentence": outcome.sentence,
                    }
                )
                continue
            accepted += 1
            entries.append({"index": index, "status": "accepted", **route.accepted(outcome)})
        if accepted:
            self.metrics.items_accepted.labels(route.label, source).inc(accepted)
        return {"accepted": accepted, "rejected": rejected, "results": entries}

    # -- operations -------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return json_response(200, {"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        ready = await self.sink.ready()
        self.metrics.ready.set(1 if ready else 0)
        if ready:
            return json_response(200, {"status": "ready"})
        return json_response(503, {"status": "the broker does not answer"})

    async def metrics_page(self, request: web.Request) -> web.Response:
        # Asked of the broker at every scrape (at most 2 s), not left from the last /readyz:
        # nothing may poll /readyz, and a remembered "ready" hides a broker gone since.
        self.metrics.ready.set(1 if await self.sink.ready() else 0)
        self.metrics.units.set(len(self.units))
        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self.openapi_json, content_type="application/json")


def _count_requests(gateway: Gateway) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # By the route's pattern, never the path: a sender's path holds its secret.
        resource = request.match_info.route.resource
        pattern = resource.canonical if resource is not None else ""
        route = _ROUTE_LABELS.get(pattern, "other")
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            # aiohttp's own answers (404, 405, …) as JSON, like every other error here.
            response = error(exc.status, "http_error", exc.reason)
            for name in ("Allow",):
                if name in exc.headers:
                    response.headers[name] = exc.headers[name]
        gateway.metrics.requests.labels(route, str(response.status)).inc()
        return response

    return middleware


GATEWAY_KEY = web.AppKey("gateway", Gateway)


def build_app(gateway: Gateway) -> web.Application:
    """The aiohttp application; the caller starts and stops `gateway.sink`."""
    app = web.Application(
        middlewares=[_count_requests(gateway)],
        # Past this aiohttp raises HTTPRequestEntityTooLarge, which read_body answers in JSON.
        client_max_size=gateway.limits.max_body_bytes,
    )
    app[GATEWAY_KEY] = gateway
    for route in ROUTES:
        app.router.add_post(route.path, gateway.handler(route))
    app.router.add_post(INBOX_ROUTE, gateway.post_inbox)
    app.router.add_post(OPENCPS_ROUTE, gateway.post_opencps)

    async def close_relay(_: web.Application) -> None:
        await gateway.relay.close()

    app.on_cleanup.append(close_relay)
    app.router.add_get("/healthz", gateway.healthz)
    app.router.add_get("/readyz", gateway.readyz)
    app.router.add_get("/metrics", gateway.metrics_page)
    app.router.add_get("/openapi.json", gateway.openapi)
    return app
