"""The national portal's dossier sync (DongBoHoSoMC) as contract events: a pure mapping.

Provincial one-stop systems push every dossier to the national public-service portal (Cổng
Dịch vụ công quốc gia) as a snapshot: codes, local times `yyyyMMddHHmmss` and a status
`TrangThaiHoSo`. `map_dossier` turns one snapshot into the contract events it implies, or
raises `UnmappableDossier` with a reason code and a sentence. Successive snapshots of one
dossier become successive events: what a snapshot can only imply (a pause, a resume, a new
appointment, a refusal without a date) is dated at the snapshot's receipt and given an id
derived from values, so the mapping stays stateless and the worker's fold decides. A source's
`SyncProfile` says what its codes mean where senders differ. Only the fields named in
`_READ_FIELDS` are ever read: the snapshot's personal data (ChuHoSo, SoGiayToChuHoSo,
DinhDanhCHS, SoDienThoai, Email, …) is never touched, so it cannot leak into an event or a
sentence (MaDoiTuong is only tested for presence; of the file, fee and result lists only
flags and amounts are read, and links compared).
docs/national-sync-mapping.md is the mapping table and its sources.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol

from schemas import DossierEvent, EventType, InvalidEvent, Reason, event_from_dict
from service.domain.calendar import LOCAL_TZ

# The snapshot fields the mapping reads; nothing else of the object is looked at.
_READ_FIELDS = (
    "MaHoSo",
    "MaTTHC",
    "KenhThucHien",
    "TrangThaiHoSo",
    "NgayTiepNhan",
    "NgayHenTra",
    "NgayKetThucXuLy",
    "NgayTra",
    "NgayTuChoi",
    "NgayYeuCauBoSung",
    "DonViXuLy",
    "MaDinhDanh",
    "MaDoiTuong",
    "DanhSachHoSoBoSung",
)
# Of each supplement cycle (DanhSachHoSoBoSung entry), only these.
_SUPPLEMENT_FIELDS = ("NgayBoSung", "NgayTiepNhanBoSung", "NgayHenTraMoi")
# The index fields come from TaiLieuNop, DanhSachLePhi and DanhSachGiayToKetQua: of each
# entry only flags and amounts; file links are compared (a "result" that is a submitted file
# is not an e-result), never kept. A longer list is not believed.
_MAX_LIST = 500

# A unit name or code longer than this is not one; it is not echoed either way.
_MAX_UNIT = 300
_MAX_SUPPLEMENT_CYCLES = 50


class SyncReason(enum.StrEnum):
    """Why a snapshot cannot be mapped, beyond the contract's own reasons (schemas.Reason)."""

    UNKNOWN_STATUS = "unknown_status"
    UNKNOWN_UNIT = "unknown_unit"
    BAD_DATE = "bad_date"
    MISSING_DATE = "missing_date"


class TrangThaiHoSo(enum.IntEnum):
    """The national portal's dossier status codes."""

    NEW_REGISTRATION = 1  # mới đăng ký
    RECEIVED = 2  # được tiếp nhận
    NOT_ACCEPTED = 3  # không được tiếp nhận
    PROCESSING = 4  # đang xử lý
    SUPPLEMENT_REQUESTED = 5  # yêu cầu bổ sung giấy tờ
    FINANCIAL_OBLIGATION = 6  # yêu cầu thực hiện nghĩa vụ tài chính
    WITHDRAWN = 7  # công dân yêu cầu rút hồ sơ
    STOPPED = 8  # dừng xử lý
    FINISHED = 9  # đã xử lý xong
    RETURNED = 10  # đã trả kết quả


# KenhThucHien: 1 direct (trực tiếp), 2 online (trực tuyến), 3 public postal service (BCCI).
_CHANNELS = MappingProxyType({"1": "direct", "2": "online", "3": "postal"})


