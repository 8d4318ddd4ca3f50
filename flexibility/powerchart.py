"""Pure arithmetic of the console's live chart: steered sessions' aggregate power against 8 A.

No ORM here: the caller loads the states of the sessions an activation steers, these functions
turn them into series on a time grid (the paper's figure 9: measured power, the theoretical
minimum with every session at 8 A per phase, and the level the expected shed aimed at).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from .planning import LIMIT_A, VOLTS_PER_PHASE

MIN_CURRENT_A = 0.5  # a phase carrying less than this is not in use


@dataclass(frozen=True)
class StatePoint:
    """One pushed state of a steered session, as the chart needs it."""

    session_pk: int
    at: datetime
    power_kw: float | None
    currents_a: tuple[float | None, float | None, float | None]
    charging: bool


@dataclass(frozen=True)
class PowerSeries:
    at: list[datetime]
    power_kw: list[float]
    min_8a_kw: list[float]


def state_power_kw(point: StatePoint) -> tuple[float, float]:
    """(power drawn, power the same session would draw at 8 A per phase), in kW.

    The reported power wins; without it the currents give it at 230 V per phase. The minimum
    counts the phases that carry current (one when none is known) and never exceeds the power.
    """
    if not point.charging:
        return 0.0, 0.0
    currents = [c for c in point.currents_a if c is not None]
    power = point.power_kw if point.power_kw is not None else sum(currents) * VOLTS_PER_PHASE / 1000.0
    phases = sum(1 for c in currents if c >= MIN_CURRENT_A) or 1
    return power, min(power, phases * LIMIT_A * VOLTS_PER_PHASE / 1000.0)


def time_grid(start: datetime, end: datetime, points: int = 120) -> list[datetime]:
    """About `points` evenly spaced instants from start to end (at least one second apart)."""
    if end <= start:
        return [start]
    step = max(timedelta(seconds=1), (end - start) / max(1, points - 1))
    out, t = [], start
    while t <= end:
        out.append(t)
        t += step
    return out


def aggregate(points: Sequence[StatePoint], grid: Sequence[datetime]) -> PowerSeries:
    """Sum over sessions of each one's last state at or before every grid instant (step-hold)."""
    grid_s = np.array([t.timestamp() for t in grid])
    power, minimum = np.zeros(len(grid)), np.zeros(len(grid))
    by_session: dict[int, list[StatePoint]] = {}
    for p in points:
        by_session.setdefault(p.session_pk, []).append(p)
    for states in by_session.values():
        states.sort(key=lambda p: p.at)
        at_s = np.array([p.at.timestamp() for p in states])
        values = np.array([state_power_kw(p) for p in states])
        index = np.searchsorted(at_s, grid_s, side="right") - 1  # -1: no state yet at that instant
        known = index >= 0
        power[known] += values[index[known], 0]
        minimum[known] += values[index[known], 1]
    return PowerSeries(list(grid), [round(float(v), 3) for v in power], [round(float(v), 3) for v in minimum])
