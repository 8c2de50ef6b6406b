"""The domain core: the working calendar, the dossier clock and the rules. No I/O."""

from service.domain.calendar import DEFAULT_CALENDAR, LOCAL_TZ, CalendarError, WorkingCalendar
from service.domain.clock import OpenState, Outcome
from service.domain.dossier import Dossier, Key, contribution, fold, next_change_at, open_state

__all__ = [
    "DEFAULT_CALENDAR",
    "LOCAL_TZ",
    "CalendarError",
    "Dossier",
    "Key",
    "OpenState",
    "Outcome",
    "WorkingCalendar",
    "contribution",
    "fold",
    "next_change_at",
    "open_state",
]
