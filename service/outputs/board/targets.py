"""The targets the board colours figures against (the seeds' figures; configurable).

A TOML file overrides any of them, as shares from 0 to 1:

    overdue_max = 0.10   # overdue now / in progress (Khánh Hòa reached < 2%)
    on_time_min = 1.0    # resolved early or on time / resolved (Lâm Đồng: 100%)
    early_min = 0.90     # resolved early / resolved (Lâm Đồng: at least 90%)
    online_min = 0.25    # received online / received (Bắc Giang: 25%)
    postal_min = 0.15    # received by public postal service / received (Bắc Giang: 15%)
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any


class TargetsError(ValueError):
    """The targets file is unreadable or holds something that is not a target."""


@dataclass(frozen=True)
class Targets:
    overdue_max: float = 0.10
    on_time_min: float = 1.0
    early_min: float = 0.90
    online_min: float = 0.25
    postal_min: float = 0.15

    @classmethod
    def from_file(cls, path: Path) -> Targets:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise TargetsError(f"cannot read targets file {path}: {exc}") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TargetsError(f"{path}: unknown targets {unknown}; known: {sorted(known)}")
        for name, value in data.items():
            if type(value) not in (int, float) or not 0 <= value <= 1:
                raise TargetsError(f"{path}: {name} must be a share from 0 to 1, got {value!r}")
        return cls(**{name: float(value) for name, value in data.items()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
