"""Per-session ground truth: what the product is judged on (pure numpy over a Fleet and its Truth).

- whether a session truly drew above a current (8 A per phase) at a time t;
- its true power, second by second;
- whether its EVSE received a limit and ignored it; whether its EV failed to resume after one;
- the counterfactual: the same fleet without any profile, and its energy per ISP.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from simulator.config import KW_PER_DA_PHASE
from simulator.physics import Fleet
from simulator.truth import Truth


@dataclass(frozen=True)
class SessionTruth:
    session_id: str
    point: int
    phases: int
    start_s: int  # first simulated second (0 for a car already plugged in when the run starts)
    end_s: int | None  # the second it ended (COMPLETED or unplugged); None while ongoing
    evse_ignored_limit: bool  # a profile reached its EVSE, which answered ACCEPTED and kept full power
    not_resumed_s: int | None  # when a lifted limit left its EV asleep (None: resumed or never limited)


def session_truth(fleet: Fleet, idx: int) -> SessionTruth:
    pop = fleet.pop
    end = int(fleet.session_end_s[idx])
    nr = int(fleet.not_resumed_s[idx])
    return SessionTruth(fleet.session_id(idx), int(pop.point[idx]), int(pop.phases[idx]), int(pop.arrival_s[idx]),
                        end if end >= 0 else None, bool(fleet.limit_ignored[idx]), nr if nr >= 0 else None)


def _covers(st: SessionTruth, t_s: int) -> bool:
    return st.start_s <= t_s and (st.end_s is None or t_s < st.end_s)


def current_a(truth: Truth, st: SessionTruth, t_s: int) -> float:
    """True per-phase current of the session during second `t_s` (0 outside the session)."""
    if not _covers(st, t_s):
        return 0.0
    return float(truth.power_kw_by_point(t_s)[st.point]) / (KW_PER_DA_PHASE * 10 * st.phases)


def drew_above(truth: Truth, st: SessionTruth, t_s: int, amps: float = 8.0) -> bool:
    return current_a(truth, st, t_s) > amps + 1e-9


def sessions_above(fleet: Fleet, truth: Truth, t_s: int, amps: float = 8.0) -> list[str]:
    """Ids of every session truly drawing more than `amps` per phase during second `t_s`."""
    pop = fleet.pop
    end = np.where(fleet.session_end_s >= 0, fleet.session_end_s, np.iinfo(np.int64).max)
    there = (pop.arrival_s <= t_s) & (t_s < end)
    amps_now = truth.power_kw_by_point(t_s)[pop.point] / (KW_PER_DA_PHASE * 10 * pop.phases)
    return [fleet.session_id(int(i)) for i in np.flatnonzero(there & (amps_now > amps + 1e-9))]


def power_kw(truth: Truth, st: SessionTruth, t0_s: int, t1_s: int) -> np.ndarray:
    """True power of the session for every second in [t0_s, t1_s) (0 where it was not plugged in)."""
    out = truth.power_kw(t0_s, t1_s, points=[st.point])
    seconds = np.arange(t0_s, t1_s)
    inside = (seconds >= st.start_s) & ((seconds < st.end_s) if st.end_s is not None else True)
    return np.where(inside, out, 0.0)


def counterfactual(fleet: Fleet) -> Truth:
    """The same fleet, same seed, stepped to the same second without any profile: no activation."""
    twin = Fleet(replace(fleet.config), fleet.pop)
    twin.step_until(fleet.t)
    return twin.truth()


def energy_per_isp(truth: Truth, t0_s: int, t1_s: int, isp_s: int = 900) -> pd.DataFrame:
    """Fleet energy per ISP (aligned to whole ISPs of UTC) within [t0_s, t1_s)."""
    start_epoch = int(truth.start.timestamp())
    first = -(-(start_epoch + t0_s) // isp_s) * isp_s - start_epoch
    bounds = list(range(first, t1_s + 1, isp_s))
    rows = [(truth.time_at(a), truth.energy_kwh(a, b)) for a, b in itertools.pairwise(bounds)]
    return pd.DataFrame(rows, columns=["isp_start", "energy_kwh"])
