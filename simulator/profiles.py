"""ChargingProfile objects (mod_charging_profiles): SetChargingProfile validation, unit
conversion to the EVSE's deci-amperes, and the ActiveChargingProfile an EVSE reports."""

from __future__ import annotations

import math
from typing import Any

from simulator import ocpi
from simulator.config import DA_PER_A, VOLTAGE_V
from simulator.physics import Fleet


def to_deci_amps(limit: float, unit: str, phases: int) -> int:
    amps = limit if unit == "A" else limit / (VOLTAGE_V * phases)  # W is the total over the phases
    return max(0, math.floor(amps * DA_PER_A + 1e-9))


def parse_set_charging_profile(body: Any) -> dict[str, Any]:
    """Validate a SetChargingProfile; OcpiError 2001 says what is wrong."""
    if not isinstance(body, dict) or not isinstance(body.get("response_url"), str):
        raise ocpi.OcpiError(200, 2001, "SetChargingProfile needs response_url")
    cp = body.get("charging_profile")
    if not isinstance(cp, dict):
        raise ocpi.OcpiError(200, 2001, "SetChargingProfile needs charging_profile")
    unit = cp.get("charging_rate_unit")
    if unit not in ("A", "W"):
        raise ocpi.OcpiError(200, 2001, "charging_rate_unit must be A or W")
    raw = cp.get("charging_profile_period")
    if not isinstance(raw, list) or not raw:
        raise ocpi.OcpiError(200, 2001, "charging_profile_period must be a non-empty list")
    try:
        periods = sorted((int(p["start_period"]), float(p["limit"])) for p in raw)
        duration = int(cp["duration"]) if cp.get("duration") is not None else None
        start = ocpi.parse_dt(cp["start_date_time"]) if cp.get("start_date_time") else None
    except (KeyError, TypeError, ValueError) as exc:
        raise ocpi.OcpiError(200, 2001, f"bad charging profile: {exc}") from exc
    if any(off < 0 or lim < 0 for off, lim in periods) or (duration is not None and duration <= 0):
        raise ocpi.OcpiError(200, 2001, "start_period, limit and duration must be positive")
    start_fn = (lambda origin: int((start - origin).total_seconds())) if start else None
    return {"unit": unit, "periods": periods, "duration_s": duration, "start_s": start_fn}


def active_profile(fleet: Fleet, point: int, duration_s: int) -> dict[str, Any]:
    """ActiveChargingProfile from now for `duration_s`; without a profile, the EVSE's capacity."""
    now_s, capacity = fleet.t, fleet.config.station_single_a
    prof = fleet.profiles.get(point)
    segments: list[tuple[int, float]] = [(0, capacity)]
    if prof is not None:
        changes = [(prof.start_s + off, lim / DA_PER_A) for off, lim in prof.periods]
        if prof.end_s is not None:
            changes.append((prof.end_s, capacity))
        limit_now = capacity
        for t, lim in changes:
            if t <= now_s:
                limit_now = lim
        segments = [(0, limit_now)] + [(t - now_s, lim) for t, lim in changes if now_s < t < now_s + duration_s]
    return {"start_date_time": ocpi.fmt_dt(ocpi.at_offset(fleet.config.start, now_s)), "charging_profile": {
        "charging_rate_unit": "A", "duration": duration_s,
        "charging_profile_period": [{"start_period": off, "limit": lim} for off, lim in segments]}}
