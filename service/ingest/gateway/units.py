"""Reference data: which motcua agency a national-sync unit belongs to (MOTCUA_UNITS_FILE).

A CSV with the header `unit,agency`; `unit` is matched against the snapshot's `MaDinhDanh`
(unit identifier code) first, else its `DonViXuLy` (unit name), exactly after Unicode NFC
normalization, case folding and collapsing white space (a name typed in decomposed Unicode,
NFD, is the same name). The file is re-read when it changes. No file means every unit is unknown.
"""

from __future__ import annotations

import csv
import io

from service.ingest.gateway.reference_file import ReferenceFile
from service.reference import Departments, DepartmentsError, fold_name, parse_departments


class UnitsFileError(ValueError):
    """The units file cannot be used; str(e) names the file and line."""


def parse_units(text: str, origin: str = "units file") -> dict[str, str]:
    """{folded unit: agency code} from the CSV text."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    names = [h.strip().lower() for h in header or []]
    # An optional third column names departments (service/reference.py); agencies ignore it.
    if names not in (["unit", "agency"], ["unit", "agency", "department"]):
        raise UnitsFileError(f"{origin}: the first line must be the header `unit,agency`")
    out: dict[str, str] = {}
    for number, row in enumerate(reader, 2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(names) or not row[0].strip() or not row[1].strip():
            raise UnitsFileError(f"{origin} line {number}: expected `unit,agency`")
        unit, agency = fold_name(row[0]), row[1].strip()
        if unit in out and out[unit] != agency:
            raise UnitsFileError(f"{origin} line {number}: the unit is mapped twice")
        out[unit] = agency
    return out


class UnitsFile(ReferenceFile[dict[str, str]]):
    """The units file (see the module doc)."""

    KIND = "units"
    ENCODING = "utf-8-sig"
    Error = UnitsFileError

    def _parse(self, text: str, origin: str) -> dict[str, str]:
        return parse_units(text, origin)

    def _empty(self) -> dict[str, str]:
        return {}

    def __len__(self) -> int:
        return len(self._content)

    def agency_for(self, unit_code: str | None, unit_name: str | None) -> str | None:
        """The agency of the unit: by MaDinhDanh if the file lists it, else by DonViXuLy."""
        units = self.content
        for key in (unit_code, unit_name):
            if key:
                agency = units.get(fold_name(key))
                if agency is not None:
                    return agency
        return None


class DepartmentsFile(ReferenceFile[Departments]):
    """The units file's departments (its optional third column), for the progress rows;
    read again when the file changes. The units check above reports a file that cannot be
    read."""

    KIND = "units"
    ENCODING = "utf-8-sig"
    Error = DepartmentsError

    def _parse(self, text: str, origin: str) -> Departments:
        return Departments(parse_departments(text, origin))

    def _empty(self) -> Departments:
        return Departments()
