"""The stored formats, pinned: bytes written by the code that wrote the stores in use.

Each version of each stored format has golden bytes from fixed inputs
(tests/golden_inputs.py), written at commit bc4da55. Writing the inputs must give exactly
these bytes, and reading these bytes must give back what the inputs say, so a store written
before a change stays readable after it. A new version adds its own golden bytes beside the
old ones; the old ones never change.
"""

from __future__ import annotations

import hashlib

import golden_inputs as golden
import orjson
import pytest

from schemas import EventType
from service.domain import codec
from service.domain.codec import (
    decode_closed_totals,
    decode_page,
    decode_page_key,
    encode_closed_totals,
    encode_page,
    encode_page_key,
)
from service.domain.progress import DossierProgress
from service.domain.report import NO_DUE
from service.domain.rules import receipt_due

# Packed dossier records, version 1, as written at bc4da55 from golden_inputs.DOSSIERS.
DOSSIER_RECORDS_V1: dict[str, str] = {
    "HS-1": (
        "010d00ffff00000000000010000000000000c83b69da410000c023bf6bda415b22535844222c2231"
        "2e303030393438222c22323032362d30332d30325430393a30303a30302b30373a3030222c223230"
        "32362d30332d30395432333a35393a35392b30373a3030222c6e756c6c2c6e756c6c2c6e756c6c2c"
        "6e756c6c2c6e756c6c2c22323032362d30332d30325430393a30303a30302b30373a3030222c2230"
        "222c5b222d72225d2c5b353532363532385d5d0a5b22323032362d30332d30325430393a30303a30"
        "302b30373a3030222c22535844222c22312e303030393438222c302c6e756c6c2c355d"
    ),
    "HS-2": (
        "0104ffffff010000000000000000005b6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c"
        "2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c22323032362d30332d30335430393a30303a30"
        "302b30373a3030222c2231222c5b222d61225d2c6e756c6c5d0a5b22323032362d30332d30335430"
        "393a30303a30302b30373a3030225d"
    ),
    "HS-3": (
        "01030102070c010100000030000a00000000c83b69da41000000e8fa6bda41000000ac9369da4100"
        "0000000000f07f0000006c3c6ada4100000008f86cda415b22535844222c22312e30303039343822"
        "2c22323032362d30332d30325430393a30303a30302b30373a3030222c22323032362d30332d3133"
        "5431373a30303a30302b30373a3030222c6e756c6c2c22323032362d30332d31365431303a30303a"
        "30302b30373a3030222c22323032362d30332d31375431303a30303a30302b30373a3030222c2232"
        "3032362d30332d31335430393a30303a30302b30373a3030222c22323032362d30332d3230543137"
        "3a30303a30302b30373a3030222c22323032362d30332d31385431313a30303a30302b30373a3030"
        "222c223073323363733435377072222c5b2272222c227331222c2271222c2262222c22733163222c"
        "227332222c2278222c226170222c227274222c2270222c2272617465225d2c5b3130393232363032"
        "2c313737333339363030302e302c313737323530363830302e302c313737323637393630302e305d"
        "2c6e756c6c2c5b5b225444222c225031222c22535844222c313737323736363030302e302c325d2c"
        "5b225044222c225032222c22535443222c313737333633303030302e302c325d5d5d0a5b22323032"
        "362d30332d30325430393a30303a30302b30373a3030222c22535844222c22312e30303039343822"
        "2c312c22323032362d30332d31305431373a30303a30302b30373a3030222c6e756c6c2c6e756c6c"
        "2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c7b226665655f647565223a747275"
        "652c22636f6d706f6e656e7473223a342c22636f6d706f6e656e74735f646967697469736564223a"
        "332c22636f6d706f6e656e74735f726575736564223a312c22636f6d706f6e656e74735f66726f6d"
        "5f646174615f73746f7265223a302c226964656e746974795f7665726966696564223a747275652c"
        "226f6e6c696e655f6c6576656c223a2266756c6c227d5d0a5b22323032362d30332d30325431303a"
        "30303a30302b30373a3030222c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e75"
        "6c6c2c225444222c225031222c6e756c6c2c31365d0a5b22323032362d30332d30335431303a3030"
        "3a30302b30373a3030225d0a5b22323032362d30332d30355431303a30303a30302b30373a303022"
        "2c6e756c6c2c6e756c6c2c6e756c6c2c22323032362d30332d31335431373a30303a30302b30373a"
        "3030225d0a5b22323032362d30332d30365431303a30303a30302b30373a3030222c6e756c6c2c6e"
        "756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c225444225d0a5b22323032362d30332d"
        "30365431313a30303a30302b30373a3030222c22535443222c6e756c6c2c6e756c6c2c6e756c6c2c"
        "6e756c6c2c6e756c6c2c225044222c225032222c6e756c6c2c6e756c6c2c325d0a5b22323032362d"
        "30332d31335430393a30303a30302b30373a3030222c6e756c6c2c6e756c6c2c6e756c6c2c6e756c"
        "6c2c6e756c6c2c22323032362d30332d32305431373a30303a30302b30373a3030225d0a5b223230"
        "32362d30332d31365431303a30303a30302b30373a3030225d0a5b22323032362d30332d31375431"
        "303a30303a30302b30373a3030222c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c"
        "6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c7b22655f726573756c74"
        "223a747275657d5d0a5b22323032362d30332d31375431313a30303a30302b30373a3030222c6e75"
        "6c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e75"
        "6c6c2c6e756c6c2c6e756c6c2c7b226d6574686f64223a226e6174696f6e616c5f706f7274616c22"
        "7d5d0a5b22323032362d30332d31385431313a30303a30302b30373a3030222c6e756c6c2c6e756c"
        "6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c6c2c6e756c"
        "6c2c6e756c6c2c7b22726174696e67223a22646973736174697366696564222c22726561736f6e22"
        "3a22736c6f77222c226372697465726961223a5b5b226331222c325d2c5b226332222c305d5d7d5d"
    ),
    "HS-4": (
        "010502ffff02010000000020000100000000645469da4100000088a66bda4100000024fd69da4100"
        "0000000000f07f5b22535844222c22312e303030393438222c22323032362d30332d30325430393a"
        "30303a30302b30303a3030222c22323032362d30332d30395431303a30303a30302b30303a303022"
        "2c22323032362d30332d30345430393a30303a30302b30303a3030222c6e756c6c2c6e756c6c2c6e"
        "756c6c2c6e756c6c2c22323032362d30332d30345430393a30303a30302b30303a3030222c223032"
        "73222c5b222f72222c222f71222c222f73225d2c5b353738383637322c6e756c6c2c313737323631"
        "343830302e305d2c5b225444222c225031222c22535844222c22323032362d30332d30335430393a"
        "30303a30302b30303a3030222c22323032362d30332d30355430393a30303a30302b30303a303022"
        "5d2c5b5d5d0a5b22323032362d30332d30325430393a30303a30302b30303a3030222c2253584422"
        "2c22312e303030393438222c322c22323032362d30332d30395431303a30303a30302b30303a3030"
        "225d0a5b22323032362d30332d30345430393a30303a30302b30303a3030225d0a5b22323032362d"
        "30332d30335430393a30303a30302b30303a3030222c6e756c6c2c6e756c6c2c6e756c6c2c6e756c"
        "6c2c6e756c6c2c6e756c6c2c225444222c225031222c22323032362d30332d30355430393a30303a"
        "30302b30303a3030225d"
    ),
    "HS-5": (
        "010500ff0808000000000010000100000000c83b69da41ffffffffffffef7f5b22535844222c2231"
        "2e303030393438222c22323032362d30332d30325430393a30303a30302b30373a3030222c6e756c"
        "6c2c6e756c6c2c6e756c6c2c22323032362d30332d32305430393a30303a30302b30373a3030222c"
        "6e756c6c2c6e756c6c2c22323032362d30332d32305430393a30303a30302b30373a3030222c2230"
        "38222c5b222d72222c222d77225d2c5b31303736393430385d5d0a5b22323032362d30332d303254"
        "30393a30303a30302b30373a3030222c22535844222c22312e303030393438222c305d0a5b223230"
        "32362d30332d32305430393a30303a30302b30373a3030225d"
    ),
}
HISTORY_PAGE_V1 = (
    "01030601021f02000000ffffffff0000000000000000000000000700000003000000000000000000"
    "0000000000000100000000000000000000000000000001000000000000000100000000000000696e"
    "5f70726f67726573732e77697468696e0a696e6465783a6f6e6c696e655f73686172653a64656e0a"
    "72656365697665642e6469726563740a7265736f6c7665642e6561726c790a737465701f5358441f"
    "50311f6c6174650a77697468647261776e"
)
# Version 2 (2695 bytes): its head and its SHA-256.
HISTORY_PAGE_V2_HEAD = "02012b01049cffff"
HISTORY_PAGE_V2_SHA256 = "97b98b58b05067cc538c7c050b4f90cd4d802078c203195d3f465237dc7f2a46"
PAGE_KEY = "03535844000059ea"
CLOSED_TOTALS_V2 = (
    "025b5b22636f6d706c65746564222c22535844222c226c617465222c325d2c5b2272656365697665"
    "64222c22535844222c22646972656374222c31325d2c5b2273746570735f636f6d706c6574656422"
    "2c22535443222c225032222c226f6e5f74696d65222c355d2c5b2277697468647261776e222c2253"
    "5844222c315d5d"
)


