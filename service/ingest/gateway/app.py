"""The gateway's HTTP layer (aiohttp): authenticate, limit, call the pure intake, produce.

Every decision about an item is made in intake.py and national_sync.py; this module only
translates outcomes into status codes and Kafka records, and counts what it did. A source's
profile (sources.py) says how it authenticates, how its snapshots are read and in which
shape it is answered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.ingest.gateway import intake
from service.ingest.gateway.intake import Accepted, BodyError, Outcome, Rejection
from service.ingest.gateway.limits import RateLimiter
from service.ingest.gateway.metrics import GatewayMetrics
from service.ingest.gateway.openapi import EVENTS_ROUTE, SYNC_ROUTE, openapi_document
from service.ingest.gateway.procedures import ProceduresFile
from service.ingest.gateway.producer import BrokerUnavailable, EventSink, Record
from service.ingest.gateway.sources import (
    DEFAULT_SOURCE,
    Answer,
    Auth,
    SourceProfile,
    SourcesFile,
)
from service.ingest.gateway.tokens import ANONYMOUS, TokenBook
from service.ingest.gateway.units import UnitsFile
from service.ingest.national_progress import PROGRESS_ROUTE, progress_handler

log = logging.getLogger("motcua.gateway")

SOURCE_HEADER = "motcua-source"
VIA_HEADER = "motcua-via"
# Route label -> the motcua-via header of what it produces.
VIA = {
    "events": b"gateway-events",
    "national_sync": b"gateway-national-sync",
    "national_progress": b"gateway-national-progress",
}
# Seconds a caller is asked to wait after a 503.
BROKER_RETRY_AFTER = 5
# OpenCPS's header naming the receiving system, checked against the profile's hash.
DSTCODE_HEADER = "dstcode"
# The portal's answer: error_code "0" and a message containing "thành công" is success for
# both senders (the .NET one checks both, OpenCPS the code); anything else is a failure.
PORTAL_OK = "0"
PORTAL_FAILED = "-1"

_ROUTE_LABELS = {
    EVENTS_ROUTE: "events",
    SYNC_ROUTE: "national_sync",
    PROGRESS_ROUTE: "national_progress",
    "/healthz": "healthz",
    "/readyz": "readyz",
    "/metrics": "metrics",
    "/openapi.json": "openapi",
}


@dataclass(frozen=True)
class GatewayLimits:
    """Per request: the body's bytes and its items (events or dossiers)."""

    max_body_bytes: int
    max_items: int


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def _error(
    status: int,
    code: str,
    sentence: str,
    retry_after: int | None = None,
    answer: Answer = Answer.MOTCUA,
    **headers: str,
) -> web.Response:
    body: dict[str, Any] = {"error": code, "sentence": sentence}
    if retry_after is not None:
        body["retry_after"] = retry_after
        headers["Retry-After"] = str(retry_after)
    if answer is Answer.PORTAL:
        body = {"error_code": PORTAL_FAILED, "message": f"Đồng bộ thất bại: {code}", "motcua": body}
    return _json(status, body, headers)


