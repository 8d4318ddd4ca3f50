"""Hand-made fleets: every expectation in these tests is computed by hand from these numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from simulator.config import SimConfig
from simulator.population import Population

START = datetime(2025, 5, 6, 16, 0, tzinfo=UTC)


def population(*sessions: dict) -> Population:
    """Sessions as dicts; defaults: arrives at 0, stays a day, 3-phase 32 A, 60 kWh, 20 % SoC."""
    defaults = {"arrival_s": 0, "depart_s": 86_400, "phases": 3, "max_da": 320, "battery_kwh": 60.0,
                "soc0": 0.2, "taper_soc": 0.8, "kwh0": 0.0, "complete_when_full": False, "early_unplug": False}
    rows = [{**defaults, **s} for s in sessions]
    cols = {k: np.array([r[k] for r in rows]) for k in ["point", *defaults]}
    cols["started_s"] = cols["arrival_s"].copy()
    ints = ("point", "arrival_s", "started_s", "depart_s", "max_da")
    return Population(**{k: (v.astype(np.int32) if k in ints else v) for k, v in cols.items()},)


@pytest.fixture
def small_config() -> SimConfig:
    return SimConfig(points=4, seed=7, start=START, duration_s=3600)