def _progress(dossier_id: str) -> DossierProgress:
    progress = DossierProgress.start(dossier_id)
    for event in golden.DOSSIERS[dossier_id]:
        progress.add(event, golden.CALENDAR)
    return progress


def _with_receipt_due(record: bytes, dossier_id: str) -> bytes:
    """A version 1 record of bc4da55 as written since its index track keeps the receipt's
    due: the same bytes with that due added at the end of the track's list (the form's own
    way to grow), the due worked out from the receipt itself (R1, R11)."""
    start = codec._RECORD_HEAD.size + codec._RECORD_HEAD.unpack_from(record)[8]
    end = record.index(b"\n", start)
    fields = orjson.loads(record[start:end])
    track = fields[12]
    if track is not None:
        receipt = min(
            (e for e in golden.DOSSIERS[dossier_id] if e.type is EventType.RECEIVED),
            key=lambda e: (e.occurred_at, e.event_id),
        )
        due = receipt_due(receipt, golden.CALENDAR)
        fields[12] = [*track, *[None] * (5 - len(track)), due.timestamp() if due else NO_DUE]
    return record[:start] + orjson.dumps(fields) + record[end:]


@pytest.mark.parametrize("dossier_id", sorted(DOSSIER_RECORDS_V1))
def test_a_dossier_record_is_written_as_version_1(dossier_id: str) -> None:
    written = bytes.fromhex(DOSSIER_RECORDS_V1[dossier_id])
    assert _progress(dossier_id).pack() == _with_receipt_due(written, dossier_id)