class UnmappableDossier(ValueError):
    """A snapshot that gives no valid events. `detail` never quotes a personal field."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class UnitDirectory(Protocol):
    """Reference data: the motcua agency code of a unit (MaDinhDanh first, else DonViXuLy)."""

    def agency_for(self, unit_code: str | None, unit_name: str | None) -> str | None: ...


class ProcedureCatalogue(Protocol):
    """Reference data: a procedure's time limit in working days, if the catalogue has it."""

    def working_days(self, procedure: str) -> int | None: ...


class NoCatalogue:
    """No procedure catalogue configured: no time limit is known."""

    def working_days(self, procedure: str) -> int | None:
        return None


class Meaning(enum.StrEnum):
    """What a status code says about the dossier, for the mapping (a profile may override)."""

    NOT_RECEIVED = "not_received"  # no clock started (1; 3 without a receipt)
    RUNNING = "running"  # received, in progress (2, 4, 6)
    PAUSED = "paused"  # waiting for the citizen (5)
    FINISHED = "finished"  # processing finished (9)
    RETURNED = "returned"  # result returned (10)
    WITHDRAWN = "withdrawn"  # 7
    REJECTED = "rejected"  # refused after receipt (3) or processing stopped (8)


# The national codes' meanings (docs/national-sync-mapping.md).
NATIONAL_MEANINGS: Mapping[int, Meaning] = MappingProxyType(
    {
        1: Meaning.NOT_RECEIVED,
        2: Meaning.RUNNING,
        3: Meaning.REJECTED,
        4: Meaning.RUNNING,
        5: Meaning.PAUSED,
        6: Meaning.RUNNING,
        7: Meaning.WITHDRAWN,
        8: Meaning.REJECTED,
        9: Meaning.FINISHED,
        10: Meaning.RETURNED,
    }
)


@dataclass(frozen=True, slots=True)
class SyncProfile:
    """How one source's snapshots are read where the senders differ (deploy/gateway/sources.toml).

    `default_channel`: the channel when KenhThucHien is absent (None: such a dossier is
    refused `bad_channel`). `online_if_applicant_account`: a non-empty MaDoiTuong (the
    applicant's national-portal account, which the senders fill only for online dossiers)
    means online. `statuses`: meanings that replace the national ones, by code.
    `finished_without_date`: what a 9 without NgayKetThucXuLy means: refused `missing_date`
    (None), or `Meaning.PAUSED` (the .NET sender's rewrite of its local 5, 6 and 8).
    """

    default_channel: str | None = None
    online_if_applicant_account: bool = False
    statuses: Mapping[int, Meaning] = field(default_factory=lambda: MappingProxyType({}))
    finished_without_date: Meaning | None = None

    def meaning(self, status: TrangThaiHoSo) -> Meaning:
        return self.statuses.get(status.value) or NATIONAL_MEANINGS[status.value]


DEFAULT_PROFILE = SyncProfile()


@dataclass(frozen=True, slots=True)
class MappedDossier:
    """The contract events one snapshot gives; empty for a dossier not (yet) received."""

    dossier_id: str
    status: TrangThaiHoSo
    events: tuple[DossierEvent, ...]


# yyyyMMddHHmmss, as both systems format every dossier time (Asia/Ho_Chi_Minh).
_COMPACT = re.compile(r"[0-9]{14}")
# Newtonsoft's default for a .NET DateTime (the .NET DTO types the supplement times so):
# local time, optional fraction, optional offset.
_ISO_LOCAL = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,7})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)


def _convertible(moment: datetime) -> datetime:
    """`moment`, once it is known to have a local time (event ids are local times):
    OverflowError for one whose offset moves it before year 1 or past 9999."""
    moment.astimezone(LOCAL_TZ)
    return moment


