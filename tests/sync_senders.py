"""Both open national-sync senders' bodies, built as their source serializes them, and whole
dossier lifecycles with the counts a center would give, worked out by hand.

- The .NET system (HuanVu201/DichVuCong_KhoaLuan_PASETO): `SyncLocalDataToDVCQGService.PushData`
  posts a bare JSON array of one `HoSoDongBoDVC` (Newtonsoft.Json: properties in declaration
  order, nulls written as null, `= ""` defaults as ""). `GetData` rewrites local statuses 5, 6
  and 8 to "9" and leaves `NgayKetThucXuLy` empty; `NgayHenTra` is null when the dossier has
  none; `DinhDanhCHS` always holds one entry; `DanhSachHoSoBoSung` is always empty.
- OpenCPS (VietOpenCPS/opencps-v2): `DVCQGIntegrationActionImpl.syncData` posts
  {"session", "madonvi", "isUpdating", "data", "service"} with a `dstcode` header;
  `createSyncDossierBodyRequest` never writes `KenhThucHien`, writes missing dates as "", and
  every list empty.

Each lifecycle is a list of (when the sender posts, the dossier's state then). Times are
local (Asia/Ho_Chi_Minh), November 2026; 24/11 is a holiday but no due here depends on it.
JUDGED_AT is when the open states are judged: any moment after 2026-11-20 gives the same.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.domain.calendar import LOCAL_TZ

JUDGED_AT = datetime(2026, 12, 4, 12, 0, tzinfo=LOCAL_TZ)

# Personal data the senders carry; none of it may pass the gateway.
PII_STRINGS = ["Lê Thị Mai", "079190001234", "0903111222", "mai.le@example.vn", "TECH-5521"]

UNITS_CSV = "unit,agency\nSở Xây dựng,SXD\nSở Tư pháp,STP\n"
PROCEDURES_CSV = "procedure,working_days\n2.000001,10\n"

DOTNET_TOKEN = "dotnet-token-4c1e"
OPENCPS_SESSION = "opencps-session-91ab"
OPENCPS_DSTCODE = "VNPT-DVCQG"
SOURCES_TOML_TEMPLATE = """
[sources.dotnet-test]
answer = "portal"
finished_without_date = "paused"

[sources.opencps-test]
auth = "opencps_session"
dstcode_sha256 = "{dstcode_sha256}"
answer = "portal"
default_channel = "direct"
online_if_applicant_account = true
"""


def at(text: str) -> datetime:
    """A local time written yyyyMMddHHmm."""
    return datetime.strptime(text, "%Y%m%d%H%M").replace(tzinfo=LOCAL_TZ)


def _compact(text: str | None) -> str | None:
    return None if text is None else f"{text}00"


@dataclass(frozen=True)
class State:
    """A dossier as the sender's database holds it when it posts (times yyyyMMddHHmm)."""

    status: str  # the sender's own status code
    received: str
    due: str | None
    finished: str | None = None
    returned: str | None = None


def dotnet_object(number: str, state: State, unit: str, online: bool, procedure: str) -> Any:
    """One `HoSoDongBoDVC` as Newtonsoft.Json writes it (SyncLocalDataToDVCQGService.GetData)."""
    national = "9" if state.status in ("5", "6", "8") else state.status
    return {
        "MaHoSo": number,
        "MaTTHC": procedure,
        "TenTTHC": "Cấp giấy phép xây dựng",
        "MaLinhVuc": "G09-XD01",
        "TenLinhVuc": "Xây dựng",
        "KenhThucHien": "2" if online else "1",
        "SoGiayToChuHoSo": "079190001234",
        "ChuHoSo": "Lê Thị Mai",
        "LoaiDoiTuong": "1",
        "MaDoiTuong": "TECH-5521" if online else None,  # cleared unless online
        "ThongTinKhac": "",
        "Email": "",
        "Fax": "",
        "SoDienThoai": "0903111222",
        "TrichYeuHoSo": "Dinhkem",
        "NgayTiepNhan": _compact(state.received),
        "NgayHenTra": _compact(state.due),  # null when the dossier has no due
        "TrangThaiHoSo": national,
        "NgayTra": _compact(state.returned) or "",
        "ThongTinTra": "",
        "HinhThuc": "0",
        "NgayKetThucXuLy": _compact(state.finished) or "",
        "DonViXuLy": unit,
        "GhiChu": "",
        "TaiLieuNop": [],
        "DanhSachLePhi": [],
        "DanhSachTepDinhKemKhac": [],
        "DanhSachHoSoBoSung": [],
        "DanhSachGiayToKetQua": [],
        "NoiNopHoSo": "2",
        "HoSoCoThanhPhanSoHoa": "0",
        "TaiKhoanDuocXacThucVoiVNeID": "0",
        "DuocThanhToanTrucTuyen": "0",
        "NgayTuChoi": None,
        "DinhDanhCHS": [{"LoaiDinhDanh": "1", "SoDinhDanh": "079190001234"}],
        "NgayNopHoSo": _compact(state.received),
        "DSKetNoiCSDL": [{"MaCSDL": "7"}],
    }


