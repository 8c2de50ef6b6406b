"""The national-sync mapping (DongBoHoSoMC snapshot → contract events), pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import EventType, Reason, event_from_dict
from service.domain.calendar import LOCAL_TZ
from service.ingest.national_sync import (
    SyncReason,
    UnmappableDossier,
    event_id,
    map_dossier,
    parse_local_time,
    received_index,
    returned_index,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Units:
    """A units directory of two units: one by code, one by name."""

    def agency_for(self, unit_code: str | None, unit_name: str | None) -> str | None:
        if unit_code == "000.00.07.H19":
            return "SXD"
        if unit_name == "Sở Tư pháp":
            return "STP"
        return None


PERSONAL = {
    "ChuHoSo": "Nguyễn Văn An",
    "SoGiayToChuHoSo": "001085012345",
    "DinhDanhCHS": [{"LoaiDinhDanh": "1", "SoDinhDanh": "001085012345"}],
    "SoDienThoai": "0912345678",
    "Email": "an.nguyen@example.vn",
    "TrichYeuHoSo": "Cấp phép xây dựng nhà ở riêng lẻ tại số 12 ngõ 34",
    "TaiLieuNop": [{"DuongDanTaiTepTin": "https://files.example.vn/cccd-an.pdf"}],
}


def snapshot(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "MaHoSo": "000.00.07.H19-261120-0001",
        "MaTTHC": "1.000948",
        "KenhThucHien": "2",
        "TrangThaiHoSo": "4",
        "NgayTiepNhan": "20261120091500",
        "NgayHenTra": "20261127170000",
        "DonViXuLy": "Sở Xây dựng",
        "MaDinhDanh": "000.00.07.H19",
        **PERSONAL,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def local(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=LOCAL_TZ)


def kinds(mapped: Any) -> list[tuple[EventType, datetime]]:
    return [(e.type, e.occurred_at) for e in mapped.events]


def test_received_dossier_gives_one_received_event_with_every_contract_field() -> None:
    mapped = map_dossier(snapshot(), Units(), NOW)
    event = mapped.events[0]
    assert event.type is EventType.RECEIVED
    assert event.dossier_id == "000.00.07.H19-261120-0001"
    assert event.occurred_at == local("20261120091500")
    assert event.due_at == local("20261127170000")
    assert (event.agency, event.procedure, event.channel.value) == ("SXD", "1.000948", "online")
    assert event.event_id == "000.00.07.H19-261120-0001:received:20261120091500"


DID = "000.00.07.H19-261120-0001"


def test_a_running_snapshot_resumes_now_and_states_its_appointment() -> None:
    # Status 2 and 4: the clock runs. The resume ends any pause inferred before; the
    # appointment event moves the due to NgayHenTra (a no-op while it is unchanged).
    mapped = map_dossier(snapshot(TrangThaiHoSo="2"), Units(), NOW)
    assert [(e.event_id, e.type, e.occurred_at, e.due_at) for e in mapped.events[1:]] == [
        (f"{DID}:supplement_received:day-20261201", EventType.SUPPLEMENT_RECEIVED, NOW, None),
        (
            f"{DID}:supplement_received:due-20261127170000",
            EventType.SUPPLEMENT_RECEIVED,
            NOW,
            local("20261127170000"),
        ),
    ]
    # A later snapshot with a new appointment: the same day's resume, a new appointment id.
    later = map_dossier(snapshot(NgayHenTra="20261204170000"), Units(), NOW)
    assert [e.event_id for e in later.events[1:]] == [
        f"{DID}:supplement_received:day-20261201",
        f"{DID}:supplement_received:due-20261204170000",
    ]


@pytest.mark.parametrize("status", ["1", 1, "3", 3])
def test_dossiers_never_received_give_no_events(status: Any) -> None:
    # 1, and 3 without a receipt: refused at the counter, no clock started.
    mapped = map_dossier(snapshot(TrangThaiHoSo=status, NgayTiepNhan=""), Units(), NOW)
    assert mapped.events == ()
    if str(status) == "1":
        assert map_dossier(snapshot(TrangThaiHoSo=status), Units(), NOW).events == ()


def test_status_3_after_a_receipt_is_a_refusal_dated_at_the_snapshot() -> None:
    mapped = map_dossier(snapshot(TrangThaiHoSo="3"), Units(), NOW)
    assert [(e.type, e.event_id) for e in mapped.events] == [
        (EventType.RECEIVED, f"{DID}:received:20261120091500"),
        (EventType.REJECTED, f"{DID}:rejected:day-20261201"),
    ]
    assert mapped.events[1].occurred_at == NOW


def test_returned_dossier_gives_received_approved_returned() -> None:
    mapped = map_dossier(
        snapshot(TrangThaiHoSo="10", NgayKetThucXuLy="20261125100000", NgayTra="20261126080000"),
        Units(),
        NOW,
    )
    assert kinds(mapped) == [
        (EventType.RECEIVED, local("20261120091500")),
        (EventType.APPROVED, local("20261125100000")),
        (EventType.RETURNED, local("20261126080000")),
    ]


def test_finished_dossier_is_approved_at_the_end_of_processing() -> None:
    mapped = map_dossier(snapshot(TrangThaiHoSo=9, NgayKetThucXuLy="20261125100000"), Units(), NOW)
    assert kinds(mapped)[-1] == (EventType.APPROVED, local("20261125100000"))


def test_supplement_cycles_pause_and_resume_with_the_new_appointment() -> None:
    cycles = [
        {
            "NgayBoSung": "20261121100000",
            "NgayTiepNhanBoSung": "20261123090000",
            "NgayHenTraMoi": "20261130170000",
            "NoiDungBoSung": "Bổ sung bản sao CCCD của ông Nguyễn Văn An",
            "NguoiYeuCauBoSung": "Trần Thị Bình",
        },
        {"NgayBoSung": "2026-11-24T10:00:00"},  # the .NET DTO's DateTime form
    ]
    mapped = map_dossier(snapshot(TrangThaiHoSo="5", DanhSachHoSoBoSung=cycles), Units(), NOW)
    assert kinds(mapped)[1:] == [
        (EventType.SUPPLEMENT_REQUESTED, local("20261121100000")),
        (EventType.SUPPLEMENT_RECEIVED, local("20261123090000")),
        (EventType.SUPPLEMENT_REQUESTED, local("20261124100000")),
    ]
    assert mapped.events[2].due_at == local("20261130170000")


def test_status_5_without_cycles_uses_the_request_time_of_the_dotnet_query() -> None:
    mapped = map_dossier(
        snapshot(TrangThaiHoSo="5", NgayYeuCauBoSung="20261121100000"), Units(), NOW
    )
    assert kinds(mapped)[-1] == (EventType.SUPPLEMENT_REQUESTED, local("20261121100000"))
    # Without it (OpenCPS, and the .NET DTO loses it): the pause starts at the snapshot.
    mapped = map_dossier(snapshot(TrangThaiHoSo="5"), Units(), NOW)
    assert [(e.type, e.event_id, e.occurred_at) for e in mapped.events[1:]] == [
        (EventType.SUPPLEMENT_REQUESTED, f"{DID}:supplement_requested:day-20261201", NOW)
    ]


def test_withdrawn_at_end_of_processing_else_at_the_snapshot() -> None:
    mapped = map_dossier(
        snapshot(TrangThaiHoSo="7", NgayKetThucXuLy="20261122080000"), Units(), NOW
    )
    assert kinds(mapped)[-1] == (EventType.WITHDRAWN, local("20261122080000"))
    mapped = map_dossier(snapshot(TrangThaiHoSo="7"), Units(), NOW)
    assert kinds(mapped)[-1] == (EventType.WITHDRAWN, NOW)
    assert mapped.events[-1].event_id == f"{DID}:withdrawn:day-20261201"


def test_stopped_or_refused_is_rejected_at_the_refusal_else_the_end() -> None:
    mapped = map_dossier(
        snapshot(TrangThaiHoSo="8", NgayKetThucXuLy="20261122080000"), Units(), NOW
    )
    assert kinds(mapped)[-1] == (EventType.REJECTED, local("20261122080000"))
    mapped = map_dossier(
        snapshot(TrangThaiHoSo="9", NgayTuChoi="20261121080000", NgayKetThucXuLy="20261122080000"),
        Units(),
        NOW,
    )
    # A refusal is the decision: no approval beside it.
    assert [k for k, _ in kinds(mapped)] == [EventType.RECEIVED, EventType.REJECTED]
    assert kinds(mapped)[-1][1] == local("20261121080000")


def test_unit_matches_code_first_then_name() -> None:
    by_name = snapshot(MaDinhDanh="999.99", DonViXuLy="Sở Tư pháp")
    assert map_dossier(by_name, Units(), NOW).events[0].agency == "STP"
    by_code = snapshot(MaDinhDanh="000.00.07.H19", DonViXuLy="Sở Tư pháp")
    assert map_dossier(by_code, Units(), NOW).events[0].agency == "SXD"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"TrangThaiHoSo": "11"}, SyncReason.UNKNOWN_STATUS),
        ({"TrangThaiHoSo": None}, SyncReason.UNKNOWN_STATUS),
        ({"TrangThaiHoSo": True}, SyncReason.UNKNOWN_STATUS),
        ({"MaDinhDanh": "nope", "DonViXuLy": "Sở Không Có"}, SyncReason.UNKNOWN_UNIT),
        ({"MaDinhDanh": None, "DonViXuLy": None}, SyncReason.UNKNOWN_UNIT),
        ({"NgayTiepNhan": "2026-13-45"}, SyncReason.BAD_DATE),
        ({"NgayTiepNhan": "20261340091500"}, SyncReason.BAD_DATE),
        ({"NgayTiepNhan": ""}, SyncReason.MISSING_DATE),
        ({"MaTTHC": ""}, Reason.MISSING_PROCEDURE),
        ({"KenhThucHien": "4"}, Reason.BAD_CHANNEL),
        ({"KenhThucHien": None}, Reason.BAD_CHANNEL),
        ({"MaHoSo": ""}, Reason.BAD_DOSSIER_ID),
        ({"MaHoSo": "X" * 65}, Reason.BAD_DOSSIER_ID),
        ({"TrangThaiHoSo": "9"}, SyncReason.MISSING_DATE),
        ({"TrangThaiHoSo": "10", "NgayKetThucXuLy": "20261125100000"}, SyncReason.MISSING_DATE),
        (
            {"DanhSachHoSoBoSung": [{"NgayTiepNhanBoSung": "20261123090000"}]},
            SyncReason.MISSING_DATE,
        ),
        ({"DanhSachHoSoBoSung": "x"}, SyncReason.BAD_DATE),
        ({"NgayTiepNhan": "20991120091500"}, Reason.FUTURE_TIMESTAMP),
    ],
)
def test_unmappable_snapshots_say_why_without_quoting_personal_data(
    fields: dict[str, Any], reason: str
) -> None:
    with pytest.raises(UnmappableDossier) as caught:
        map_dossier(snapshot(**fields), Units(), NOW)
    assert caught.value.reason == reason
    text = str(caught.value)
    for value in ("Nguyễn", "001085012345", "0912345678", "example.vn", "ngõ"):
        assert value not in text


def test_not_an_object() -> None:
    with pytest.raises(UnmappableDossier) as caught:
        map_dossier(["MaHoSo"], Units(), NOW)
    assert caught.value.reason == Reason.NOT_OBJECT


def test_no_personal_field_reaches_an_event() -> None:
    cycles = [{"NgayBoSung": "20261121100000", "NoiDungBoSung": PERSONAL["ChuHoSo"]}]
    mapped = map_dossier(
        snapshot(
            TrangThaiHoSo="10",
            NgayKetThucXuLy="20261125100000",
            NgayTra="20261126080000",
            DanhSachHoSoBoSung=cycles,
        ),
        Units(),
        NOW,
    )
    produced = b"".join(event.to_json() for event in mapped.events).decode()
    for value in ("Nguyễn", "001085012345", "0912345678", "example.vn", "ngõ", "cccd"):
        assert value not in produced


def test_resent_snapshot_gives_the_same_events_and_ids_are_valid_contract_ids() -> None:
    full = snapshot(TrangThaiHoSo="10", NgayKetThucXuLy="20261125100000", NgayTra="20261126080000")
    first = map_dossier(full, Units(), NOW)
    again = map_dossier(dict(full), Units(), NOW)
    assert first.events == again.events
    longest = snapshot(
        MaHoSo="H" * 64,
        TrangThaiHoSo="10",
        NgayKetThucXuLy="20261125100000",
        NgayTra="20261126080000",
    )
    for event in map_dossier(longest, Units(), NOW).events:
        assert event_from_dict(event.to_dict(), NOW) == event
        assert len(event.event_id) <= 128


def test_event_id_is_dossier_kind_and_local_time() -> None:
    moment = datetime(2026, 11, 20, 2, 15, tzinfo=UTC)  # 09:15 in Hà Nội
    assert event_id("HS-1", EventType.RECEIVED, moment) == "HS-1:received:20261120091500"


@pytest.mark.parametrize("value", [None, ""])
def test_absent_times(value: Any) -> None:
    assert parse_local_time(value, "NgayTra") is None


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:00:00Z", "9999-12-31T23:59:59-05:00"]
)
@pytest.mark.parametrize(
    "field", ["NgayTiepNhan", "NgayHenTra", "NgayKetThucXuLy", "NgayTra", "NgayTuChoi"]
)
def test_a_time_with_no_local_equivalent_is_a_bad_date(field: str, value: str) -> None:
    # Its offset moves it before year 1 or past 9999: no local time, so no event id.
    fields = {"TrangThaiHoSo": "10", "NgayKetThucXuLy": "20261125100000"}
    fields |= {"NgayTra": "20261126080000", field: value}
    with pytest.raises(UnmappableDossier) as caught:
        map_dossier(snapshot(**fields), Units(), NOW)
    assert caught.value.reason == SyncReason.BAD_DATE
    assert field in caught.value.detail and value not in caught.value.detail


def test_times_with_an_offset_keep_it() -> None:
    parsed = parse_local_time("2026-11-20T02:15:00Z", "NgayBoSung")
    assert parsed == datetime(2026, 11, 20, 2, 15, tzinfo=UTC)


def test_simulated_snapshots_all_map_and_agree_with_the_simulated_events(tmp_path: Any) -> None:
    from collections import Counter

    from service.ingest.gateway.units import UnitsFile
    from service.tools.simulate import (
        SimulationConfig,
        generate,
        national_sync_snapshots,
        sample_units_csv,
    )

    path = tmp_path / "units.csv"
    path.write_text(sample_units_csv(), encoding="utf-8")
    units = UnitsFile(path)
    units.load()
    config = SimulationConfig(dossiers=400, seed=3, now=NOW)
    events = list(generate(config))
    mapped = [map_dossier(s, units, NOW) for s in national_sync_snapshots(events)]
    assert len(mapped) == len({e["dossier_id"] for e in events})
    closing = {"approved", "rejected", "returned", "withdrawn"}
    want = Counter(e["type"] for e in events if e["type"] in closing)
    got = Counter(ev.type.value for m in mapped for ev in m.events if ev.type.value in closing)
    assert got == want
    agencies = {e["dossier_id"]: e["agency"] for e in events if e["type"] == "received"}
    assert all(m.events[0].agency == agencies[m.dossier_id] for m in mapped)


# -- the index fields of issue 18, from the body's lists only ----------------------------------


def test_received_index_counts_components_and_fees_from_the_lists() -> None:
    # As the .NET sender writes them: DuocSoHoa always "1", DuocTaiSuDung 0/1/2,
    # DuocLayTuKhoDMQG 0/1, IsDeleted, Gia as a string; a deleted file does not count.
    body = snapshot(
        TaiLieuNop=[
            {
                "DuocSoHoa": "1",
                "DuocTaiSuDung": "0",
                "DuocLayTuKhoDMQG": "0",
                "DuongDanTaiTepTin": "https://files.example.vn/a.pdf",
            },
            {"DuocSoHoa": "1", "DuocTaiSuDung": "1", "DuocLayTuKhoDMQG": "1"},
            {"DuocSoHoa": "0", "DuocTaiSuDung": "2", "DuocLayTuKhoDMQG": "0"},
            {"DuocSoHoa": "1", "DuocTaiSuDung": "1", "IsDeleted": "1"},
        ],
        DanhSachLePhi=[{"Gia": "0"}, {"Gia": "150000"}],
        HoSoCoThanhPhanSoHoa="1",  # a summary flag: not read
        TaiKhoanDuocXacThucVoiVNeID="0",  # hard-coded by the .NET sender: not read
    )
    assert received_index(body) == {
        "components": 3,
        "components_digitised": 2,
        "components_reused": 2,
        "components_from_data_store": 1,
        "fee_due": True,
    }


@pytest.mark.parametrize(
    "lists",
    [
        {},  # absent
        {"TaiLieuNop": [], "DanhSachLePhi": [], "DanhSachGiayToKetQua": []},  # OpenCPS
        {"TaiLieuNop": None, "DanhSachLePhi": "x"},
        {"DanhSachLePhi": [{"Gia": "0"}, {"Gia": ""}]},  # no fee above zero: unknown, not false
    ],
)
def test_missing_or_empty_lists_are_unknown_not_zero(lists: dict[str, Any]) -> None:
    body = {k: v for k, v in snapshot().items() if k != "TaiLieuNop"}
    body.update(lists)
    assert received_index(body) == {}
    assert returned_index(body) == {}


def test_e_result_needs_a_result_file_that_is_not_a_submitted_one() -> None:
    submitted = [{"DuongDanTaiTepTin": "https://files.example.vn/don.pdf"}]
    own = [{"DuongDanTepTinKetQua": "https://files.example.vn/giay-phep.pdf"}]
    # The .NET fallback: no result file, so the first submitted file is listed as the result.
    fallback = [{"DuongDanTepTinKetQua": "https://files.example.vn/don.pdf"}]
    body = snapshot(TaiLieuNop=submitted, DanhSachGiayToKetQua=own)
    assert returned_index(body) == {"e_result": True}
    assert returned_index(snapshot(TaiLieuNop=submitted, DanhSachGiayToKetQua=fallback)) == {}
    assert returned_index(snapshot(DanhSachGiayToKetQua=[{"DuongDanTepTinKetQua": ""}])) == {}
