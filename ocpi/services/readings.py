"""What a session draws, from whatever the CPO sends: pure arithmetic, no ORM.

Real CSMSs mostly send `kwh` and ENERGY/TIME periods, sometimes POWER, rarely CURRENT (the period's
average) and never our `x_` extension. Each state gets a per-phase current and a record of where it
came from, in this order of preference: per-phase currents (extension) or a CURRENT dimension
(measured); a POWER dimension; then energy over time (energy-conserving): the kWh difference since
the state before, else the latest period's ENERGY over its TIME, else (a first state) the session's
kWh over the time since it started. A power becomes a per-phase current on the session's phase
count when firm, else on the one assumed count (`schemas.ASSUMED_PHASES`), and the state says so
("assumed").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..models import (
    CURRENT_ASSUMED,
    CURRENT_FROM_KWH,
    CURRENT_FROM_POWER,
    CURRENT_MEASURED,
    CURRENT_UNKNOWN,
    PHASES_CONNECTOR,
    PHASES_POWER,
    PHASES_POWER_CURRENT,
    PHASES_REPORTED,
    PHASES_UNKNOWN,
)
from ..schemas import ASSUMED_PHASES, DEFAULT_MAX_CURRENT_A, PLAUSIBLE_PHASES, VOLTS_PER_PHASE, SessionUpdate

# A POWER / CURRENT pair names a phase count only when P / (230 V x I) lies this close to 1, 2 or 3.
PAIR_TOLERANCE = 0.2
# Connector power types and the most phases a session on them can use.
CONNECTOR_PHASES = {"AC_1_PHASE": 1, "AC_2_PHASE": 2, "AC_2_PHASE_SPLIT": 2, "AC_3_PHASE": 3}
FIRM_PHASE_SOURCES = frozenset({PHASES_REPORTED, PHASES_POWER_CURRENT})


@dataclass(frozen=True)
class Reading:
    currents_a: tuple[float | None, float | None, float | None]
    power_kw: float | None
    phases: int | None
    phases_source: str
    current_source: str

    @property
    def max_current_a(self) -> float | None:
        known = [c for c in self.currents_a if c is not None]
        return max(known) if known else None


def phases_from_pair(current_a: float | None, power_kw: float | None) -> int | None:
    """The phase count a period's average POWER and per-phase CURRENT imply, if they name one."""
    if not current_a or not power_kw or current_a <= 0 or power_kw <= 0:
        return None
    ratio = power_kw * 1000.0 / (VOLTS_PER_PHASE * current_a)
    count = round(ratio)
    return count if 1 <= count <= 3 and abs(ratio - count) <= PAIR_TOLERANCE else None


MAX_CURRENT_TOLERANCE = 0.10  # a draw this much over max_amperage x phases still fits those phases
# A kWh average proves phases only over at least this much energy: kWh sent with 3 decimals (Wh) are
# then within 10 % (two states seconds apart must not prove a phase count by rounding).
MIN_LEARNING_KWH = 0.01


def phases_needed(power_kw: float, max_current_a: float | None) -> int:
    """The fewest phases that can carry `power_kw` at the connector's max_amperage (32 A when unknown)."""
    per_phase_kw = VOLTS_PER_PHASE * (max_current_a or DEFAULT_MAX_CURRENT_A) * (1 + MAX_CURRENT_TOLERANCE) / 1000
    return next((k for k in PLAUSIBLE_PHASES if power_kw <= per_phase_kw * k), PLAUSIBLE_PHASES[-1])


def is_firm(phases: int | None, source: str) -> bool:
    """The session's own phase count is known for sure (a connector's or a power's count only bounds it)."""
    return bool(phases) and (source in FIRM_PHASE_SOURCES or (source == PHASES_CONNECTOR and phases == 1)
                             or (source == PHASES_POWER and phases == PLAUSIBLE_PHASES[-1]))


def _learn_phases(power_kw: float, phases: int | None, source: str, max_current_a: float | None
                  ) -> tuple[int | None, str]:
    """A draw more than fewer phases allow proves a lower bound (the count does not change in a session)."""
    if is_firm(phases, source):
        return phases, source
    needed = phases_needed(power_kw, max_current_a)
    known_at_least = phases if source == PHASES_POWER else 1
    if needed > (known_at_least or 1):
        return needed, PHASES_POWER
    return phases, source


def kwh_power_kw(previous: tuple[datetime, float] | None, timestamp: datetime, kwh: float) -> float | None:
    """Average power (kW) between the state before (time, kWh) and this one; None when not derivable."""
    if previous is None:
        return None
    seconds = (timestamp - previous[0]).total_seconds()
    if seconds <= 0 or kwh < previous[1]:
        return None
    return (kwh - previous[1]) * 3600.0 / seconds


def derive_reading(update: SessionUpdate, kwh: float, session_phases: int | None, session_phases_source: str,
                   previous: tuple[datetime, float] | None, started: datetime | None = None,
                   max_current_a: float | None = None) -> Reading:
    """The reading of one state. `previous` is the (timestamp, kWh) of the session's state before it;
    `started` the session's start_date_time (its kWh were 0 then); `max_current_a` the connector's
    max_amperage (a power above what fewer phases carry at it proves more phases)."""
    phases, phases_source = session_phases, session_phases_source if session_phases else PHASES_UNKNOWN
    pair = phases_from_pair(update.current_dimension_a, update.power_kw)
    if update.phases:
        phases, phases_source = update.phases, PHASES_REPORTED
    elif pair and phases_source != PHASES_REPORTED:
        phases, phases_source = pair, PHASES_POWER_CURRENT
    firm = is_firm(phases, phases_source)
    if update.currents_a is not None:
        return Reading(update.currents_a, update.power_kw, phases, phases_source, CURRENT_MEASURED)
    if update.current_dimension_a is not None:
        # Per phase; on phases not known for sure it is put on L1 only (the others are unknown).
        n = phases if firm and phases else 1
        currents = tuple(update.current_dimension_a if i < n else None for i in range(3))
        return Reading(currents, update.power_kw, phases, phases_source, CURRENT_MEASURED)  # type: ignore[arg-type]
    power, source, energy_kwh = update.power_kw, CURRENT_FROM_POWER, None
    if power is None:
        source = CURRENT_FROM_KWH
        power = kwh_power_kw(previous, update.last_updated, kwh)
        energy_kwh = kwh - previous[1] if power is not None and previous is not None else None
        if power is None:
            power = update.period_power_kw
        if power is None and previous is None and started is not None:
            power, energy_kwh = kwh_power_kw((started, 0.0), update.last_updated, kwh), kwh
    if power is None:
        return Reading((None, None, None), None, phases, phases_source, CURRENT_UNKNOWN)
    if energy_kwh is None or energy_kwh >= MIN_LEARNING_KWH:
        phases, phases_source = _learn_phases(power, phases, phases_source, max_current_a)
    firm = is_firm(phases, phases_source)
    n = phases if firm and phases else (ASSUMED_PHASES if phases_source == PHASES_POWER else phases or ASSUMED_PHASES)
    if not firm:
        source = CURRENT_ASSUMED
    per_phase = power * 1000.0 / (VOLTS_PER_PHASE * n)
    currents = tuple(per_phase if i < n else None for i in range(3))
    return Reading(currents, power, phases, phases_source, source)  # type: ignore[arg-type]
