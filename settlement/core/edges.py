"""Edge detection on the aggregate power: the drop after the signal and the recovery after clearing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class EdgeWindow:
    before_s: float = 120.0  # how far before the given time an edge may be found
    after_s: float = 300.0  # and after it (profiles take effect with latency)


@dataclass(frozen=True)
class Edges:
    t_signal: pd.Timestamp
    t_clear: pd.Timestamp
    drop_at: pd.Timestamp | None  # grid edge of the steepest fall near t_signal; None if power never fell
    recovery_at: pd.Timestamp | None
    drop_kw: float  # size of that step (negative), NaN if none
    recovery_kw: float


def _steepest(power: pd.Series, around: pd.Timestamp, window: EdgeWindow, sign: int) -> tuple:
    """Grid edge inside the window where sign * dP is largest and positive."""
    if len(power) < 2:
        return None, float("nan")
    jumps = power.diff().iloc[1:]  # jump at the start of each bin but the first
    inside = jumps[(jumps.index >= around - pd.Timedelta(seconds=window.before_s))
                   & (jumps.index <= around + pd.Timedelta(seconds=window.after_s))]
    if inside.empty:
        return None, float("nan")
    scores = sign * inside.to_numpy()
    best = int(np.argmax(scores))
    if not scores[best] > 0:
        return None, float("nan")
    return inside.index[best], float(inside.iloc[best])


def detect_edges(power_kw: pd.Series, t_signal: pd.Timestamp, t_clear: pd.Timestamp,
                 window: EdgeWindow | None = None) -> Edges:
    """Refine the given signal/clear times to where the aggregate power actually fell and rose."""
    window = window or EdgeWindow()
    drop_at, drop_kw = _steepest(power_kw, t_signal, window, -1)
    # The recovery must follow the drop; a ramp before clearing is not the recovery.
    rec_from = t_clear if drop_at is None else max(t_clear - pd.Timedelta(seconds=window.before_s), drop_at)
    rec_window = EdgeWindow(before_s=(t_clear - rec_from).total_seconds(), after_s=window.after_s)
    recovery_at, recovery_kw = _steepest(power_kw, t_clear, rec_window, +1)
    return Edges(t_signal, t_clear, drop_at, recovery_at, drop_kw, recovery_kw)


def mean_power_kw(power_kw: pd.Series, start: pd.Timestamp, end: pd.Timestamp, grid_s: float) -> float:
    """Mean of the bin-mean power over [start, end): exact on grid edges, linear inside a bin."""
    if len(power_kw) == 0 or not end > start:
        return float("nan")
    edges_s = (power_kw.index.as_unit("ns").asi8 - power_kw.index[0].value) / 1e9
    edges_s = np.r_[edges_s, edges_s[-1] + grid_s]
    cumulative_kws = np.r_[0.0, np.cumsum(power_kw.to_numpy() * grid_s)]
    lo, hi = ((np.array([start.value, end.value]) - power_kw.index[0].value) / 1e9)
    if lo < edges_s[0] or hi > edges_s[-1]:
        return float("nan")  # outside the data: no invented power
    a, b = np.interp([lo, hi], edges_s, cumulative_kws)
    return float((b - a) / (hi - lo))
