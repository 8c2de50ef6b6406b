"""The domain core: the working calendar, the dossier clock and the rules. No I/O."""

from service.domain.calendar import DEFAULT_CALENDAR, LOCAL_TZ, CalendarError, WorkingCalendar
from service.domain.clock import OpenState, Outcome
from service.domain.dossier import (
    Dossier,
    Key,
    contribution,
    held_by,
    next_change_at,
    open_state,
)
from service.domain.progress import fold
from service.domain.steps import CompletedStep, OpenStep, step_marks

__all__ = [
    "DEFAULT_CALENDAR",
    "LOCAL_TZ",
    "CalendarError",
    "CompletedStep",
    "Dossier",
    "Key",
    "OpenState",
    "OpenStep",
    "Outcome",
    "WorkingCalendar",
    "contribution",
    "fold",
    "held_by",
    "next_change_at",
    "open_state",
    "step_marks",
]
