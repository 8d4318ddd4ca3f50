"""Flexibility forecast: how much the fleet can shed per ISP, now and in the coming ISPs (pure, no ORM).

Erasable power at an instant = the sum over charging sessions of what a cap at 8 A would free:
(per-phase current - 8 A) x phases x 230 V, for sessions drawing above 8 A (the paper's figure 10).

- `erasable_series`: that quantity at each ISP start, from a frame of states (each session at its
  last state of the preceding 15 minutes, so a session silent for longer counts as gone);
- `profile`: its P10 / P50 / P90 by time of day (ISP slot) and day type (weekday, Saturday,
  Sunday), pooling the neighbouring slot on each side so a few weeks of history give enough samples;
- `predict`: for each ISP of a window, the profile corrected by the fleet's state now: the ratio of
  the sheddable power now to the profile's median now, fading with the horizon
  (`exp(-horizon / FADE)`), applied to all three quantiles. The ISP that contains `now` also gets
  the sheddable power now, from the active sessions (budget and responsiveness applied by the caller).

`check_window` is the door's rule for a window: ISP boundaries, forwards, at most 7 days.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from smatch.errors import Refusal

from . import planning
from .error_codes import FlexibilityErrorCode

MAX_WINDOW = timedelta(days=7)
FADE = timedelta(minutes=90)  # how fast the correction by the state now fades with the horizon
RATIO_BOUNDS = (0.2, 5.0)  # a near-empty profile slot must not multiply the forecast without limit
POOL_SLOTS = 1  # neighbouring ISP slots on each side pooled into a slot's quantiles
SLOTS_PER_DAY = 96
QUANTILES = (0.1, 0.5, 0.9)


# The forecast's refusals use the app's codes (WINDOW_*); the name stays for the callers.
ForecastErrorCode = FlexibilityErrorCode


class ForecastRefused(Refusal):
    """A window the rules refuse (HTTP 400)."""


def check_window(start: datetime, end: datetime) -> list[datetime]:
    """The ISP starts of [start, end): both on ISP boundaries (UTC), end after start, at most 7 days."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ForecastRefused(ForecastErrorCode.WINDOW_UNREADABLE, "from and to need a time zone (UTC)")
    try:
        start, end = start.astimezone(UTC), end.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+00:01 is before year 1 in UTC
        raise ForecastRefused(ForecastErrorCode.WINDOW_UNREADABLE,
                              "from and to must fall between years 1 and 9999 in UTC") from None
    for name, t in (("from", start), ("to", end)):
        if t != planning.isp_start(t):
            raise ForecastRefused(ForecastErrorCode.WINDOW_NOT_ON_ISP,
                                  f"{name} must be an ISP boundary: HH:00, :15, :30 or :45 UTC, no seconds")
    if end <= start:
        raise ForecastRefused(ForecastErrorCode.WINDOW_BACKWARDS, "to must be after from")
    if end - start > MAX_WINDOW:
        raise ForecastRefused(ForecastErrorCode.WINDOW_TOO_LONG, "the window is at most 7 days")
    return planning.isp_starts_between(start, end)