def dotnet_body(number: str, state: State, unit: str, online: bool, procedure: str) -> Any:
    """PushData's body: a bare array of one dossier."""
    return [dotnet_object(number, state, unit, online, procedure)]


def opencps_object(number: str, state: State, unit: str, online: bool, procedure: str) -> Any:
    """createSyncDossierBodyRequest's object: no KenhThucHien, "" for missing dates."""
    return {
        "MaHoSo": number,
        "MaTTHC": procedure,
        "TenTTHC": "Cấp giấy phép xây dựng",
        "MaLinhVuc": "G09-XD01",
        "TenLinhVuc": "Xây dựng",
        "ChuHoSo": "Lê Thị Mai",
        "LoaiDoiTuong": "1",
        "MaDoiTuong": "TECH-5521" if online else "",  # the applicant's portal account
        "ThongTinKhac": "",
        "Email": "mai.le@example.vn",
        "Fax": "0903111222",
        "SoDienThoai": "0903111222",
        "TrichYeuHoSo": "Cấp phép xây dựng cho bà Lê Thị Mai",
        "NgayTiepNhan": _compact(state.received) or "",
        "NgayHenTra": _compact(state.due) or "",
        "TrangThaiHoSo": state.status,  # getMappingStatus: already a national code
        "NgayTra": _compact(state.returned) or "",
        "ThongTinTra": "",
        "HinhThuc": "0",
        "NgayKetThucXuLy": _compact(state.finished) or "",
        "DonViXuLy": unit,
        "GhiChu": "Cấp phép xây dựng cho bà Lê Thị Mai",
        "TaiLieuNop": [],
        "DanhSachLePhi": [],
        "DanhSachTepDinhKemKhac": [],
        "DanhSachHoSoBoSung": [],
        "DanhSachGiayToKetQua": [],
    }


def opencps_body(number: str, state: State, unit: str, online: bool, procedure: str) -> Any:
    """syncData's envelope (the dossier's first post says isUpdating "False")."""
    return {
        "session": OPENCPS_SESSION,
        "madonvi": "000.00.00.H19",
        "isUpdating": "True",
        "data": [opencps_object(number, state, unit, online, procedure)],
        "service": "DongBoHoSoMC",
    }


@dataclass(frozen=True)
class Lifecycle:
    """One dossier's posts and what the center would count for it at JUDGED_AT.

    `expected` holds (family, label values...) keys as service.domain.contribution gives
    them, worked out by hand (the reasoning is in the comment above each lifecycle).
    """

    number: str
    unit: str
    online: bool
    procedure: str
    posts: tuple[tuple[str, State], ...]  # (when posted yyyyMMddHHmm, state)
    expected: frozenset[tuple[str, ...]]


SXD = "Sở Xây dựng"
# "Sở Tư pháp" typed in decomposed Unicode (NFD), as some systems store it.
STP_NFD = unicodedata.normalize("NFD", "Sở Tư pháp")
P = "1.000948"

