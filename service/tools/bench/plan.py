"""The sizes of a bench run: quick (under two minutes) or full."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """The sizes of one run."""

    mode: str
    throughput_events: int
    latency_rate: int
    latency_seconds: int
    open_sizes: tuple[int, ...]  # open dossiers at which lag, RSS and render time are taken
    overdue_lead: float  # seconds between publishing the due-soon dossiers and their due
    replay_dossiers_per_day: int | None  # None: the throughput run stands in for the replay
    replay_dossiers: int = 0
    peers: bool = False  # --peers: also measure the peer stream processors (peers.py)
    # Closed dossiers behind 20,000 open ones at which restart and memory are taken.
    history_closed: tuple[int, ...] = (0, 1_000_000)
    # Events a worker with an empty store catches up in the takeover-at-scale step.
    takeover_events: int = 1_000_000


QUICK = Plan(
    "quick",
    20_000,
    500,
    15,
    (2_000, 20_000),
    4.0,
    None,
    history_closed=(0, 100_000),
    takeover_events=50_000,
)
FULL = Plan(
    "full",
    200_000,
    500,
    60,
    (100_000, 1_000_000),
    8.0,
    1_000,
    260_000,
    history_closed=(0, 1_000_000, 5_000_000),
    takeover_events=1_000_000,
)
