"""Reference data shared by the gateway and the worker: the departments in the units file.

The units file (MOTCUA_UNITS_FILE, CSV) has the header `unit,agency` and an optional third
column `department`. A row with a department names a department (phòng ban) of that agency:
its `unit` is the department's name as the national sync writes it (`PhongBanXuLy`), its
`department` the code events carry. The departments listed are the only ones metrics name
(the others count as `other`), so the file bounds the label set.
"""

from __future__ import annotations

import csv
import io
import logging
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

# The label of a department the units file does not list.
OTHER_DEPARTMENT = "other"

log = logging.getLogger(__name__)


class DepartmentsError(ValueError):
    """The units file's department column cannot be used; str(e) names the file and line."""


def fold_name(text: str) -> str:
    """A unit or department name as compared, everywhere a name is matched: Unicode NFC
    (a name typed in decomposed form, NFD, is the same name), case folded, whitespace
    collapsed. NFC again after folding, because case folding can decompose."""
    folded = " ".join(unicodedata.normalize("NFC", text).split()).casefold()
    return unicodedata.normalize("NFC", folded)


def parse_departments(text: str, origin: str = "units file") -> dict[str, tuple[str, str]]:
    """{folded department name: (agency, department code)} from the units CSV text; empty
    when the file has no `department` column."""
    reader = csv.reader(io.StringIO(text))
    header = [cell.strip().lower() for cell in next(reader, [])]
    if header[:2] != ["unit", "agency"] or header[2:] not in ([], ["department"]):
        raise DepartmentsError(
            f"{origin}: the first line must be the header `unit,agency` or `unit,agency,department`"
        )
    out: dict[str, tuple[str, str]] = {}
    if len(header) == 2:
        return out
    for number, row in enumerate(reader, 2):
        if len(row) < 3 or not row[2].strip():
            continue  # an agency's own row
        name, agency, department = fold_name(row[0]), row[1].strip(), row[2].strip()
        if not name or not agency:
            raise DepartmentsError(f"{origin} line {number}: expected `unit,agency,department`")
        if out.get(name, (agency, department)) != (agency, department):
            raise DepartmentsError(f"{origin} line {number}: the department is listed twice")
        out[name] = (agency, department)
    return out


@dataclass
class Departments:
    """The departments the units file lists, by name and by (agency, code)."""

    by_name: dict[str, tuple[str, str]] = field(default_factory=dict)
    _known: frozenset[tuple[str, str]] = field(init=False, default=frozenset())
    _logged: set[tuple[str, str]] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self._known = frozenset(self.by_name.values())

    @classmethod
    def load(cls, path: Path | None) -> Departments:
        """The departments of the units file at `path` (none without a file)."""
        if path is None:
            return cls()
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DepartmentsError(f"cannot read the units file {path}: {exc}") from None
        return cls(parse_departments(text, str(path)))

    def __len__(self) -> int:
        return len(self._known)

    def find(self, name: str | None) -> tuple[str, str] | None:
        """(agency, department code) of a department by its name (`PhongBanXuLy`)."""
        return self.by_name.get(fold_name(name)) if name else None

    def label(self, agency: str, department: str) -> str:
        """The metric label of a department: its code if listed for that agency (or the
        `none` of a dossier holding no step), else `other`, logged once per code."""
        if (agency, department) in self._known or department == "none":
            return department
        if (agency, department) not in self._logged:
            self._logged.add((agency, department))
            log.warning(
                "department %r of agency %r is not in the units file; counted as %r",
                department,
                agency,
                OTHER_DEPARTMENT,
            )
        return OTHER_DEPARTMENT
