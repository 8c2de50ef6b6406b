"""`motcua gateway`: start-up checks, TLS, and running the aiohttp application.

Refuses to start (one line on stderr, exit 2) on a non-loopback address without a tokens
file (unless the sources file gives a sender its own credential, a path secret or OpenCPS's
login), with a bad tokens, units, sources or procedures file, or with half a TLS pair.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from service.ingest.gateway.app import Gateway, GatewayLimits, build_app
from service.ingest.gateway.credentials import parse_networks
from service.ingest.gateway.limits import RateLimiter
from service.ingest.gateway.procedures import ProceduresFile, ProceduresFileError
from service.ingest.gateway.producer import KafkaSink
from service.ingest.gateway.sessions import read_session_key
from service.ingest.gateway.sources import Auth, SourcesFile, SourcesFileError
from service.ingest.gateway.tokens import TokenBook, TokenFileError
from service.ingest.gateway.units import UnitsFile, UnitsFileError
from service.reference import DepartmentsError
from service.settings import Settings, SettingsError

log = logging.getLogger("motcua.gateway")


class GatewayStartError(RuntimeError):
    """The gateway must not start; str(e) is one line for the operator."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise GatewayStartError(
            "set both MOTCUA_GATEWAY_TLS_CERT and MOTCUA_GATEWAY_TLS_KEY, or neither"
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise GatewayStartError(f"cannot load the TLS certificate/key: {exc}") from None
    return context


@dataclass(frozen=True)
class BuiltGateway:
    """What `motcua gateway` serves: the application, its state, TLS, and how it is reached."""

    gateway: Gateway
    app: web.Application
    tls: ssl.SSLContext | None
    access: str  # one line for the operator: who may call


def build_gateway(settings: Settings) -> BuiltGateway:
    """Everything checked and built before a socket opens (importing this package builds
    nothing and reads no file or variable): the reference files are read, the access rule
    decided for `settings.web_host`, the producer and the aiohttp application made.
    GatewayStartError: one line for the operator."""
    host = settings.web_host
    units = UnitsFile(settings.units_file)
    sources = SourcesFile(settings.gateway_sources_file)
    procedures = ProceduresFile(settings.procedures_file)
    try:
        units.load()
        sources.load()
        procedures.load()
    except (UnitsFileError, SourcesFileError, ProceduresFileError) as exc:
        raise GatewayStartError(str(exc)) from None
    # Senders with their own credential (a path secret, OpenCPS's login) need no tokens file.
    own = sorted(
        name
        for name, profile in sources.content.items()
        if profile.auth in (Auth.PATH_SECRET, Auth.OPENCPS_LOGIN)
    )
    tokens: TokenBook | None = None
    if settings.gateway_tokens_file is not None:
        tokens = TokenBook(settings.gateway_tokens_file)
        try:
            tokens.load()
        except TokenFileError as exc:
            raise GatewayStartError(str(exc)) from None
        access = f"bearer tokens from {settings.gateway_tokens_file}"
    elif is_loopback(host):
        access = "OPEN on loopback (no MOTCUA_GATEWAY_TOKENS_FILE): callers are 'anonymous'"
    elif own:
        tokens = TokenBook(None)  # no bearer token is valid
        access = "no bearer tokens"
    else:
        raise GatewayStartError(
            f"refusing to listen on {host} without MOTCUA_GATEWAY_TOKENS_FILE"
            " (only a loopback address may run open)"
        )
    if own:
        access += f"; own credentials (sources file): {', '.join(own)}"
    session_key = None
    if settings.gateway_session_key_file is not None:
        try:
            session_key = read_session_key(str(settings.gateway_session_key_file))
        except ValueError as exc:
            raise GatewayStartError(str(exc)) from None
    if any(p.auth is Auth.OPENCPS_LOGIN for p in sources.content.values()):
        access += (
            "; OpenCPS sessions signed with MOTCUA_GATEWAY_SESSION_KEY_FILE (any gateway)"
            if session_key is not None
            else "; OpenCPS sessions of this process only (no MOTCUA_GATEWAY_SESSION_KEY_FILE:"
            " a restart refuses them until OpenCPS logs in again, within ten minutes)"
        )
    context = _tls_context(settings.gateway_tls_cert, settings.gateway_tls_key)
    sink = KafkaSink(
        settings.bootstrap, settings.topic, settings.security, settings.gateway_send_timeout
    )
    gateway = Gateway(
        sink=sink,
        tokens=tokens,
        units=units,
        limits=GatewayLimits(settings.gateway_max_body_bytes, settings.gateway_max_items),
        limiter=RateLimiter(settings.gateway_rate, settings.gateway_burst),
        sources=sources,
        procedures=procedures,
        trusted_proxies=parse_networks(settings.gateway_trusted_proxies),
        session_key=session_key,
    )
    try:
        # The units file's departments (its third column) have checks of their own: a file
        # the agency check passes may still list a department twice.
        gateway.references.departments.load()
    except DepartmentsError as exc:
        raise GatewayStartError(str(exc)) from None
    return BuiltGateway(gateway, application(gateway), context, access)


def application(gateway: Gateway) -> web.Application:
    """The app with the producer started and stopped alongside it."""
    app = build_app(gateway)

    async def producer(_: web.Application) -> AsyncIterator[None]:
        sink = gateway.sink
        assert isinstance(sink, KafkaSink)
        await sink.start()
        yield
        await sink.stop()

    app.cleanup_ctx.append(producer)
    return app


def run_gateway(port: int | None = None) -> int:
    """`motcua gateway`: serve until SIGINT/SIGTERM. Returns the exit code."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"motcua gateway: {exc}", file=sys.stderr)
        return 2
    host = settings.web_host
    port = port or settings.gateway_port
    try:
        built = build_gateway(settings)
    except GatewayStartError as exc:
        print(f"motcua gateway: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    scheme = "https" if built.tls else "http"
    units = (
        f"{len(built.gateway.units)} units from {settings.units_file}"
        if settings.units_file
        else "no MOTCUA_UNITS_FILE: every national-sync dossier is rejected (unknown_unit)"
    )
    print(
        f"motcua gateway on {scheme}://{host}:{port} → Kafka {settings.bootstrap} topic"
        f" {settings.topic}; access: {built.access}; {units}",
        flush=True,
    )
    try:
        web.run_app(
            built.app,
            host=host,
            port=port,
            ssl_context=built.tls,
            print=None,
            access_log=None,
            shutdown_timeout=settings.gateway_send_timeout,
        )
    except OSError as exc:
        print(f"motcua gateway: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    return 0