DOTNET = (
    # Early: finished Thu 05/11 15:00, before the due's date Fri 06/11. Re-sent unchanged.
    Lifecycle(
        "000.00.07.H19-261102-0001",
        SXD,
        False,
        P,
        (
            ("202611021000", State("2", "202611020900", "202611061700")),
            ("202611021000", State("2", "202611020900", "202611061700")),
            ("202611031000", State("4", "202611020900", "202611061700")),
            ("202611051600", State("9", "202611020900", "202611061700", "202611051500")),
            (
                "202611061000",
                State("10", "202611020900", "202611061700", "202611051500", "202611060900"),
            ),
        ),
        frozenset({("received", "SXD", "direct"), ("completed", "SXD", "early")}),
    ),
    # Local 5 sent as "9" without an end on Wed 04/11 10:00 → paused then (re-sent Thu
    # 05/11: a second request while paused changes nothing). Mon 09/11 10:00 status 4 with a
    # new appointment Thu 12/11 17:00: the day resume shifts the due by (04/11, 09/11] =
    # Thu 5, Fri 6, Mon 9 = 3 working days (Fri 06/11 → Wed 11/11 17:00), then the new
    # appointment replaces it (12/11 17:00). Finished Wed 11/11 15:00 < Thu 12/11 → early.
    # (Against the first due, Fri 06/11, it would be late.)
    Lifecycle(
        "000.00.07.H19-261102-0002",
        SXD,
        False,
        P,
        (
            ("202611021000", State("2", "202611020900", "202611061700")),
            ("202611041000", State("5", "202611020900", "202611061700")),
            ("202611051000", State("5", "202611020900", "202611061700")),
            ("202611091000", State("4", "202611020900", "202611121700")),
            ("202611111600", State("9", "202611020900", "202611121700", "202611111500")),
            (
                "202611120800",
                State("10", "202611020900", "202611121700", "202611111500", "202611111630"),
            ),
        ),
        frozenset({("received", "SXD", "direct"), ("completed", "SXD", "early")}),
    ),
    # "NgayHenTra": null and a procedure outside the catalogue: no due (rule R11), open.
    Lifecycle(
        "000.00.07.H19-261103-0003",
        SXD,
        True,
        P,
        (
            ("202611031000", State("2", "202611030900", None)),
            ("202611041000", State("4", "202611030900", None)),
        ),
        frozenset({("received", "SXD", "online"), ("open", "SXD", "no_due")}),
    ),
    # No NgayHenTra, procedure 2.000001 = 10 working days in the catalogue: received Tue
    # 03/11, due the 10th working day after = Tue 17/11 23:59:59. Finished Wed 18/11 10:00
    # → late (and it became overdue).
    Lifecycle(
        "000.00.07.H19-261103-0004",
        SXD,
        False,
        "2.000001",
        (
            ("202611031000", State("2", "202611030900", None)),
            ("202611181100", State("9", "202611030900", None, "202611181000")),
            (
                "202611181200",
                State("10", "202611030900", None, "202611181000", "202611181100"),
            ),
        ),
        frozenset(
            {
                ("received", "SXD", "direct"),
                ("completed", "SXD", "late"),
                ("became_overdue", "SXD"),
            }
        ),
    ),
    # Local 8 (a stop) sent as "9" without an end on Thu 12/11 10:00, before the due Fri
    # 13/11 17:00: paused now, never overdue.
    Lifecycle(
        "000.00.07.H19-261109-0005",
        SXD,
        False,
        P,
        (
            ("202611091000", State("2", "202611090900", "202611131700")),
            ("202611121000", State("8", "202611090900", "202611131700")),
        ),
        frozenset({("received", "SXD", "direct"), ("open", "SXD", "paused")}),
    ),
    # The unit name in NFD is Sở Tư pháp. Due Wed 04/11 17:00, still processing: overdue,
    # with no apology letter.
    Lifecycle(
        "000.00.07.H19-261102-0006",
        STP_NFD,
        True,
        P,
        (
            ("202611021000", State("2", "202611020900", "202611041700")),
            ("202611031000", State("4", "202611020900", "202611041700")),
        ),
        frozenset(
            {
                ("received", "STP", "online"),
                ("open", "STP", "overdue"),
                ("became_overdue", "STP"),
                ("overdue_without_apology", "STP"),
                # Overdue with no processing step open: held by its agency itself (R17).
                ("overdue_held", "STP", "none"),
            }
        ),
    ),
)

