"""Sums changed one dossier at a time, for tests of what renders them (metrics, queues,
departments): the worker itself changes them only by committing transactions
(Ledger.commit); this is the same arithmetic for a dossier in hand."""

from __future__ import annotations

from datetime import datetime

from service.domain import Dossier, contribution
from service.domain.report import DossierFacts
from service.state.ledger import Ledger, StatusChange


def accept(
    ledger: Ledger,
    partition: int,
    dossier: Dossier,
    now: datetime,
    facts: DossierFacts | None = None,
    before: Dossier | None = None,
    before_facts: DossierFacts | None = None,
) -> StatusChange | None:
    """`dossier` (with its `facts`) changed from `before` (with `before_facts`) in a partition
    `ledger` counts now."""
    assert partition in ledger.owned(), f"partition {partition} is not counted here"
    sums = ledger.partitions[partition]
    if facts is not None and dossier.closed_by is None:
        sums.facts[dossier.dossier_id] = facts
    was_closed = before is not None and before.closed_by is not None
    if was_closed:
        assert before is not None
        sums.closed.subtract(contribution(before, now, ledger.calendar))
        if before_facts is not None:
            sums.history.add(before_facts, -1)
    change = sums.count(dossier, now)
    if dossier.closed_by is not None:
        sums.closed.update(contribution(dossier, now, ledger.calendar))
        sums.closed = +sums.closed
        if facts is not None:
            sums.history.add(facts)
    return None if was_closed else change
