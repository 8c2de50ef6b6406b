"""The day totals' pages as history.py and codec.py built them before they worked by column
(commit 393a442): rows as dicts by day, a page encoded from its rows.

The property tests in tests/unit/test_history.py compare the column-wise production code
with this plain reading, byte for byte. Never imported by the service.
"""

from __future__ import annotations

import struct
import sys
from array import array

PAGE_DAYS = 32
_PAGE_HEAD = struct.Struct("<BBB")
_WIDE_PAGE_HEAD = struct.Struct("<BBH")

Rows = dict[int, dict[str, int]]  # day: key: total, non-zero only


def encode_page(rows: Rows) -> bytes:
    """codec.encode_page as of 393a442."""
    days = sorted(day for day, row in rows.items() if any(row.values()))
    if not days or days[0] // PAGE_DAYS != days[-1] // PAGE_DAYS:
        raise ValueError("a page holds one or more days of one page")
    keys = sorted({key for day in days for key, value in rows[day].items() if value})
    if len(keys) > 65535 or any(not key or "\n" in key for key in keys):
        raise ValueError("a page holds at most 65535 keys, none empty or with a newline")
    if len(keys) > 255:
        head = _WIDE_PAGE_HEAD.pack(2, len(days), len(keys))
    else:
        head = _PAGE_HEAD.pack(1, len(days), len(keys))
    first = days[0] // PAGE_DAYS * PAGE_DAYS
    day_rows = [rows[day] for day in days]
    values = array("i", [row.get(key, 0) for key in keys for row in day_rows])
    if sys.byteorder == "big":
        values.byteswap()
    return b"".join(
        (head, bytes(day - first for day in days), values.tobytes(), "\n".join(keys).encode())
    )


class ReferenceHistory:
    """Per agency, per day, a dict of non-zero totals."""

    def __init__(self) -> None:
        self.agencies: dict[str, Rows] = {}

    def page_rows(self, agency: str, page: int) -> Rows:
        rows = self.agencies.get(agency, {})
        return {day: dict(row) for day, row in rows.items() if day // PAGE_DAYS == page and row}

    def pages_after(
        self, changes: dict[tuple[str, int], dict[str, int]]
    ) -> dict[tuple[str, int], bytes | None]:
        """History.pages_after as of 393a442."""
        touched: dict[tuple[str, int], Rows] = {}
        for (agency, day), delta in changes.items():
            if not any(delta.values()):
                continue
            page = day // PAGE_DAYS
            rows = touched.get((agency, page))
            if rows is None:
                rows = touched[agency, page] = self.page_rows(agency, page)
            row = rows.setdefault(day, {})
            for key, value in delta.items():
                total = row.get(key, 0) + value
                if total:
                    row[key] = total
                else:
                    row.pop(key, None)
        return {
            where: encode_page(rows) if any(rows.values()) else None
            for where, rows in touched.items()
        }

    def apply(self, changes: dict[tuple[str, int], dict[str, int]]) -> None:
        for (agency, day), delta in changes.items():
            rows = self.agencies.setdefault(agency, {})
            row = rows.setdefault(day, {})
            for key, value in delta.items():
                total = row.get(key, 0) + value
                if total:
                    row[key] = total
                else:
                    row.pop(key, None)
            if not row:
                del rows[day]
            if not rows:
                del self.agencies[agency]

    def rows(self) -> list[tuple[str, int, dict[str, int]]]:
        return [
            (agency, day, self.agencies[agency][day])
            for agency in sorted(self.agencies)
            for day in sorted(self.agencies[agency])
        ]