def shed_kw(current_a: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """What a cap at 8 A frees per session (0 at or below 8 A); unknown phases count as one."""
    ph = np.where(np.isnan(phases), 1.0, phases)
    return np.clip(current_a - planning.LIMIT_A, 0.0, None) * ph * planning.VOLTS_PER_PHASE / 1000.0


def erasable_series(states: pd.DataFrame, isp_starts: pd.DatetimeIndex) -> pd.Series:
    """Erasable power (kW) at each ISP start from states with columns `session`, `timestamp` (UTC),
    `current_a` (highest per-phase current; NaN: unknown, counted as 0), `phases`, `active` (bool).

    A state taken at s describes its session at the next ISP boundary at or after s (within 15 min).
    """
    out = pd.Series(0.0, index=isp_starts, name="erasable_kw")
    if states.empty or len(isp_starts) == 0:
        return out
    frame = states.assign(boundary=states["timestamp"].dt.ceil("15min"))
    frame = frame.sort_values("timestamp").drop_duplicates(["session", "boundary"], keep="last")
    frame = frame[frame["active"].astype(bool)]
    kw = shed_kw(frame["current_a"].fillna(0.0).to_numpy(float), frame["phases"].to_numpy(float))
    summed = pd.Series(kw, index=frame["boundary"]).groupby(level=0).sum()
    return out.add(summed.reindex(isp_starts, fill_value=0.0), fill_value=0.0).rename("erasable_kw")


def day_type(index: pd.DatetimeIndex) -> np.ndarray:
    """0 weekday, 1 Saturday, 2 Sunday."""
    weekday = index.day_of_week.to_numpy()
    return np.where(weekday < 5, 0, weekday - 4)


def slot(index: pd.DatetimeIndex) -> np.ndarray:
    return (index.hour.to_numpy() * 4 + index.minute.to_numpy() // 15).astype(int)


def profile(history: pd.Series) -> pd.DataFrame:
    """P10 / P50 / P90 of the erasable power by (day type, ISP slot), neighbouring slots pooled.

    Index: MultiIndex (day_type, slot) over every slot of the day types seen; a slot without any
    sample gets NaN.
    """
    if history.empty:
        empty = pd.MultiIndex.from_tuples([], names=["day_type", "slot"])
        return pd.DataFrame(columns=["p10", "p50", "p90"], index=empty, dtype=float)
    idx = pd.DatetimeIndex(history.index)
    base = pd.DataFrame({"day_type": day_type(idx), "slot": slot(idx), "kw": history.to_numpy(float)})
    pooled = pd.concat([base.assign(slot=(base["slot"] + shift) % SLOTS_PER_DAY)
                        for shift in range(-POOL_SLOTS, POOL_SLOTS + 1)])
    q = pooled.groupby(["day_type", "slot"])["kw"].quantile(list(QUANTILES)).unstack()
    q.columns = ["p10", "p50", "p90"]
    return q


def predict(prof: pd.DataFrame, isp_starts: list[datetime], now: datetime, now_kw: float) -> pd.DataFrame:
    """One row per ISP: `isp_start`, `horizon_min` (from now to the ISP's start, 0 for the ISP now),
    `sheddable_now_kw` (the ISP that contains now, else NaN), `p10`, `p50`, `p90` (kW)."""
    index = pd.DatetimeIndex(isp_starts)
    current = planning.isp_start(now)
    keys = list(zip(day_type(index), slot(index), strict=True))
    table = prof.reindex(pd.MultiIndex.from_tuples(keys, names=["day_type", "slot"])) if keys else prof.iloc[:0]
    now_key = (int(day_type(pd.DatetimeIndex([current]))[0]), int(slot(pd.DatetimeIndex([current]))[0]))
    median_now = prof["p50"].get(now_key, np.nan) if len(prof) else np.nan
    known = not math.isnan(now_kw) and not math.isnan(median_now) and median_now > 0
    ratio = now_kw / median_now if known else 1.0  # NaN now: the profile alone
    ratio = float(np.clip(ratio, *RATIO_BOUNDS))
    horizon_s = np.array([max(0.0, (t - now).total_seconds()) for t in index])
    factor = 1.0 + (ratio - 1.0) * np.exp(-horizon_s / FADE.total_seconds())
    out = pd.DataFrame({"isp_start": index, "horizon_min": horizon_s / 60.0,
                        "sheddable_now_kw": np.where(index == current, now_kw, np.nan)})
    for q in ("p10", "p50", "p90"):
        out[q] = table[q].to_numpy(float) * factor if len(table) else np.nan
    past = index < current  # an ISP already over is not forecast
    out.loc[past, ["p10", "p50", "p90"]] = np.nan
    return out
