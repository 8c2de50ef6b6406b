"""`building.builder`: the function builds the value its class's constructor builds."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime

import pytest

from service.domain import Dossier, Outcome
from service.domain.building import builder
from service.domain.index import IndexFacts
from service.domain.report import DossierFacts
from service.domain.steps import CompletedStep, OpenStep

AT = datetime(2026, 3, 9, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cls", "args"),
    [
        (Dossier, ("D-1",)),
        (Dossier, ("D-1", "A", "P", None, AT, AT, None, None, Outcome.LATE, None, None)),
        (OpenStep, ("S", "A.MC", "A", AT, AT)),
        (CompletedStep, ("S", "A.MC", "A", 1.5, Outcome.ON_TIME)),
        (DossierFacts, ("A", "online", 1.0, None, None, None, b"", None)),
        (
            IndexFacts,
            (
                *("A", 1.0, True, None, None, None, None, None, None, None, None, None),
                *(False, None, None, 2.0, None, None, None),
            ),
        ),
    ],
)
def test_builder_builds_what_the_class_builds(cls: type, args: tuple[object, ...]) -> None:
    built, made = builder(cls)(*args), cls(*args)
    assert type(built) is cls
    assert built == made and hash(built) == hash(made)
    assert dataclasses.astuple(built) == dataclasses.astuple(made)
    assert pickle.loads(pickle.dumps(built)) == made
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.agency = "B"  # still frozen
