"""A store written under another stored-state version is a cache of the log like any other:
set aside and rebuilt, never read with this release's meaning."""

from __future__ import annotations

from pathlib import Path

from rocksdict import Rdict

from service.state.store import FORMAT, DossierStore, open_key


def test_a_store_of_another_version_is_set_aside_and_started_afresh(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = DossierStore(path, "dossier-events")
    record = open_key(0, b"HS-1")
    store.put_records(0, [(record, b"kept by the old rules")])
    assert store.get(0, b"HS-1") == b"kept by the old rules"
    store.close()
    older = str(int(FORMAT) - 1).encode()
    raw = Rdict(str(path))
    raw[b"f"] = older  # as the release before this one left it
    raw.close()

    store = DossierStore(path, "dossier-events")
    assert store.get(0, b"HS-1") is None  # rebuilt from the log, not read
    store.close()
    aside = tmp_path / f"store.format-{older.decode()}"
    assert aside.is_dir()
    raw = Rdict(str(path))
    assert raw[b"f"] == FORMAT
    raw.close()
