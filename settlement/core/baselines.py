"""Pluggable baselines: name -> function(aggregate power, t_signal, t_clear, *, edges, rec) -> Baseline.

The aggregate baselines (trapezoid, flat, trend, control) are straight lines from (t_signal,
p_signal_kw) to (t_clear, p_clear_kw): their energy over any sub-window (an ISP) is the area of a
trapezoid. The per-session counterfactual (`sessions`, settlement.core.counterfactual) is a sum of
per-session lines cut at each session's end; it carries its cumulative energy curve instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from settlement.core.edges import Edges, detect_edges, mean_power_kw


@dataclass(frozen=True)
class Baseline:
    name: str
    t_signal: pd.Timestamp
    t_clear: pd.Timestamp
    p_signal_kw: float
    p_clear_kw: float
    notes: tuple[str, ...] = ()
    edges: Edges | None = field(default=None, compare=False)
    # (seconds since t_signal, cumulative kWh), increasing; None = the straight line
    curve: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False)

    def power_at(self, when: pd.Timestamp) -> float:
        if self.curve is not None:
            x, e = self.curve
            u = (when - self.t_signal).total_seconds()
            i = int(np.clip(np.searchsorted(x, u, side="right") - 1, 0, len(x) - 2))
            return float((e[i + 1] - e[i]) / (x[i + 1] - x[i]) * 3600.0)
        span = (self.t_clear - self.t_signal).total_seconds()
        x = (when - self.t_signal).total_seconds() / span
        return self.p_signal_kw + (self.p_clear_kw - self.p_signal_kw) * x

    def energy_kwh(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> float:
        """Area under the line between start and end (default: the whole activation), in kWh."""
        start = self.t_signal if start is None else max(start, self.t_signal)
        end = self.t_clear if end is None else min(end, self.t_clear)
        if not end > start:
            return 0.0
        if self.curve is not None:
            x, e = self.curve
            lo, hi = ((w - self.t_signal).total_seconds() for w in (start, end))
            return float(np.interp(hi, x, e) - np.interp(lo, x, e))
        hours = (end - start).total_seconds() / 3600.0
        return (self.power_at(start) + self.power_at(end)) * hours / 2.0


# The baseline settlement uses unless told otherwise (docs/accuracy.md: chosen on held-out simulator seeds).
DEFAULT_BASELINE = "sessions"

BaselineFn = Callable[..., Baseline]
BASELINES: dict[str, BaselineFn] = {}


def register_baseline(name: str) -> Callable[[BaselineFn], BaselineFn]:
    def deco(fn: BaselineFn) -> BaselineFn:
        BASELINES[name] = fn
        return fn

    return deco


def _grid_s(power_kw: pd.Series) -> float:
    if len(power_kw) < 2:
        return 60.0
    return (power_kw.index[1] - power_kw.index[0]).total_seconds()


@register_baseline("trapezoid")
def trapezoid(power_kw: pd.Series, t_signal: pd.Timestamp, t_clear: pd.Timestamp, *,
              pre_s: float = 120.0, settle_s: float = 120.0, fit_s: float = 600.0,
              edges: Edges | None = None, rec: object = None) -> Baseline:
    """The paper's baseline.

    P(t_signal): mean power over `pre_s` just before the drop (the detected drop or the given signal
    time, whichever is earlier). P(t_clear): a least-squares line through the bin powers over `fit_s` starting
    `settle_s` after the detected recovery (so the ramp itself is not fitted), evaluated at t_clear.
    """
    edges = edges or detect_edges(power_kw, t_signal, t_clear)
    notes: list[str] = []
    p_signal = p_signal_kw(power_kw, t_signal, edges, pre_s, notes)
    x, y = post_clear_window(power_kw, t_clear, edges, settle_s, fit_s, notes)
    p_clear = float(np.polyfit(x, y, 1)[1]) if len(x) >= 2 else float("nan")  # the line at t_clear
    if len(x) < 2:
        notes.append("not enough data after clearing to fit P(t_clear)")
    return Baseline("trapezoid", t_signal, t_clear, p_signal, p_clear, tuple(notes), edges)


def p_signal_kw(power_kw: pd.Series, t_signal: pd.Timestamp, edges: Edges, pre_s: float, notes: list[str]) -> float:
    """Mean power over `pre_s` before the drop (the detected drop or the signal, whichever is earlier)."""
    drop = edges.drop_at if edges.drop_at is not None else t_signal
    if edges.drop_at is None:
        notes.append("no drop detected: P(t_signal) read before the given signal time")
    # The drop cannot start before the signal; a late detected edge (latency, a partly throttled bin)
    # must not pull throttled power into P(t_signal).
    drop = min(drop, t_signal)
    p = mean_power_kw(power_kw, drop - pd.Timedelta(seconds=pre_s), drop, _grid_s(power_kw))
    if np.isnan(p):
        notes.append("no data before the signal for P(t_signal)")
    return p


def post_clear_window(power_kw: pd.Series, t_clear: pd.Timestamp, edges: Edges, settle_s: float, fit_s: float,
                      notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(seconds after t_clear of bin mids, bin power) over `fit_s` starting `settle_s` after the recovery."""
    grid_s = _grid_s(power_kw)
    recovery = edges.recovery_at if edges.recovery_at is not None else t_clear
    if edges.recovery_at is None:
        notes.append("no recovery detected: post-clear fit starts at the given clear time")
    fit_from = max(recovery, t_clear) + pd.Timedelta(seconds=settle_s)
    mids = power_kw.index + pd.Timedelta(seconds=grid_s / 2)
    inside = (power_kw.index >= fit_from) & (mids <= fit_from + pd.Timedelta(seconds=fit_s))
    return (mids[inside] - t_clear).total_seconds().to_numpy(), power_kw.to_numpy()[inside]