def parse_local_time(value: Any, field: str) -> datetime | None:
    """A snapshot time as an aware datetime; None when absent (missing, null or "")."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise UnmappableDossier(SyncReason.BAD_DATE, f"{field} must be a yyyyMMddHHmmss string")
    try:
        if _COMPACT.fullmatch(value):
            return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=LOCAL_TZ)
        iso = _ISO_LOCAL.fullmatch(value)
        if iso is not None:
            text = value.replace("Z", "+00:00")
            fraction = iso.group(1)
            if fraction and len(fraction) > 7:  # Python keeps microseconds
                text = text.replace(fraction, fraction[:7], 1)
            parsed = datetime.fromisoformat(text)
            return _convertible(parsed if parsed.tzinfo else parsed.replace(tzinfo=LOCAL_TZ))
    except (ValueError, OverflowError):
        pass  # e.g. month 13, or year 1 with an offset: the same sentence as any bad date
    raise UnmappableDossier(
        SyncReason.BAD_DATE, f"{field} is not a valid yyyyMMddHHmmss time (Asia/Ho_Chi_Minh)"
    )


def compact_time(moment: datetime) -> str:
    """yyyyMMddHHmmss in local time: the time part of a mapped event's id."""
    return moment.astimezone(LOCAL_TZ).strftime("%Y%m%d%H%M%S")


def event_id(dossier_id: str, kind: EventType, moment: datetime) -> str:
    """Deterministic: a re-sent snapshot yields the same ids, which the worker drops as
    duplicates. At most 64 + 1 + 20 + 1 + 14 = 100 characters (the contract allows 128)."""
    return f"{dossier_id}:{kind.value}:{compact_time(moment)}"


def inferred_id(dossier_id: str, kind: EventType, received: datetime) -> str:
    """An event a snapshot only implies, dated at the snapshot's receipt: one per dossier,
    kind and local day, so the re-sends of a day are duplicates (at most 64 + 1 + 20 + 5 + 8
    = 98 characters)."""
    return f"{dossier_id}:{kind.value}:day-{compact_time(received)[:8]}"


def appointment_id(dossier_id: str, due_at: datetime) -> str:
    """A new appointment (a changed NgayHenTra): one event per dossier and value."""
    return f"{dossier_id}:{EventType.SUPPLEMENT_RECEIVED.value}:due-{compact_time(due_at)}"