OPENCPS = (
    # On time: finished Mon 09/11 16:00, the due's date, before 17:00. No KenhThucHien, no
    # portal account: the profile's default channel, direct.
    Lifecycle(
        "H19.22-261102-0001",
        SXD,
        False,
        P,
        (
            ("202611021000", State("2", "202611020900", "202611091700")),
            ("202611031000", State("4", "202611020900", "202611091700")),
            ("202611091700", State("9", "202611020900", "202611091700", "202611091600")),
            ("202611091700", State("9", "202611020900", "202611091700", "202611091600")),
            (
                "202611101000",
                State("10", "202611020900", "202611091700", "202611091600", "202611100900"),
            ),
        ),
        frozenset({("received", "SXD", "direct"), ("completed", "SXD", "on_time")}),
    ),
    # 3 after an accepted 2: refused at the snapshot, Tue 03/11 10:00, before the due's date
    # Fri 06/11 → a refusal ends the clock early (rule R3).
    Lifecycle(
        "H19.22-261102-0002",
        SXD,
        False,
        P,
        (
            ("202611021000", State("2", "202611020900", "202611061700")),
            ("202611031000", State("3", "202611020900", "202611061700")),
        ),
        frozenset({("received", "SXD", "direct"), ("completed", "SXD", "early")}),
    ),
    # Withdrawn (7) with no date: withdrawn, never judged.
    Lifecycle(
        "H19.22-261102-0003",
        SXD,
        False,
        P,
        (
            ("202611021000", State("2", "202611020900", "202611101700")),
            ("202611041000", State("7", "202611020900", "202611101700")),
        ),
        frozenset({("received", "SXD", "direct"), ("withdrawn", "SXD")}),
    ),
    # NgayHenTra "" and a portal account (online). No due, then paused (5) Thu 05/11, then
    # 4 with an appointment Fri 20/11 17:00 (Mon 09/11): the dossier gets that due.
    # Finished Thu 19/11 10:00 → early; the result is not handed back yet: open, ready.
    Lifecycle(
        "H19.22-261103-0004",
        STP_NFD,
        True,
        P,
        (
            ("202611031000", State("2", "202611030900", None)),
            ("202611051000", State("5", "202611030900", None)),
            ("202611091000", State("4", "202611030900", "202611201700")),
            ("202611191100", State("9", "202611030900", "202611201700", "202611191000")),
        ),
        frozenset(
            {
                ("received", "STP", "online"),
                ("completed", "STP", "early"),
                ("open", "STP", "ready"),
            }
        ),
    ),
    # Paused (5) Thu 12/11 10:00, after the due Wed 11/11 17:00: it had become overdue;
    # paused now.
    Lifecycle(
        "H19.22-261109-0005",
        SXD,
        False,
        P,
        (
            ("202611091000", State("2", "202611090900", "202611111700")),
            ("202611121000", State("5", "202611090900", "202611111700")),
        ),
        frozenset(
            {
                ("received", "SXD", "direct"),
                ("became_overdue", "SXD"),
                ("open", "SXD", "paused"),
            }
        ),
    ),
    # NgayHenTra "" and a procedure outside the catalogue, resolved and returned without ever
    # getting a due: resolved, never judged (rule R11).
    Lifecycle(
        "H19.22-261103-0007",
        SXD,
        False,
        P,
        (
            ("202611031000", State("2", "202611030900", None)),
            ("202611101100", State("9", "202611030900", None, "202611101000")),
            (
                "202611101600",
                State("10", "202611030900", None, "202611101000", "202611101500"),
            ),
        ),
        frozenset({("received", "SXD", "direct"), ("completed_without_due", "SXD")}),
    ),
    # National 8 (processing stopped) with no date, Thu 05/11 10:00: a refusal before the
    # due's date Fri 06/11 → early.
    Lifecycle(
        "H19.22-261102-0006",
        SXD,
        False,
        P,
        (
            ("202611021000", State("4", "202611020900", "202611061700")),
            ("202611051000", State("8", "202611020900", "202611061700")),
        ),
        frozenset({("received", "SXD", "direct"), ("completed", "SXD", "early")}),
    ),
)