@pytest.mark.parametrize("dossier_id", sorted(DOSSIER_RECORDS_V1))
def test_a_stored_version_1_dossier_record_reads_back_whole(dossier_id: str) -> None:
    stored = DossierProgress.unpack(dossier_id, bytes.fromhex(DOSSIER_RECORDS_V1[dossier_id]))
    expected = _progress(dossier_id)
    assert stored == expected
    assert stored.dossier == expected.dossier
    assert stored.facts == expected.facts
    assert stored.events() == expected.events()


def test_a_history_page_of_few_keys_is_version_1() -> None:
    raw = encode_page(golden.PAGE_ROWS)
    assert raw.hex() == HISTORY_PAGE_V1
    assert decode_page(golden.PAGE_NUMBER, bytes.fromhex(HISTORY_PAGE_V1)) == golden.PAGE_ROWS


def test_a_history_page_of_many_keys_is_version_2() -> None:
    raw = encode_page(golden.WIDE_PAGE_ROWS)
    assert raw[:8].hex() == HISTORY_PAGE_V2_HEAD
    assert hashlib.sha256(raw).hexdigest() == HISTORY_PAGE_V2_SHA256
    assert decode_page(golden.PAGE_NUMBER, raw) == golden.WIDE_PAGE_ROWS


def test_a_page_key_is_the_agency_then_the_page_number() -> None:
    assert encode_page_key(*golden.PAGE_KEY).hex() == PAGE_KEY
    assert decode_page_key(bytes.fromhex(PAGE_KEY)) == golden.PAGE_KEY


def test_closed_totals_are_version_2() -> None:
    assert encode_closed_totals(golden.CLOSED_TOTALS).hex() == CLOSED_TOTALS_V2
    assert decode_closed_totals(bytes.fromhex(CLOSED_TOTALS_V2)) == golden.CLOSED_TOTALS


@pytest.mark.parametrize("value", [None, False, True])
def test_the_index_track_list_names_every_flag_and_instant_in_its_order(value: object) -> None:
    """The track's list names its fields one by one for speed: each flag in
    `_INDEX_FLAGS` order (two bits each), then the instants, trailing nulls dropped."""
    from service.domain.codec import (
        _INDEX_FLAGS,
        _INDEX_INSTANTS,
        index_track_list,
        index_track_of_list,
    )
    from service.domain.index import IndexTrack

    for shift, name in enumerate(_INDEX_FLAGS):
        for kept in range(len(_INDEX_INSTANTS) + 1):
            track = IndexTrack.__new__(IndexTrack)
            for other in _INDEX_FLAGS:
                setattr(track, other, None)
            setattr(track, name, value)
            for n, instant in enumerate(_INDEX_INSTANTS):
                setattr(track, instant, float(n + 1) if n < kept else None)
            code = 0 if value is None else 2 if value else 1
            listed = index_track_list(track)
            assert listed == [code << (2 * shift), *(float(n + 1) for n in range(kept))]
            back = index_track_of_list(listed)
            for field in (*_INDEX_FLAGS, *_INDEX_INSTANTS):
                assert getattr(back, field) == getattr(track, field), field