def _code_text(value: Any) -> str:
    """A small code sent as a string or a number ("9" or 9), as text; "" for anything else."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    return str(value).strip()


def _status(value: Any) -> TrangThaiHoSo:
    text = _code_text(value)
    if text.isdigit() and len(text) <= 2:
        try:
            return TrangThaiHoSo(int(text))
        except ValueError:
            pass
    raise UnmappableDossier(
        SyncReason.UNKNOWN_STATUS, "TrangThaiHoSo must be one of the national codes 1–10"
    )


def _dossier_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UnmappableDossier(Reason.BAD_DOSSIER_ID, "MaHoSo must be a non-empty string")
    return value


def _channel(value: Any, applicant_account: Any, profile: SyncProfile) -> str:
    text = _code_text(value)
    if text in _CHANNELS:
        return _CHANNELS[text]
    if text == "":  # absent: what else the body says, else the source's default
        has_account = isinstance(applicant_account, str) and applicant_account.strip() != ""
        if profile.online_if_applicant_account and has_account:
            return _CHANNELS["2"]
        if profile.default_channel is not None:
            return profile.default_channel
    raise UnmappableDossier(
        Reason.BAD_CHANNEL,
        "KenhThucHien must be 1 (direct), 2 (online) or 3 (postal); the source's profile"
        " gives no default channel",
    )


def _unit_field(value: Any) -> str | None:
    if isinstance(value, str) and value.strip() and len(value) <= _MAX_UNIT:
        return value.strip()
    return None


def _supplement_cycles(value: Any) -> list[Mapping[str, Any]]:
    if value is None or value == "":
        return []
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        raise UnmappableDossier(
            SyncReason.BAD_DATE, "DanhSachHoSoBoSung must be a list of supplement objects"
        )
    if len(value) > _MAX_SUPPLEMENT_CYCLES:
        raise UnmappableDossier(
            SyncReason.BAD_DATE,
            f"DanhSachHoSoBoSung has more than {_MAX_SUPPLEMENT_CYCLES} supplement cycles",
        )
    return value


def _entries(snapshot: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    """A list's object entries; [] when absent, empty, malformed or implausibly long (all
    unknown: both senders send lists they never fill, so an empty list proves nothing)."""
    value = snapshot.get(name)
    if not isinstance(value, list) or len(value) > _MAX_LIST:
        return []
    return [entry for entry in value if isinstance(entry, dict)]


def _flag(value: Any) -> bool:
    """Set when "1", 1 or true; anything else ("0", "", null) is not set."""
    return value is True or _code_text(value) == "1"


def _deleted(entry: Mapping[str, Any]) -> bool:
    return entry.get("IsDeleted") is True or _code_text(entry.get("IsDeleted")) == "1"


def _amount(value: Any) -> float:
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", ""))
        except ValueError:
            return 0.0
    return 0.0


def received_index(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The QĐ 766 index fields of `received` the body's lists prove (contract additions of
    issue 18; absent means unknown, never false or zero).

    - components from `TaiLieuNop` (the files not deleted), with `DuocSoHoa`,
      `DuocTaiSuDung` (1 or 2: reused) and `DuocLayTuKhoDMQG` per component; an empty list
      gives nothing.
    - `fee_due` true when a `DanhSachLePhi` entry has `Gia` > 0. Never false: the .NET
      sender lists only paid fees, OpenCPS none.
    The summary flags (`HoSoCoThanhPhanSoHoa`, `TaiKhoanDuocXacThucVoiVNeID`,
    `DuocThanhToanTrucTuyen`) are not read: docs/national-sync-mapping.md says why.
    """
    out: dict[str, Any] = {}
    files = [entry for entry in _entries(snapshot, "TaiLieuNop") if not _deleted(entry)]
    if files:
        out["components"] = len(files)
        out["components_digitised"] = sum(_flag(f.get("DuocSoHoa")) for f in files)
        out["components_reused"] = sum(
            _code_text(f.get("DuocTaiSuDung")) in ("1", "2") for f in files
        )
        out["components_from_data_store"] = sum(_flag(f.get("DuocLayTuKhoDMQG")) for f in files)
    if any(_amount(fee.get("Gia")) > 0 for fee in _entries(snapshot, "DanhSachLePhi")):
        out["fee_due"] = True
    return out