def portal_answer(ours: dict[str, Any]) -> dict[str, Any]:
    """Our per-item answer in the portal's shape; the detail stays under "motcua"."""
    accepted, rejected = ours["accepted"], ours["rejected"]
    if rejected:
        message = f"Đồng bộ thất bại: {rejected} hồ sơ bị từ chối, {accepted} hồ sơ được nhận"
        return {"error_code": PORTAL_FAILED, "message": message, "motcua": ours}
    message = f"Đồng bộ thành công {accepted} hồ sơ"
    return {"error_code": PORTAL_OK, "message": message, "motcua": ours}


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

    # -- the two ingestion routes -----------------------------------------------------------

    async def post_events(self, request: web.Request) -> web.Response:
        return await self._ingest(request, "events")

    async def post_national_sync(self, request: web.Request) -> web.Response:
        return await self._ingest(request, "national_sync")

    async def _ingest(self, request: web.Request, route: str) -> web.Response:
        source = self.caller(request)
        body: bytes | web.Response | None = None
        if source is None and route == "national_sync" and "Authorization" not in request.headers:
            body = await self._read_body(request)
            if isinstance(body, bytes):
                source = self.session_caller(request, body)
        if source is None:
            return _error(
                401,
                "unauthorized",
                "send `Authorization: Bearer <token>` with a token listed for your system"
                " (or, for a source whose profile says opencps_session, the token as the"
                " body's `session` and the `dstcode` header)",
                **{"WWW-Authenticate": 'Bearer realm="motcua"'},
            )
        profile = self.sources.profile(source) if route == "national_sync" else DEFAULT_SOURCE
        answer = profile.answer
        if body is None:
            body = await self._read_body(request, answer)
        if isinstance(body, web.Response):
            return body
        now = self.clock()
        try:
            if route == "events":
                items = intake.read_event_items(body, request.content_type, self.limits.max_items)
            else:
                items = intake.read_sync_items(body, request.content_type, self.limits.max_items)
        except BodyError as exc:
            return _error(exc.status, exc.code, exc.sentence, answer=answer)
        wait = self.limiter.take(source, len(items))
        if wait == float("inf"):
            return _error(
                413,
                "too_many_items",
                f"{len(items)} items exceed what one system may send at once"
                f" ({self.limiter.burst:g}); split the request",
                answer=answer,
            )
        if wait > 0:
            seconds = int(RateLimiter.retry_after_header(wait))
            return _error(
                429,
                "rate_limited",
                f"{source} sent more than {self.limiter.rate:g} items a second; retry later",
                retry_after=seconds,
                answer=answer,
            )
        if route == "events":
            outcomes = intake.validate_events(items, now)
        else:
            outcomes = intake.map_snapshots(items, self.units, now, profile.sync, self.procedures)
        return await self._produce(route, source, outcomes, profile)

    async def _read_body(
        self, request: web.Request, answer: Answer = Answer.MOTCUA
    ) -> bytes | web.Response:
        limit = self.limits.max_body_bytes
        too_large = _error(
            413,
            "body_too_large",
            f"the body is larger than {limit} bytes; split the request",
            answer=answer,
        )
        if request.content_length is not None and request.content_length > limit:
            return too_large
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return too_large

    async def _produce(
        self, route: str, source: str, outcomes: Sequence[Outcome], profile: SourceProfile
    ) -> web.Response:
        headers = ((SOURCE_HEADER, source.encode()), (VIA_HEADER, VIA[route]))
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
            return _error(
                503,
                "broker_unavailable",
                "the event log (Kafka) did not acknowledge; nothing from this request is"
                " claimed as accepted. Send the same request again (safe: event ids).",
                retry_after=BROKER_RETRY_AFTER,
                answer=profile.answer,
            )
        return self._results(route, source, outcomes, len(records), profile.answer)

    def _results(
        self,
        route: str,
        source: str,
        outcomes: Sequence[Outcome],
        produced: int,
        answer: Answer = Answer.MOTCUA,
    ) -> web.Response:
        results: list[dict[str, Any]] = []
        accepted = rejected = 0
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, Rejection):
                rejected += 1
                self.metrics.items_rejected.labels(route, source, outcome.reason).inc()
                results.append(
                    {
                        "index": index,
                        "status": "rejected",
                        "reason": outcome.reason,
                        "sentence": outcome.sentence,
                    }
                )
                continue
            accepted += 1
            item: dict[str, Any] = {"index": index, "status": "accepted"}
            if route == "events":
                item["event_id"] = outcome.events[0].event_id
            else:
                item["dossier_id"] = outcome.dossier_id
                item["event_ids"] = [event.event_id for event in outcome.events]
            results.append(item)
        if accepted:
            self.metrics.items_accepted.labels(route, source).inc(accepted)
        if produced:
            self.metrics.events_produced.labels(route, source).inc(produced)
        status = 200 if not rejected else 207 if accepted else 422
        ours = {"accepted": accepted, "rejected": rejected, "results": results}
        return _json(status, portal_answer(ours) if answer is Answer.PORTAL else ours)

    # -- operations -------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return _json(200, {"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        ready = await self.sink.ready()
        self.metrics.ready.set(1 if ready else 0)
        if ready:
            return _json(200, {"status": "ready"})
        return _json(503, {"status": "the broker does not answer"})

    async def metrics_page(self, request: web.Request) -> web.Response:
        self.metrics.units.set(len(self.units))
        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def openapi(self, request: web.Request) -> web.Response:
        return _json(200, openapi_document())


def _count_requests(gateway: Gateway) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        route = _ROUTE_LABELS.get(request.path, "other")
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            # aiohttp's own answers (404, 405, …) as JSON, like every other error here.
            response = _error(exc.status, "http_error", exc.reason)
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
        # Past this aiohttp raises HTTPRequestEntityTooLarge, which _read_body answers in JSON.
        client_max_size=gateway.limits.max_body_bytes,
    )
    app[GATEWAY_KEY] = gateway
    app.router.add_post(EVENTS_ROUTE, gateway.post_events)
    app.router.add_post(SYNC_ROUTE, gateway.post_national_sync)
    app.router.add_post(PROGRESS_ROUTE, progress_handler(gateway))
    app.router.add_get("/healthz", gateway.healthz)
    app.router.add_get("/readyz", gateway.readyz)
    app.router.add_get("/metrics", gateway.metrics_page)
    app.router.add_get("/openapi.json", gateway.openapi)
    return app
