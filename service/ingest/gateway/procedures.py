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

from schemas.events import MAX_PROCESSING_DAYS
from service.ingest.gateway.reference_file import ReferenceFile


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


class ProceduresFile(ReferenceFile[dict[str, int]]):
    """The procedures file, re-read when it changes."""

    KIND = "procedures"
    ENCODING = "utf-8-sig"
    Error = ProceduresFileError

    def _parse(self, text: str, origin: str) -> dict[str, int]:
        return parse_procedures(text, origin)

    def _empty(self) -> dict[str, int]:
        return {}

    def __len__(self) -> int:
        return len(self._content)

    def working_days(self, procedure: str) -> int | None:
        """The procedure's time limit in working days, if the file lists it."""
        return self.content.get(procedure.strip())
