"""Theoretical minimum power, erasable power by time of day and non-responding EVSEs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from settlement.core.frames import max_phase_current_a
from settlement.core.reconstruction import Reconstruction


def erasable_kw(rec: Reconstruction) -> pd.Series:
    """Sum over sessions of (power - power at the minimum current), floored at 0 per session."""
    return (rec.power_kw() - rec.theoretical_kw()).clip(lower=0.0).rename("erasable_kw")


def erasable_by_time_of_day(rec: Reconstruction, start: pd.Timestamp | None = None,
                            end: pd.Timestamp | None = None, bin_minutes: int = 15) -> pd.DataFrame:
    """Mean erasable power per time-of-day bin (UTC) over [start, end)."""
    series = erasable_kw(rec)
    if start is not None:
        series = series[series.index >= start]
    if end is not None:
        series = series[series.index < end]
    tod = series.index - series.index.floor("D")
    tod_bin = (tod // pd.Timedelta(minutes=bin_minutes)) * pd.Timedelta(minutes=bin_minutes)
    grouped = series.groupby(tod_bin).agg(["mean", "max", "count"])
    grouped.index = [f"{int(td.total_seconds() // 3600):02d}:{int(td.total_seconds() % 3600 // 60):02d}"
                     for td in grouped.index]
    grouped.index.name = "time_of_day_utc"
    return grouped.rename(columns={"mean": "erasable_kw_mean", "max": "erasable_kw_max", "count": "bins"})


def non_responders(rec: Reconstruction, activation_id: str, t_signal: pd.Timestamp, t_clear: pd.Timestamp,
                   grace_s: float = 120.0, threshold_a: float = 8.5) -> pd.DataFrame:
    """EVSEs whose first state more than `grace_s` after the signal still drew above `threshold_a`."""
    states = rec.states
    lo, hi = rec.seconds([t_signal + pd.Timedelta(seconds=grace_s), t_clear])
    t = states["t"].to_numpy()
    mask = (t > lo) & (t <= hi)
    sub = states[mask]
    _, first = np.unique(sub["code"].to_numpy(), return_index=True)
    sub = sub.iloc[first]
    current = max_phase_current_a(sub) if len(sub) else np.zeros(0)
    hit = current > threshold_a
    codes = sub["code"].to_numpy()[hit]
    return pd.DataFrame({
        "activation_id": activation_id, "evse_uid": rec.evse_uids[codes], "session_id": rec.session_ids[codes],
        "state_at": sub["timestamp"].to_numpy()[hit], "max_current_a": current[hit],
    })
