"""The reliability diagnosis reads the store as the worker writes it, and names what it cannot
read: a failure message that says "store unreadable" or "lost: none" explains nothing."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from reliability_tools import describe_store, read_store_at
from rocksdict import Options, Rdict

from service.domain import WorkingCalendar
from service.state.ledger import Ledger
from service.state.log_reader import Incoming
from service.state.store import DossierStore
from service.state.worker_state import WorkerState

CAL = WorkingCalendar()


def _received(dossier_id: str) -> dict[str, object]:
    return {
        "event_id": f"{dossier_id}-r",
        "dossier_id": dossier_id,
        "type": "received",
        "occurred_at": "2026-11-02T08:00:00+07:00",
        "agency": "SXD",
        "procedure": "1.000948",
        "channel": "direct",
        "processing_days": 5,
    }


def test_the_diagnosis_reads_the_current_store_and_names_a_corrupt_dossier(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dossiers"
    state = WorkerState(DossierStore(path, "dossier-events"), Ledger(CAL), CAL)
    messages = [
        Incoming(0, n, d.encode(), orjson.dumps(_received(d)), time.time(), None)
        for n, d in enumerate(["HS-1", "HS-2", "HS-3"])
    ]
    state.commit(state.apply(messages, live=False))
    state.store.close()

    healthy = read_store_at(path)
    assert healthy[0].applied == 2
    assert healthy[0].event_ids == {("HS-1", "HS-1-r"), ("HS-2", "HS-2-r"), ("HS-3", "HS-3-r")}
    assert healthy[0].unreadable == {}

    db = Rdict(str(path), Options(raw_mode=True))
    key = next(k for k in db.keys() if k.endswith(b"HS-2") and k[:1] != b"m")  # noqa: SIM118
    db[key] = b"\x07garbage"
    db.close()

    broken = read_store_at(path)
    assert set(broken[0].unreadable) == {"HS-2"}
    assert broken[0].event_ids == {("HS-1", "HS-1-r"), ("HS-3", "HS-3-r")}
    assert "unreadable dossiers: HS-2" in describe_store(broken)
