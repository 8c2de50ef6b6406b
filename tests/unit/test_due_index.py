"""The due index's keys (service/state/due_index.py): a due's key part is its instant's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.domain import LOCAL_TZ
from service.state.due_index import _due_prefix, due_prefix


def test_due_prefix_is_the_instants_from_its_cache() -> None:
    """Computed or cached, whatever the due's zone, the same key part for the same instant
    and keys in the instants' order."""
    due = datetime(2026, 3, 9, 23, 59, 59, tzinfo=LOCAL_TZ)
    later = due + timedelta(microseconds=1)
    for moment in (due, due.astimezone(UTC), later, due.replace(), due.replace(fold=1)):
        for _ in range(2):  # the second time from the cache
            assert due_prefix(moment) == _due_prefix(moment)
    assert due_prefix(due) == due_prefix(due.astimezone(UTC))
    assert due_prefix(due) < due_prefix(later)
