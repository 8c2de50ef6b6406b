"""`motcua simulate`: the simulated center's events paced to Kafka or written as JSON Lines,
or its national-sync bodies and units file (`--format`)."""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from service.tools.simulate.center import (
    AGENCIES,
    IndexRates,
    SimulationConfig,
    SimulationError,
    generate,
)
from service.tools.simulate.portal import (
    PROGRESS_SERVICE,
    SYNC_BATCH,
    national_sync_progress,
    national_sync_snapshots,
    sample_units_csv,
)

FORMATS = ("events", "national-sync", "units")
DEMO_LIVE_DUE = (30.0, 600.0)  # seconds after now, for `run_simulation`'s few live dossiers


def _batched(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class TokenBucket:
    """Paces a stream to `rate` items a second, with bursts of up to one second's worth."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._clock, self._sleep = clock, sleep
        self._last = clock()

    def take(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1.0:
            self._sleep((1.0 - self._tokens) / self.rate)
            self._tokens = 1.0
            self._last = self._clock()
        self._tokens -= 1.0


def paced(items: Iterable[Any], rate: float) -> Iterator[Any]:
    """`items` at no more than `rate` a second (0 = as fast as they come)."""
    if rate == 0:
        yield from items
        return
    bucket = TokenBucket(rate)
    for item in items:
        bucket.take()
        yield item


def _until(stop: threading.Event, items: Iterable[Any]) -> Iterator[Any]:
    for item in items:
        if stop.is_set():
            return
        yield item


def _write_lines(events: Iterable[dict[str, Any]], sink: BinaryIO, live: bool) -> int:
    count = 0
    for event in events:
        sink.write(orjson.dumps(event) + b"\n")
        count += 1
        if live:  # a paced stream is watched as it goes
            sink.flush()
    sink.flush()
    return count


def run_simulation(
    dossiers: int,
    rate: float,
    overdue_ratio: float,
    seed: int,
    out: Path | str | None,
    broker: str | None,
    topic: str,
    *,
    now: datetime | None = None,
    live_due_seconds: tuple[float, float] | None = DEMO_LIVE_DUE,
    output_format: str = "events",
    index: IndexRates | None = None,
    stop: threading.Event | None = None,
) -> str:
    """`motcua simulate`: JSON Lines to `out` ("-" or None without a broker: stdout) or events
    to Kafka through DossierPublisher, paced at `rate` events/s (0 = flat out). Once `stop`
    is set no event is taken further, and what was sent is flushed and acknowledged (the
    demo stops it so, before it stops the broker).

    A few dossiers fall due `live_due_seconds` after now, so a live demo sees some turn
    overdue with no event. Returns a one-line summary. Raises SimulationError for bad
    arguments (a malformed broker address or security settings included) and PublishError
    (one line) when the broker is unreachable or does not acknowledge every event.
    """
    if not isinstance(rate, int | float) or not math.isfinite(rate) or rate < 0:
        raise SimulationError(f"rate must be a number >= 0 events/s, got {rate!r}")
    if out is not None and broker is not None:
        raise SimulationError("give an output file or a broker, not both")
    if output_format not in FORMATS:
        raise SimulationError(f"format must be one of {', '.join(FORMATS)}")
    if output_format != "events":
        return _write_reference(output_format, dossiers, seed, overdue_ratio, out, now)
    config = SimulationConfig(
        dossiers=dossiers,
        seed=seed,
        overdue_ratio=overdue_ratio,
        now=now,
        live_due_seconds=live_due_seconds,
        index=index or IndexRates(),
    )
    started = time.monotonic()
    events = paced(generate(config), rate)
    if stop is not None:
        events = _until(stop, events)
    what = f"simulated {dossiers:,} dossiers (seed {seed}, overdue ratio {overdue_ratio:g})"

    if broker is not None:
        from service.ingest.publisher import DossierPublisher, PublishError

        try:
            publisher = DossierPublisher(broker, topic)
        except PublishError as exc:
            if exc.reason in (PublishError.BAD_ADDRESS, PublishError.BAD_SECURITY):
                raise SimulationError(str(exc)) from None
            raise
        with publisher:
            report = publisher.publish_many(events)
        if not report.ok:
            raise PublishError(PublishError.NOT_ACKNOWLEDGED, f"{what}: {report.summary()}")
        elapsed = time.monotonic() - started
        return (
            f"{what}: {report.acknowledged:,} events published to {topic} and acknowledged"
            f" in {elapsed:.1f} s"
        )

    if out is None or str(out) == "-":
        try:
            count = _write_lines(events, sys.stdout.buffer, live=rate > 0)
        except BrokenPipeError:
            # The reader went away (e.g. `| head`); keep the interpreter's final flush quiet.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return f"{what}: output closed early"
        target = "stdout"
    else:
        try:
            with Path(out).open("wb") as sink:
                count = _write_lines(events, sink, live=rate > 0)
        except OSError as exc:
            raise SimulationError(f"cannot write {out}: {exc.strerror or exc}") from None
        target = str(out)
    elapsed = time.monotonic() - started
    return f"{what}: {count:,} events written to {target} in {elapsed:.1f} s"


def _write_reference(
    output_format: str,
    dossiers: int,
    seed: int,
    overdue_ratio: float,
    out: Path | str | None,
    now: datetime | None,
) -> str:
    """`--format national-sync` (one DongBoHoSoMC JSON array of up to SYNC_BATCH dossiers
    per line, then one {"service": "CapNhatTienDoHoSoMC", "data": [...]} body of progress
    rows per line) or `--format units` (the matching MOTCUA_UNITS_FILE), to `out` or stdout."""
    if output_format == "units":
        payload = [sample_units_csv().encode("utf-8")]
        what = f"units file of the sample center ({len(AGENCIES)} units)"
    else:
        config = SimulationConfig(
            dossiers=dossiers, seed=seed, overdue_ratio=overdue_ratio, now=now
        )
        events = list(generate(config))
        snapshots = national_sync_snapshots(events, config.calendar)
        payload = [orjson.dumps(batch) + b"\n" for batch in _batched(snapshots, SYNC_BATCH)]
        bodies = len(payload)
        # Then the progress rows, in OpenCPS's envelope so a line says which call it is.
        rows = national_sync_progress(events, config.calendar)
        payload += [
            orjson.dumps({"service": PROGRESS_SERVICE, "data": batch}) + b"\n"
            for batch in _batched(rows, SYNC_BATCH)
        ]
        what = (
            f"national-sync snapshots of {dossiers:,} simulated dossiers (seed {seed}),"
            f" {bodies} bodies of up to {SYNC_BATCH}, then {len(payload) - bodies}"
            f" {PROGRESS_SERVICE} bodies of progress rows"
        )
    if out is None or str(out) == "-":
        sys.stdout.buffer.write(b"".join(payload))
        sys.stdout.buffer.flush()
        return f"{what} written to stdout"
    try:
        Path(out).write_bytes(b"".join(payload))
    except OSError as exc:
        raise SimulationError(f"cannot write {out}: {exc.strerror or exc}") from None
    return f"{what} written to {out}"
