"""Loading around `forecast.py`: the sheddable power now and the erasable-power history, then the forecast.

The API (`GET /api/v1/flexibility/`), the `flexibility_forecast` command and the console panel
call `forecast_rows`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from django.utils.dateparse import parse_datetime

from ocpi.models import SessionState
from smatch import clock

from . import forecast, planning
from .services import activations

HISTORY = timedelta(days=28)  # four of each weekday: the profile's samples


def sheddable_now_kw(now: datetime) -> float:
    """The expected shed (best estimate) if relayed now: sessions above 8 A with budget left, flagged EVSEs out."""
    views = activations.load_views(now)
    return planning.plan_caps(views, now, planning.activation_end(now), activations.stale_after()).expected_kw


def history_states(now: datetime) -> pd.DataFrame:
    """Every state of the last four weeks as `forecast.erasable_series` reads it."""
    rows = SessionState.objects.filter(timestamp__gte=now - HISTORY, timestamp__lt=now).values_list(
        "session_id", "timestamp", "current_l1_a", "current_l2_a", "current_l3_a", "power_kw", "phases", "status",
        "session__phases")
    frame = pd.DataFrame.from_records(list(rows.iterator(20000)), columns=[
        "session", "timestamp", "l1", "l2", "l3", "power_kw", "phases", "status", "session_phases"])
    if frame.empty:
        return pd.DataFrame(columns=["session", "timestamp", "current_a", "phases", "active"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    # The state's phase count, else the session's.
    phases = frame["phases"].astype(float).fillna(frame["session_phases"].astype(float))
    from_power = frame["power_kw"].astype(float) * 1000 / (planning.VOLTS_PER_PHASE * phases.fillna(1.0))
    measured = frame[["l1", "l2", "l3"]].astype(float).max(axis=1)
    return pd.DataFrame({"session": frame["session"], "timestamp": frame["timestamp"],
                         "current_a": measured.fillna(from_power), "phases": phases,
                         "active": frame["status"] == "ACTIVE"})


def parse_window(start_text: str | None, end_text: str | None) -> tuple[datetime, datetime]:
    try:
        start, end = parse_datetime(start_text or ""), parse_datetime(end_text or "")
    except ValueError:
        start = end = None
    if start is None or end is None:
        raise forecast.ForecastRefused(forecast.ForecastErrorCode.WINDOW_UNREADABLE,
                                       "from and to are ISO 8601 times with a zone, e.g. 2026-12-02T18:00:00Z")
    return start, end


def forecast_rows(start_text: str | None, end_text: str | None, now: datetime | None = None) -> list[dict]:
    """Per ISP of [from, to): sheddable power now (the ISP containing now) and the P10/P50/P90 forecast."""
    now = now or clock.now()
    isps = forecast.check_window(*parse_window(start_text, end_text))
    states = history_states(now)
    # The history starts with the first state we hold: ISPs before it are unknown, not zero (on a
    # fresh database the forecast is null, not a confident 0 kW).
    start = planning.isp_start(now - HISTORY)
    if not states.empty:  # a state at s describes the ISP boundary at or after s (`erasable_series`)
        first = states["timestamp"].min().to_pydatetime()
        start = max(start, first if first == planning.isp_start(first) else planning.isp_start(first) + planning.ISP)
    isp_index = pd.date_range(pd.Timestamp(start), planning.isp_start(now), freq="15min", inclusive="left")
    history = forecast.erasable_series(states, isp_index if not states.empty else isp_index[:0])
    table = forecast.predict(forecast.profile(history), isps, now, sheddable_now_kw(now))
    return [{"isp_start": row.isp_start.to_pydatetime(), "horizon_min": round(row.horizon_min, 1),
             "sheddable_now_kw": _kw(row.sheddable_now_kw), "p10_kw": _kw(row.p10), "p50_kw": _kw(row.p50),
             "p90_kw": _kw(row.p90)} for row in table.itertuples()]


def _kw(value: float) -> float | None:
    return None if value is None or np.isnan(value) else round(float(value), 1)


def console_rows(now: datetime | None = None, isps: int = 8) -> list[dict]:
    """The next two hours for the console panel."""
    now = now or clock.now()
    start = planning.isp_start(now)
    return forecast_rows(start.isoformat(), (start + isps * planning.ISP).isoformat(), now)
