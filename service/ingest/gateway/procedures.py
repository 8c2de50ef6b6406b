"""Reference data: procedures' time limits (MOTCUA_PROCEDURES_FILE), for a dossier sent
without an appointment.

A CSV with the header `procedure,working_days`: the procedure code (MaTTHC) and its legal time
limit in working days (1–365). The portal's rule for a dossier with no NgayHenTra is to use
the procedure's time limit; the gateway then sends `processing_days` and the worker computes
the due (rule R1). No file, or a procedure it does not list, means no due (rule R11). The
file is re-read when it changes; a file that turns bad keeps the last good version in force.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from schemas.events import MAX_PROCESSING_DAYS


class ProceduresFileError(ValueError):
    """The procedures file cannot be used; str(e) names the file and line."""


def parse_procedures(text: str, origin: str = "procedures file") -> dict[str, int]:
    """{procedure code: working days} from the CSV text."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header] != ["procedure", "working_days"]:
        raise ProceduresFileError(
            f"{origin}: the first line must be the header `procedure,working_days`"
        )
    out: dict[str, int] = {}
    for number, row in enumerate(reader, 2):
        if not row or all(not cell.strip() for cell in row):
            continue
        code = row[0].strip() if row else ""
        days = row[1].strip() if len(row) == 2 else ""
        if not code or not days.isdigit() or not 1 <= int(days) <= MAX_PROCESSING_DAYS:
            raise ProceduresFileError(
                f"{origin} line {number}: expected `procedure,working_days` with days"
                f" 1–{MAX_PROCESSING_DAYS}"
            )
        if code in out and out[code] != int(days):
            raise ProceduresFileError(f"{origin} line {number}: the procedure is listed twice")
        out[code] = int(days)
    return out


@dataclass
class ProceduresFile:
    """The procedures file (see the module docstring)."""

    path: Path | None
    _days: dict[str, int] = field(default_factory=dict)
    _stamp: tuple[int, int] | None = None
    last_error: str | None = None

    def load(self) -> None:
        """Read the file now; ProceduresFileError if it is missing or bad (at start-up)."""
        if self.path is None:
            return
        try:
            stat = self.path.stat()
            text = self.path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProceduresFileError(
                f"cannot read the procedures file {self.path}: {exc}"
            ) from None
        self._days = parse_procedures(text, str(self.path))
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        self.last_error = None

    def _refresh(self) -> None:
        if self.path is None:
            return
        try:
            stat = self.path.stat()
        except OSError as exc:
            self.last_error = f"cannot read the procedures file: {exc.strerror or exc}"
            return
        if (stat.st_mtime_ns, stat.st_size) == self._stamp:
            return
        try:
            self.load()
        except ProceduresFileError as exc:
            self.last_error = str(exc)

    def __len__(self) -> int:
        return len(self._days)

    def working_days(self, procedure: str) -> int | None:
        """The procedure's time limit in working days, if the file lists it."""
        self._refresh()
        return self._days.get(procedure.strip())