def pre_signal_window(power_kw: pd.Series, t_signal: pd.Timestamp, edges: Edges,
                      fit_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(seconds after t_signal of bin mids, bin power) over the `fit_s` before the drop."""
    grid_s = _grid_s(power_kw)
    drop = min(edges.drop_at if edges.drop_at is not None else t_signal, t_signal)
    mids = power_kw.index + pd.Timedelta(seconds=grid_s / 2)
    inside = (power_kw.index >= drop - pd.Timedelta(seconds=fit_s)) & (power_kw.index + pd.Timedelta(seconds=grid_s)
                                                                      <= drop)
    return (mids[inside] - t_signal).total_seconds().to_numpy(), power_kw.to_numpy()[inside]


@register_baseline("trend")
def trend(power_kw: pd.Series, t_signal: pd.Timestamp, t_clear: pd.Timestamp, *, pre_s: float = 600.0,
          settle_s: float = 120.0, fit_s: float = 600.0, edges: Edges | None = None, rec: object = None) -> Baseline:
    """One least-squares line through the `pre_s` before the drop AND the trapezoid's post-clear window.

    The pre-signal slope holds the fleet's trend back where the post-clear slope alone (catch-up
    charging, sessions ending) would be extrapolated backwards into the window.
    """
    edges = edges or detect_edges(power_kw, t_signal, t_clear)
    notes: list[str] = []
    xa, ya = pre_signal_window(power_kw, t_signal, edges, pre_s)
    xb, yb = post_clear_window(power_kw, t_clear, edges, settle_s, fit_s, notes)
    span = (t_clear - t_signal).total_seconds()
    if len(xa) < 2 or len(xb) < 2:
        notes.append("not enough data before the signal and after clearing for the trend line")
        return Baseline("trend", t_signal, t_clear, float("nan"), float("nan"), tuple(notes), edges)
    slope, intercept = np.polyfit(np.r_[xa, xb + span], np.r_[ya, yb], 1)
    return Baseline("trend", t_signal, t_clear, float(intercept), float(intercept + slope * span), tuple(notes),
                    edges)


@register_baseline("flat")
def flat_pre_signal(power_kw: pd.Series, t_signal: pd.Timestamp, t_clear: pd.Timestamp, *,
                    window_s: float = 600.0, edges: Edges | None = None, rec: object = None) -> Baseline:
    """Mean power over the `window_s` before the signal, held flat through the activation."""
    p = mean_power_kw(power_kw, t_signal - pd.Timedelta(seconds=window_s), t_signal, _grid_s(power_kw))
    notes = ("no data before the signal",) if np.isnan(p) else ()
    return Baseline("flat", t_signal, t_clear, p, p, notes, edges)
