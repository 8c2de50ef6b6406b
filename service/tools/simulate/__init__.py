"""A simulated public administration service center, for the demo, tests and benchmarks:
`center` (its sample agencies and procedures, its behaviour, the event stream it sends),
`portal` (the same as the national portal's sync bodies) and `run` (`motcua simulate`).
"""

from service.tools.simulate.center import (
    AGENCIES,
    Agency,
    IndexRates,
    Procedure,
    SimulationConfig,
    SimulationError,
    catalog,
    generate,
)
from service.tools.simulate.portal import (
    PROGRESS_SERVICE,
    SYNC_BATCH,
    department_name,
    national_sync_progress,
    national_sync_snapshots,
    sample_units_csv,
)
from service.tools.simulate.run import DEMO_LIVE_DUE, FORMATS, TokenBucket, paced, run_simulation

__all__ = [
    "AGENCIES",
    "DEMO_LIVE_DUE",
    "FORMATS",
    "PROGRESS_SERVICE",
    "SYNC_BATCH",
    "Agency",
    "IndexRates",
    "Procedure",
    "SimulationConfig",
    "SimulationError",
    "TokenBucket",
    "catalog",
    "department_name",
    "generate",
    "national_sync_progress",
    "national_sync_snapshots",
    "paced",
    "run_simulation",
    "sample_units_csv",
]
