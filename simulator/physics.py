"""The fleet, stepped one simulated second at a time, vectorised over all charge points.

Per second: profile events fall due, cars leave and arrive, each EV asks for its current
(its own maximum, falling linearly above its taper SoC), the station splits its supply
(16 A per phase for one drawing point, 12.5 A each for two), an active charging profile caps
the offer (unless the EVSE is one of the non-responding ones), and an offer below 6 A means
no charging at all. Changes of power go to the ground truth; due 5-minute states are queued.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from simulator.config import DA_PER_A, KW_PER_DA_PHASE, NO_LIMIT_DA, SimConfig
from simulator.population import Population, generate
from simulator.truth import Truth

KWH_PER_DAP_S = KW_PER_DA_PHASE / 3600.0
FULL_BELOW_DA = 10  # an EV asking for less than 1 A is full
STATUS_FREE, STATUS_ACTIVE, STATUS_PLUGGED_DONE = 0, 1, 2
STATE_ACTIVE, STATE_COMPLETED = "ACTIVE", "COMPLETED"
FAR_FUTURE = np.iinfo(np.int64).max // 4


@dataclass
class Profile:
    """A charging profile as applied to a point (seconds from the run start)."""

    session: int
    start_s: int
    end_s: int | None
    periods: list[tuple[int, int]]  # (offset from start_s, limit in deci-amperes per phase)
    received_s: int


@dataclass
class StateBatch:
    """States emitted during some steps, column-wise."""

    t_s: np.ndarray
    point: np.ndarray
    session: np.ndarray
    kwh: np.ndarray
    current_da: np.ndarray
    phases: np.ndarray
    completed: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.t_s)


@dataclass
class _Chunks:
    parts: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in StateBatch.__annotations__})

    def add(self, **cols: np.ndarray) -> None:
        for k, v in cols.items():
            self.parts[k].append(v)

    def drain(self) -> StateBatch:
        dtypes = {"t_s": np.int64, "point": np.int32, "session": np.int32, "kwh": float, "current_da": np.int32,
                  "phases": np.int8, "completed": bool}
        out = {k: (np.concatenate(v).astype(dtypes[k]) if v else np.zeros(0, dtypes[k])) for k, v in self.parts.items()}
        for v in self.parts.values():
            v.clear()
        return StateBatch(**out)


class Fleet:
    """All charge points of one run. Not thread-safe: one owner steps and mutates it."""

    def __init__(self, config: SimConfig, population: Population | None = None) -> None:
        self.config = config
        self.pop = population if population is not None else generate(config)
        n, pop = config.n_points, self.pop
        aux = np.random.default_rng([config.seed, 1])  # independent of the population stream
        self.responsive = aux.random(n) >= config.faults.non_responding_share
        self.reports_current = aux.random(n) >= config.faults.no_current_share
        self._jitter_rng = np.random.default_rng([config.seed, 2])
        # Per session: an EV that stays asleep (0 A) once a limit on it is lifted (own stream).
        self.no_resume = np.random.default_rng([config.seed, 7]).random(len(pop)) < config.faults.no_resume_share
        self.stalled = np.zeros(n, bool)  # the point's EV did not resume: it draws nothing until unplugged
        self.not_resumed_s = np.full(len(pop), -1, np.int64)  # truth: when a session's EV failed to resume
        self.limit_ignored = np.zeros(len(pop), bool)  # truth: a profile reached this session's EVSE, ignored
        self.t = 0  # next second to simulate
        self.session = np.full(n, -1, np.int32)
        self.status = np.zeros(n, np.int8)
        self.phases = np.zeros(n, np.int8)
        self.max_da = np.zeros(n, np.int32)
        self.battery_kwh = np.ones(n)
        self.soc = np.zeros(n)
        self.inv_taper_span = np.ones(n)
        self.taper_soc = np.ones(n)
        self.depart_s = np.full(n, FAR_FUTURE, np.int64)
        self.complete_when_full = np.zeros(n, bool)
        self.kwh0 = np.zeros(n)
        self.energy_dap_s = np.zeros(n, np.int64)
        self.current_da = np.zeros(n, np.int32)
        self.power_dap = np.zeros(n, np.int32)
        self.limit_da = np.full(n, NO_LIMIT_DA, np.int32)
        self.next_state_s = np.full(n, FAR_FUTURE, np.int64)
        self._single_da = round(config.station_single_a * DA_PER_A)
        self._shared_da = round(config.station_shared_a * DA_PER_A)
        self._min_da = round(config.ev_min_a * DA_PER_A)
        self._arrival_ptr = 0
        self._profile_gen = np.zeros(n, np.int64)
        self._events: list[tuple[int, int, int, int, int]] = []  # (t, seq, point, gen, limit_da)
        self._seq = itertools.count()
        self.profiles: dict[int, Profile] = {}  # point -> profile currently set
        self.session_end_s = np.full(len(pop), -1, np.int64)
        self._truth_parts: tuple[list, list, list] = ([], [], [])
        self._states = _Chunks()
        self.states_emitted = 0

    # --- identity helpers ---------------------------------------------------------------
    def session_id(self, idx: int) -> str:
        return f"{self.config.prefix}{idx:07d}"

    def session_index(self, session_id: str) -> int | None:
        prefix = self.config.prefix.upper()  # session ids are CiStrings: any case names the same session
        if not session_id.upper().startswith(prefix):
            return None
        digits = session_id[len(prefix):]
        if not (digits.isascii() and digits.isdigit()):
            return None
        idx = int(digits)
        return idx if idx < len(self.pop) else None

    def is_ongoing(self, idx: int) -> bool:
        point = int(self.pop.point[idx])
        return int(self.session[point]) == idx and int(self.status[point]) == STATUS_ACTIVE

    # --- profiles -----------------------------------------------------------------------
    def set_profile(self, point: int, start_s: int, periods: list[tuple[int, int]], end_s: int | None,
                    effective_s: int | None = None) -> None:
        """Replace the point's profile. Limits take effect at max(period start, effective_s)."""
        self._profile_gen[point] += 1
        gen = int(self._profile_gen[point])
        if self.session[point] >= 0 and not self.responsive[point]:
            self.limit_ignored[self.session[point]] = True
        eff = self.t if effective_s is None else effective_s
        previous_end = self._own_end(self.profiles.get(point))
        self.profiles[point] = Profile(int(self.session[point]), start_s, end_s, periods, self.t)
        # Nothing in force until the profile (and the EVSE) picks it up; the old one still ends on time.
        self._push(max(min(eff, previous_end), self.t), point, gen, NO_LIMIT_DA)
        for offset, limit_da in periods:
            self._push(max(start_s + offset, eff), point, gen, limit_da)
        if end_s is not None:
            self._push(max(end_s, eff), point, gen, NO_LIMIT_DA)

    def clear_profile(self, point: int, effective_s: int | None = None) -> bool:
        prof = self.profiles.pop(point, None)
        self._profile_gen[point] += 1
        eff = self.t if effective_s is None else effective_s
        # The EVSE's apply delay never postpones the end the profile's own duration already set.
        self._push(max(min(eff, self._own_end(prof)), self.t), point, int(self._profile_gen[point]), NO_LIMIT_DA)
        return prof is not None

    @staticmethod
    def _own_end(prof: Profile | None) -> float:
        return prof.end_s if prof is not None and prof.end_s is not None else math.inf

    def _push(self, t: int, point: int, gen: int, limit_da: int) -> None:
        heapq.heappush(self._events, (int(t), next(self._seq), int(point), gen, int(limit_da)))

    def _apply_profile_events(self, t: int) -> None:
        ev = self._events
        before: dict[int, int] = {}
        while ev and ev[0][0] <= t:
            _, _, point, gen, limit = heapq.heappop(ev)
            if gen == self._profile_gen[point]:
                before.setdefault(point, int(self.limit_da[point]))
                self.limit_da[point] = limit
                prof = self.profiles.get(point)
                if prof is not None and prof.end_s is not None and t >= prof.end_s:
                    del self.profiles[point]  # duration elapsed: back to normal charging
        for point, previous in before.items():  # same-second replacements are not a lift
            self._lift_check(point, t, previous)

    def _lift_check(self, point: int, t: int, previous_limit: int) -> None:
        """A limit in force on a responsive EVSE was lifted: a no-resume EV stays asleep from now on."""
        idx = int(self.session[point])
        if (self.limit_da[point] >= NO_LIMIT_DA > previous_limit and idx >= 0 and self.responsive[point]
                and self.status[point] == STATUS_ACTIVE and self.no_resume[idx] and not self.stalled[point]):
            self.stalled[point] = True
            self.not_resumed_s[idx] = t

    # --- stepping -----------------------------------------------------------------------
    def step_until(self, t_end: int) -> None:
        while self.t < t_end:
            self.step()

    def step(self) -> np.ndarray:
        """Simulate second `self.t`; returns the points where a session arrived."""
        t = self.t
        self._apply_profile_events(t)
        self._departures(t)
        arrived = self._arrivals(t)
        demand = self._demand_da()
        full = (self.status == STATUS_ACTIVE) & (demand == 0) & self.complete_when_full & ~self.stalled
        if full.any():  # these sessions end now; the car stays plugged and blocks the point
            self._emit(t, np.flatnonzero(full), completed=True, zero_current=True)
            self.session_end_s[self.session[full]] = t
            self.status[full] = STATUS_PLUGGED_DONE
        in_use = demand > 0
        drawing = in_use[0::2].astype(np.int8) + in_use[1::2]
        share = np.repeat(np.where(drawing == 2, self._shared_da, self._single_da), 2)
        offered = np.minimum(share, np.where(self.responsive, self.limit_da, NO_LIMIT_DA))
        current = np.where(offered >= self._min_da, np.minimum(demand, offered), 0).astype(np.int32)
        power = current * self.phases
        changed = np.flatnonzero(power != self.power_dap)
        if len(changed):
            tp, pp, dp = self._truth_parts
            tp.append(np.full(len(changed), t, np.int32))
            pp.append(changed.astype(np.int32))
            dp.append((power[changed] - self.power_dap[changed]).astype(np.int32))
        self.current_da, self.power_dap = current, power
        due = np.flatnonzero(self.next_state_s <= t)
        if len(due):
            self._emit(t, due, completed=False)
            jitter = self._jitter_rng.integers(-self.config.state_jitter_s, self.config.state_jitter_s + 1, len(due))
            self.next_state_s[due] = t + self.config.state_interval_s + jitter
        self.energy_dap_s += power
        self.soc += power * (KWH_PER_DAP_S / self.battery_kwh)
        self.t = t + 1
        return arrived

    def _demand_da(self) -> np.ndarray:
        frac = np.clip((1.0 - self.soc) * self.inv_taper_span, 0.0, 1.0)
        demand = (self.max_da * frac).astype(np.int32)
        demand[(demand < FULL_BELOW_DA) | (self.status != STATUS_ACTIVE) | self.stalled] = 0
        return demand

    def _departures(self, t: int) -> None:
        leaving = np.flatnonzero(self.depart_s <= t)
        if not len(leaving):
            return
        active = leaving[self.status[leaving] == STATUS_ACTIVE]
        if len(active):
            self._emit(t, active, completed=True, zero_current=True)  # the car is unplugged
            self.session_end_s[self.session[active]] = t
        for point in leaving:
            if point in self.profiles or self.limit_da[point] != NO_LIMIT_DA:
                self.profiles.pop(int(point), None)
                self._profile_gen[point] += 1  # pending events of the old session are void
                self.limit_da[point] = NO_LIMIT_DA
        self.status[leaving] = STATUS_FREE
        self.session[leaving] = -1
        self.depart_s[leaving] = FAR_FUTURE
        self.next_state_s[leaving] = FAR_FUTURE
        self.complete_when_full[leaving] = False
        self.stalled[leaving] = False

    def _arrivals(self, t: int) -> np.ndarray:
        pop, lo = self.pop, self._arrival_ptr
        hi = lo
        while hi < len(pop) and pop.arrival_s[hi] <= t:
            hi += 1
        if hi == lo:
            return np.zeros(0, np.int64)
        self._arrival_ptr = hi
        idx = np.arange(lo, hi)
        pts = pop.point[idx]
        busy = self.status[pts] != STATUS_FREE
        if busy.any():  # cannot happen with generate(); guard against hand-made populations
            idx, pts = idx[~busy], pts[~busy]
        self.session[pts] = idx
        self.status[pts] = STATUS_ACTIVE
        self.phases[pts] = pop.phases[idx]
        self.max_da[pts] = pop.max_da[idx]
        self.battery_kwh[pts] = pop.battery_kwh[idx]
        self.soc[pts] = pop.soc0[idx]
        self.taper_soc[pts] = pop.taper_soc[idx]
        self.inv_taper_span[pts] = 1.0 / (1.0 - pop.taper_soc[idx])
        self.depart_s[pts] = np.maximum(pop.depart_s[idx], t + 1)
        self.complete_when_full[pts] = pop.complete_when_full[idx]
        self.kwh0[pts] = pop.kwh0[idx]
        self.energy_dap_s[pts] = 0
        self.next_state_s[pts] = t  # a state at the start
        return pts

    def _emit(self, t: int, pts: np.ndarray, completed: bool, zero_current: bool = False) -> None:
        current = np.zeros(len(pts), np.int32) if zero_current else self.current_da[pts].copy()
        self._states.add(
            t_s=np.full(len(pts), t, np.int64), point=pts.astype(np.int32), session=self.session[pts].copy(),
            kwh=self.kwh0[pts] + self.energy_dap_s[pts] * KWH_PER_DAP_S, current_da=current,
            phases=self.phases[pts].copy(), completed=np.full(len(pts), completed),
        )
        self.states_emitted += len(pts)
        if completed:
            self.next_state_s[pts] = FAR_FUTURE

    # --- outputs ------------------------------------------------------------------------
    def drain_states(self) -> StateBatch:
        return self._states.drain()

    def truth(self) -> Truth:
        tp, pp, dp = self._truth_parts
        cat = [np.concatenate(x) if x else np.zeros(0, np.int32) for x in (tp, pp, dp)]
        # Consolidate so repeated calls are cheap and memory is one block.
        self._truth_parts = ([cat[0]], [cat[1]], [cat[2]])
        return Truth(self.config.start, self.config.n_points, cat[0], cat[1], cat[2],
                     idle_station_w=self.config.idle_station_w)

    def current_a(self, point: int) -> float:
        return int(self.current_da[point]) / DA_PER_A