def returned_index(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """`e_result` (issue 18) for `returned`: true when `DanhSachGiayToKetQua` lists a result
    file that is not one of the submitted files (the .NET sender, lacking a result file,
    lists the first submitted file as the result). Absent otherwise: unknown."""
    submitted = {
        f.get("DuongDanTaiTepTin")
        for f in _entries(snapshot, "TaiLieuNop")
        if isinstance(f.get("DuongDanTaiTepTin"), str)
    }
    for result in _entries(snapshot, "DanhSachGiayToKetQua"):
        link = result.get("DuongDanTepTinKetQua")
        if isinstance(link, str) and link.strip() and link not in submitted:
            return {"e_result": True}
    return {}


class _Builder:
    """Collects a dossier's events as contract dicts, validated at the end."""

    def __init__(self, dossier_id: str) -> None:
        self.dossier_id = dossier_id
        self.items: list[dict[str, Any]] = []

    def add(
        self, kind: EventType, moment: datetime, given_id: str | None = None, **fields: Any
    ) -> None:
        self.items.append(
            {
                "event_id": given_id or event_id(self.dossier_id, kind, moment),
                "dossier_id": self.dossier_id,
                "type": kind.value,
                "occurred_at": moment.isoformat(),
                **{k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()},
            }
        )

    def validated(self, now: datetime | None) -> tuple[DossierEvent, ...]:
        """The same validation as the worker's; a failure rejects the whole snapshot, so a
        dossier's events are produced together or not at all."""
        out: list[DossierEvent] = []
        seen: set[str] = set()
        for item in self.items:
            if item["event_id"] in seen:  # two cycles dated the same second: one event
                continue
            seen.add(item["event_id"])
            try:
                out.append(event_from_dict(item, now))
            except InvalidEvent as exc:
                raise UnmappableDossier(exc.reason, f"{item['type']}: {exc.detail}") from None
        return tuple(out)


def map_dossier(
    snapshot: Any,
    units: UnitDirectory,
    now: datetime | None = None,
    profile: SyncProfile = DEFAULT_PROFILE,
    procedures: ProcedureCatalogue | None = None,
) -> MappedDossier:
    """The contract events a DongBoHoSoMC dossier object implies (docs/national-sync-mapping.md).

    `now` is the snapshot's receipt: the time of what the snapshot only implies, and the
    instant the future-timestamp rule is checked against (default: the wall clock).
    Raises UnmappableDossier.
    """
    if not isinstance(snapshot, dict):
        raise UnmappableDossier(Reason.NOT_OBJECT, "each dossier must be a JSON object")
    get = {name: snapshot.get(name) for name in _READ_FIELDS}.get
    dossier_id = _dossier_id(get("MaHoSo"))
    status = _status(get("TrangThaiHoSo"))
    meaning = profile.meaning(status)
    build = _Builder(dossier_id)
    if meaning is Meaning.NOT_RECEIVED:
        return MappedDossier(dossier_id, status, ())
    received_at = parse_local_time(get("NgayTiepNhan"), "NgayTiepNhan")
    if received_at is None:
        if status is TrangThaiHoSo.NOT_ACCEPTED:  # refused at the counter: never received
            return MappedDossier(dossier_id, status, ())
        raise UnmappableDossier(
            SyncReason.MISSING_DATE,
            f"TrangThaiHoSo {status.value} needs NgayTiepNhan (the receipt time)",
        )
    snapshot_at = now or datetime.now(UTC)
    finished_at = parse_local_time(get("NgayKetThucXuLy"), "NgayKetThucXuLy")
    if meaning is Meaning.FINISHED and finished_at is None:
        if profile.finished_without_date is None:
            raise UnmappableDossier(
                SyncReason.MISSING_DATE,
                f"TrangThaiHoSo {status.value} needs NgayKetThucXuLy (processing finished)",
            )
        meaning = profile.finished_without_date
    due_at = parse_local_time(get("NgayHenTra"), "NgayHenTra")
    procedure = get("MaTTHC")
    if not isinstance(procedure, str) or not procedure.strip():
        raise UnmappableDossier(Reason.MISSING_PROCEDURE, "MaTTHC (procedure code) is missing")
    channel = _channel(get("KenhThucHien"), get("MaDoiTuong"), profile)
    unit_code, unit_name = _unit_field(get("MaDinhDanh")), _unit_field(get("DonViXuLy"))
    if unit_code is None and unit_name is None:
        raise UnmappableDossier(
            SyncReason.UNKNOWN_UNIT, "neither MaDinhDanh nor DonViXuLy names the unit"
        )
    agency = units.agency_for(unit_code, unit_name)
    if agency is None:
        raise UnmappableDossier(
            SyncReason.UNKNOWN_UNIT,
            "the unit (MaDinhDanh, else DonViXuLy) is not in the units file (MOTCUA_UNITS_FILE)",
        )
    due: dict[str, Any] = {}
    if due_at is not None:
        due["due_at"] = due_at
    else:  # the portal's rule: no appointment, the procedure's time limit (else no due, R11)
        days = (procedures or NoCatalogue()).working_days(procedure)
        if days is not None:
            due["processing_days"] = days
    build.add(
        EventType.RECEIVED,
        received_at,
        agency=agency,
        procedure=procedure,
        channel=channel,
        **due,
        **received_index(snapshot),
    )

    latest = received_at  # the last time the snapshot carries
    cycles = _supplement_cycles(snapshot.get("DanhSachHoSoBoSung"))
    for number, cycle in enumerate(cycles, 1):
        times = {name: cycle.get(name) for name in _SUPPLEMENT_FIELDS}
        where = f"DanhSachHoSoBoSung[{number}]"
        requested = parse_local_time(times["NgayBoSung"], f"{where}.NgayBoSung")
        if requested is None:
            raise UnmappableDossier(
                SyncReason.MISSING_DATE, f"{where} needs NgayBoSung (the request time)"
            )
        build.add(EventType.SUPPLEMENT_REQUESTED, requested)
        latest = max(latest, requested)
        completed = parse_local_time(times["NgayTiepNhanBoSung"], f"{where}.NgayTiepNhanBoSung")
        if completed is not None:
            new_due = parse_local_time(times["NgayHenTraMoi"], f"{where}.NgayHenTraMoi")
            extra: dict[str, Any] = {"due_at": new_due} if new_due is not None else {}
            build.add(EventType.SUPPLEMENT_RECEIVED, completed, **extra)
            latest = max(latest, completed)

    returned_at = parse_local_time(get("NgayTra"), "NgayTra")
    refused_at = parse_local_time(get("NgayTuChoi"), "NgayTuChoi")
    if refused_at is not None or meaning is Meaning.REJECTED:
        rejected_at = refused_at or finished_at
        if rejected_at is None:  # e.g. OpenCPS's 3 after a receipt: no refusal date is sent
            build.add(
                EventType.REJECTED,
                snapshot_at,
                inferred_id(dossier_id, EventType.REJECTED, snapshot_at),
            )
        else:
            build.add(EventType.REJECTED, rejected_at)
    elif meaning is Meaning.RUNNING:
        # A snapshot in progress: the clock runs now. A pause inferred earlier ends here;
        # a NgayHenTra not seen before is the appointment in force from now (R2).
        build.add(
            EventType.SUPPLEMENT_RECEIVED,
            snapshot_at,
            inferred_id(dossier_id, EventType.SUPPLEMENT_RECEIVED, snapshot_at),
        )
        if due_at is not None:
            build.add(
                EventType.SUPPLEMENT_RECEIVED,
                snapshot_at,
                appointment_id(dossier_id, due_at),
                due_at=due_at,
            )
    elif meaning is Meaning.PAUSED and not any(
        cycle.get("NgayTiepNhanBoSung") in (None, "") for cycle in cycles
    ):
        # The .NET query's own request time when it is there; else the snapshot's receipt.
        requested = parse_local_time(get("NgayYeuCauBoSung"), "NgayYeuCauBoSung")
        if requested is not None:
            build.add(EventType.SUPPLEMENT_REQUESTED, requested)
        else:
            build.add(
                EventType.SUPPLEMENT_REQUESTED,
                snapshot_at,
                inferred_id(dossier_id, EventType.SUPPLEMENT_REQUESTED, snapshot_at),
            )
    elif meaning in (Meaning.FINISHED, Meaning.RETURNED):
        # A returned dossier without an end of processing ended by its return at the latest.
        approved_at = finished_at or returned_at
        if approved_at is None:
            raise UnmappableDossier(
                SyncReason.MISSING_DATE, "TrangThaiHoSo 10 needs NgayTra (result returned)"
            )
        build.add(EventType.APPROVED, approved_at)
    if meaning is Meaning.RETURNED:
        if returned_at is None:
            raise UnmappableDossier(
                SyncReason.MISSING_DATE, "TrangThaiHoSo 10 needs NgayTra (result returned)"
            )
        build.add(EventType.RETURNED, returned_at, **returned_index(snapshot))
    if meaning is Meaning.WITHDRAWN:
        withdrawn_at = finished_at or returned_at
        if withdrawn_at is not None:
            build.add(EventType.WITHDRAWN, withdrawn_at)
        else:  # no date sent: withdrawn by the snapshot, and after every time it carries
            when = max(latest, snapshot_at)
            build.add(EventType.WITHDRAWN, when, inferred_id(dossier_id, EventType.WITHDRAWN, when))
    return MappedDossier(dossier_id, status, build.validated(now))
