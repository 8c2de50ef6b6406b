"""`motcua board`: the board's own web server (aiohttp): the page, its JSON, the merged queue.

A background task asks every worker each `interval` seconds and keeps the last snapshot;
the page fetches `/api/board` and redraws in place. Every asset is served from this package
(no CDN) under a Content-Security-Policy that allows nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from service.domain.calendar import local_date
from service.outputs.board.gather import ask_worker, board_snapshot, merged_dossiers
from service.outputs.board.targets import Targets, TargetsError
from service.outputs.queue import MAX_LIMIT, BadQuery, parse_query
from service.outputs.report import http_address_problem
from service.settings import Settings, SettingsError

STATIC = Path(__file__).parent / "static"
ASSETS = {
    "board.js": "text/javascript",
    "board.css": "text/css",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class BoardError(Exception):
    """Bad `motcua board` settings: one line for the CLI."""


def parse_workers(text: str) -> list[str]:
    """The comma-separated worker addresses, each http(s)://host:port."""
    workers = [part.strip().rstrip("/") for part in text.split(",") if part.strip()]
    if not workers:
        raise BoardError("--workers names no worker")
    for url in workers:
        problem = http_address_problem(url)
        if problem is not None:
            raise BoardError(f"--workers: {url!r}: {problem}")
    if len(set(workers)) != len(workers):
        raise BoardError("--workers names a worker twice")
    return workers


@dataclass
class Board:
    """The workers, the settings and the last snapshot."""

    workers: Sequence[str]
    partitions: int
    targets: Targets = field(default_factory=Targets)
    interval: float = 5.0
    queue_size: int = 25
    snapshot: dict[str, Any] | None = None
    snapshot_at: float = 0.0  # time.monotonic() of the snapshot
    session: aiohttp.ClientSession | None = None

    async def refresh(self) -> None:
        assert self.session is not None
        now = datetime.now(UTC)
        today = local_date(now)
        answers = await asyncio.gather(
            *(ask_worker(self.session, url, today, self.queue_size) for url in self.workers)
        )
        self.snapshot = board_snapshot(answers, self.partitions, now, self.queue_size)
        self.snapshot_at = time.monotonic()

    async def refresh_forever(self) -> None:
        while True:
            started = time.monotonic()
            await self.refresh()
            await asyncio.sleep(max(0.2, self.interval - (time.monotonic() - started)))

    def board_json(self) -> dict[str, Any]:
        assert self.snapshot is not None
        age = time.monotonic() - self.snapshot_at
        return {
            **self.snapshot,
            "age_s": round(age, 1),
            "stale": age > 3 * self.interval,
            "refresh_s": self.interval,
            "targets": self.targets.to_dict(),
        }


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=HEADERS
    )


def make_app(board: Board) -> web.Application:
    app = web.Application()

    async def index(request: web.Request) -> web.Response:
        body = (STATIC / "index.html").read_bytes()
        return web.Response(body=body, content_type="text/html", charset="utf-8", headers=HEADERS)

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        body = (STATIC / name).read_bytes()
        return web.Response(body=body, content_type=ASSETS[name], charset="utf-8", headers=HEADERS)

    async def board_api(request: web.Request) -> web.Response:
        if board.snapshot is None:
            return _json({"error": "the first answers from the workers are not in yet"}, 503)
        return _json(board.board_json())

    async def dossiers(request: web.Request) -> web.Response:
        try:
            query = parse_query(request.query.items())
        except BadQuery as exc:
            return _json({"error": str(exc)}, 400)
        assert board.session is not None
        return _json(await merged_dossiers(board.session, board.workers, query, board.partitions))

    async def favicon(request: web.Request) -> web.Response:
        return web.Response(status=204, headers=HEADERS)  # no icon, and no 404 in the log

    async def health(request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=4.0)
        board.session = aiohttp.ClientSession(timeout=timeout)
        await board.refresh()
        task = asyncio.create_task(board.refresh_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await board.session.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", asset)
    app.router.add_get("/api/board", board_api)
    app.router.add_get("/api/dossiers", dossiers)
    app.router.add_get("/healthz", health)
    app.router.add_get("/favicon.ico", favicon)
    return app


def run_board_cli(
    workers: str,
    host: str,
    port: int,
    partitions: int | None,
    targets_file: Path | None,
    interval: float,
    queue_size: int,
) -> int:
    """Serve the board until interrupted; bad settings are one line on stderr."""
    try:
        urls = parse_workers(workers)
        targets = Targets.from_file(targets_file) if targets_file else Targets()
        if partitions is None:
            partitions = Settings.from_env().partitions
        if interval < 1:
            raise BoardError("--interval must be at least 1 second")
        if queue_size > MAX_LIMIT:
            raise BoardError(f"--queue-size must be at most {MAX_LIMIT}")
    except (BoardError, TargetsError, SettingsError) as exc:
        print(f"motcua board: {exc}", file=sys.stderr)
        return 2
    board = Board(urls, partitions, targets, interval, queue_size)

    def announce(_: str) -> None:
        print(f"board: http://{host}:{port}/  (workers: {', '.join(urls)})", flush=True)

    try:
        web.run_app(make_app(board), host=host, port=port, print=announce, access_log=None)
    except OSError as exc:
        reason = exc.strerror or exc
        print(f"motcua board: cannot serve on {host}:{port}: {reason}", file=sys.stderr)
        return 1
    return 0
