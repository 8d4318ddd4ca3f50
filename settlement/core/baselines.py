"""Pluggable baselines: name -> function(aggregate power, t_signal, t_clear) -> Baseline.

Every baseline is a straight line from (t_signal, p_signal_kw) to (t_clear, p_clear_kw), so its
energy over any sub-window (an ISP) is the area of a trapezoid and splits linearly in time.
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

    def power_at(self, when: pd.Timestamp) -> float:
        span = (self.t_clear - self.t_signal).total_seconds()
        x = (when - self.t_signal).total_seconds() / span
        return self.p_signal_kw + (self.p_clear_kw - self.p_signal_kw) * x

    def energy_kwh(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> float:
        """Area under the line between start and end (default: the whole activation), in kWh."""
        start = self.t_signal if start is None else max(start, self.t_signal)
        end = self.t_clear if end is None else min(end, self.t_clear)
        if not end > start:
            return 0.0
        hours = (end - start).total_seconds() / 3600.0
        return (self.power_at(start) + self.power_at(end)) * hours / 2.0


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
              edges: Edges | None = None) -> Baseline:
    """The paper's baseline.

    P(t_signal): mean power over `pre_s` just before the drop (the detected drop or the given signal
    time, whichever is earlier). P(t_clear): a least-squares line through the bin powers over `fit_s` starting
    `settle_s` after the detected recovery (so the ramp itself is not fitted), evaluated at t_clear.
    """
    grid_s = _grid_s(power_kw)
    edges = edges or detect_edges(power_kw, t_signal, t_clear)
    notes: list[str] = []
    drop = edges.drop_at if edges.drop_at is not None else t_signal
    if edges.drop_at is None:
        notes.append("no drop detected: P(t_signal) read before the given signal time")
    # The drop cannot start before the signal; a late detected edge (latency, a partly throttled bin)
    # must not pull throttled power into P(t_signal).
    drop = min(drop, t_signal)
    p_signal = mean_power_kw(power_kw, drop - pd.Timedelta(seconds=pre_s), drop, grid_s)
    recovery = edges.recovery_at if edges.recovery_at is not None else t_clear
    if edges.recovery_at is None:
        notes.append("no recovery detected: post-clear fit starts at the given clear time")
    fit_from = max(recovery, t_clear) + pd.Timedelta(seconds=settle_s)
    mids = power_kw.index + pd.Timedelta(seconds=grid_s / 2)
    window = power_kw[(power_kw.index >= fit_from) & (mids <= fit_from + pd.Timedelta(seconds=fit_s))]
    if len(window) >= 2:
        x = (mids[power_kw.index.get_indexer(window.index)] - t_clear).total_seconds().to_numpy()
        _slope, intercept = np.polyfit(x, window.to_numpy(), 1)
        p_clear = float(intercept)  # the line at x = 0, i.e. at t_clear
    else:
        p_clear = float("nan")
        notes.append("not enough data after clearing to fit P(t_clear)")
    if np.isnan(p_signal):
        notes.append("no data before the signal for P(t_signal)")
    return Baseline("trapezoid", t_signal, t_clear, p_signal, p_clear, tuple(notes), edges)


@register_baseline("flat")
def flat_pre_signal(power_kw: pd.Series, t_signal: pd.Timestamp, t_clear: pd.Timestamp, *,
                    window_s: float = 600.0, edges: Edges | None = None) -> Baseline:
    """Mean power over the `window_s` before the signal, held flat through the activation."""
    p = mean_power_kw(power_kw, t_signal - pd.Timedelta(seconds=window_s), t_signal, _grid_s(power_kw))
    notes = ("no data before the signal",) if np.isnan(p) else ()
    return Baseline("flat", t_signal, t_clear, p, p, notes, edges)
