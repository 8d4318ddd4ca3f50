"""Baselines from the sessions themselves: what each session would have drawn without the activation.

The aggregate trapezoid reads P(t_clear) from the power after the clear, which holds catch-up
charging (throttled sessions taking back what they missed) and carries the fleet's post-clear trend
back into the window. Here every session active in the window gets its own counterfactual:

- its power just before the signal, `P_pre` (a session starting inside the window: its power just
  after the clear, when it was free);
- a line from `P_pre` at t_signal to min(P_pre, P_post) at t_clear, `P_post` its power just after
  the clear: a session whose power after the clear is lower was tapering (it can only be further
  into its taper without the activation, having more energy), so its counterfactual tapers too;
- cut at its own end of data when it unplugged inside the window (departures do not depend on the
  activation), and never more than the energy it took from the window start to its end when it
  continued after the clear (a session that charged to full would have been full earlier).

`sessions` sums these counterfactuals; `rebound` keeps the trapezoid's shape but reads P(t_clear)
as the post-clear line of the sessions that were NOT throttled plus the throttled sessions'
counterfactual power at t_clear, so their catch-up stays out of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from settlement.core.baselines import Baseline, p_signal_kw, post_clear_window, register_baseline
from settlement.core.edges import Edges, detect_edges
from settlement.core.reconstruction import Reconstruction

THROTTLED_SHARE = 0.8  # a session whose window power fell below this share of P_pre was throttled


@dataclass(frozen=True)
class SessionWindow:
    """Per active session (arrays, one value each), seconds since the reconstruction's t0."""

    codes: np.ndarray
    start_s: np.ndarray  # max(first state, t_signal)
    end_s: np.ndarray  # min(last state, t_clear)
    p_pre_kw: np.ndarray
    p_clear_kw: np.ndarray  # counterfactual power at t_clear
    cap_kwh: np.ndarray  # most energy the counterfactual can take in the window (inf = no bound)
    delivered_kwh: np.ndarray
    throttled: np.ndarray  # bool


def _mean_kw(rec: Reconstruction, codes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean power of each session over [a, b) from its reconstructed energy (0 where b <= a)."""
    span = np.maximum(b - a, 1e-9)
    energy = rec.session_energy_at(codes, b) - rec.session_energy_at(codes, a)
    return np.where(b > a, energy / span * 3600.0, 0.0)


def session_window(rec: Reconstruction, t_signal: pd.Timestamp, t_clear: pd.Timestamp, *, pre_s: float = 120.0,
                   post_after_s: float = 60.0, post_s: float = 180.0, young_s: float = 600.0) -> SessionWindow:
    """Pre-signal and post-clear power, counterfactual end and energy bound of every session active
    in [t_signal, t_clear). Pure arithmetic on the reconstruction (memoised on it: the per-session
    baseline and the rebound both need it)."""
    memo_key = ("session_window", t_signal, t_clear, pre_s, post_after_s, post_s, young_s)
    if memo_key not in rec.memo:
        rec.memo[memo_key] = _session_window(rec, t_signal, t_clear, pre_s, post_after_s, post_s, young_s)
    return rec.memo[memo_key]


def _session_window(rec: Reconstruction, t_signal: pd.Timestamp, t_clear: pd.Timestamp, pre_s: float,
                    post_after_s: float, post_s: float, young_s: float) -> SessionWindow:
    ts, tc = rec.seconds([t_signal, t_clear])
    codes = np.flatnonzero((rec.first_s < tc) & (rec.last_s > ts))
    first, last = rec.first_s[codes], rec.last_s[codes]
    start, end = np.maximum(first, ts), np.minimum(last, tc)
    pre_from = np.maximum(first, ts - pre_s)
    p_pre = _mean_kw(rec, codes, pre_from, np.full(len(codes), ts))
    post_a = np.full(len(codes), tc + post_after_s)
    p_post = _mean_kw(rec, codes, post_a, np.minimum(last, tc + post_after_s + post_s))
    started_inside = first >= ts
    p_pre = np.where(started_inside, p_post, p_pre)
    # A session whose real data begin shortly before the signal has its pre-signal level from little
    # data (kWh-only: from an interval the cap already cut into); its free level after the clear,
    # when higher, is the better estimate.
    real_code, real_t = rec.states["code"].to_numpy(), rec.states["t"].to_numpy()
    first_real = real_t[np.minimum(np.searchsorted(real_code, codes), len(real_t) - 1)] if len(real_t) else first
    young = ~started_inside & (first_real > ts - young_s)
    p_pre = np.where(young, np.maximum(p_pre, p_post), p_pre)
    continues = last > tc
    p_clear = np.where(continues, np.minimum(p_pre, p_post), p_pre)
    e_start = rec.session_energy_at(codes, start)
    delivered = rec.session_energy_at(codes, end) - e_start
    cap = np.where(continues, rec.session_energy_at(codes, last) - e_start, np.inf)
    window_kw = _mean_kw(rec, codes, np.minimum(start + 60.0, end), end)
    throttled = (p_pre > 0) & (window_kw < THROTTLED_SHARE * p_pre)
    return SessionWindow(codes, start - ts, end - ts, p_pre, p_clear, cap, delivered, throttled)


def counterfactual_curve(w: SessionWindow, span_s: float, step_s: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """(seconds since t_signal, cumulative kWh of the summed counterfactuals) on a `step_s` grid."""
    x = np.unique(np.r_[np.arange(0.0, span_s, step_s), span_s])
    return x, session_counterfactual_kwh(w, x, span_s).sum(axis=0)


def session_counterfactual_kwh(w: SessionWindow, x: np.ndarray, span_s: float) -> np.ndarray:
    """Cumulative counterfactual kWh of each session (rows) at `x` seconds since t_signal (columns)."""
    slope = (w.p_clear_kw - w.p_pre_kw) / span_s  # kW per second along the window
    # Each session's line runs from its start to its end; power at u is p_pre + slope * u.
    u0 = w.start_s[:, None]
    u1 = np.clip(x[None, :], u0, w.end_s[:, None])
    p0 = w.p_pre_kw[:, None] + slope[:, None] * u0
    p1 = w.p_pre_kw[:, None] + slope[:, None] * u1
    energy = (p0 + p1) / 2.0 * (u1 - u0) / 3600.0
    return np.minimum(energy, w.cap_kwh[:, None])


def rebound_kwh(rec: Reconstruction, t_signal: pd.Timestamp, t_clear: pd.Timestamp,
                bounds: list[pd.Timestamp], *, until: pd.Timestamp | None = None, tail_s: float = 300.0,
                full_share: float = 0.5, step_s: float = 30.0) -> np.ndarray:
    """Energy the throttled sessions took back after the clear, in each [bounds[j], bounds[j + 1]).

    A session's charging power follows its state of charge, so after the clear it runs the curve it
    would have run without the activation, `d` seconds late, `d` being the time it needs after the
    clear to draw its shed (its counterfactual minus its delivered energy in the window). Without the
    activation its energy at T would have been E(T + d); what it still lacks at T is
    E(T + d) - E(T), and the rebound up to T is its shed minus that. A session that charged to full
    (power over its last `tail_s` below `full_share` of its pre-signal power) takes its shed back in
    full once it is full; one that unplugged while drawing would have kept drawing at its last power,
    so it never takes its shed back (the shed is never delivered). Nothing after `until` (the next
    activation's signal) is read: a session's energy there is extrapolated at its power just before.
    Pure arithmetic on the reconstruction.
    """
    out = np.zeros(max(len(bounds) - 1, 0))
    w = session_window(rec, t_signal, t_clear)
    tc = rec.seconds(t_clear)[0]
    if not len(w.codes) or len(bounds) < 2:
        return out
    span = (t_clear - t_signal).total_seconds()
    shed = session_counterfactual_kwh(w, np.array([span]), span)[:, 0] - w.delivered_kwh
    keep = w.throttled & (rec.last_s[w.codes] > tc) & (shed > 0)
    codes, shed, p_pre = w.codes[keep], shed[keep], w.p_pre_kw[keep]
    if not len(codes):
        return out
    until_s = np.inf if until is None else rec.seconds(until)[0]
    ended = rec.last_s[codes] <= until_s
    last = np.minimum(rec.last_s[codes], until_s)
    tail_kw = _mean_kw(rec, codes, np.maximum(last - tail_s, rec.first_s[codes]), last)
    # after its data: full (nothing more) or still drawing; after `until`: as before it
    beyond_kw = np.where(ended & (tail_kw < full_share * p_pre), 0.0, tail_kw)

    def energy(t: np.ndarray) -> np.ndarray:  # t: one row per session
        flat_codes = np.repeat(codes, t.shape[1])
        e = rec.session_energy_at(flat_codes, np.minimum(t, last[:, None]).ravel()).reshape(t.shape)
        return e + beyond_kw[:, None] * np.maximum(t - last[:, None], 0.0) / 3600.0

    # d is needed at every bound; a session that takes longer than the window plus an hour to draw its
    # shed keeps it (counted as never delivered within the window).
    horizon_s = rec.seconds(bounds[-1])[0] - tc + 3600.0
    u = tc + np.arange(0.0, horizon_s + step_s, step_s)
    at_clear = rec.session_energy_at(codes, np.full(len(codes), tc))
    taken = energy(np.broadcast_to(u, (len(codes), len(u)))) - at_clear[:, None]
    reached = taken >= shed[:, None]
    j = np.argmax(reached, axis=1)
    ok = reached.any(axis=1) & (j > 0)
    jj = np.maximum(j, 1)
    rows = np.arange(len(codes))
    lo, hi = taken[rows, jj - 1], taken[rows, jj]
    frac = np.where(hi > lo, (shed - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)
    delay = (jj - 1 + frac) * step_s
    b_s = rec.seconds(bounds)
    at = np.broadcast_to(b_s, (len(codes), len(b_s)))
    lacking = energy(at + delay[:, None]) - energy(at)
    back = np.clip(shed[:, None] - lacking, 0.0, shed[:, None])
    back = np.where(ok[:, None], back, 0.0)  # not taken back within the horizon: counted as never delivered
    return np.diff(back, axis=1).sum(axis=0)


@register_baseline("sessions")
def per_session(power_kw: pd.Series, t_signal: pd.Timestamp, t_clear: pd.Timestamp, *,
                edges: Edges | None = None, rec: Reconstruction | None = None) -> Baseline:
    """The sum of per-session counterfactuals (module doc)."""
    edges = edges or detect_edges(power_kw, t_signal, t_clear)
    if rec is None:
        raise ValueError("the sessions baseline needs the reconstruction")
    span = (t_clear - t_signal).total_seconds()
    w = session_window(rec, t_signal, t_clear)
    if not len(w.codes):
        return Baseline("sessions", t_signal, t_clear, 0.0, 0.0, ("no active sessions",), edges)
    curve = counterfactual_curve(w, span)
    at_signal = w.start_s <= 0
    at_clear = w.end_s >= span
    return Baseline("sessions", t_signal, t_clear, float(w.p_pre_kw[at_signal].sum()),
                    float(w.p_clear_kw[at_clear].sum()), (), edges, curve)


@register_baseline("rebound")
def rebound_aware(power_kw: pd.Series, t_signal: pd.Timestamp, t_clear: pd.Timestamp, *, pre_s: float = 120.0,
                  settle_s: float = 120.0, fit_s: float = 600.0, edges: Edges | None = None,
                  rec: Reconstruction | None = None) -> Baseline:
    """The trapezoid with P(t_clear) = post-clear line of the unthrottled sessions + the throttled
    sessions' counterfactual power at t_clear (their catch-up left out)."""
    edges = edges or detect_edges(power_kw, t_signal, t_clear)
    if rec is None:
        raise ValueError("the rebound baseline needs the reconstruction")
    notes: list[str] = []
    p_signal = p_signal_kw(power_kw, t_signal, edges, pre_s, notes)
    x, total = post_clear_window(power_kw, t_clear, edges, settle_s, fit_s, notes)
    if len(x) < 2:
        notes.append("not enough data after clearing to fit P(t_clear)")
        return Baseline("rebound", t_signal, t_clear, p_signal, float("nan"), tuple(notes), edges)
    w = session_window(rec, t_signal, t_clear)
    codes = w.codes[w.throttled]
    grid_s = rec.grid_s
    tc = rec.seconds(t_clear)[0]
    lo, hi = tc + x - grid_s / 2, tc + x + grid_s / 2  # the fitted bins
    throttled_kw = np.zeros(len(x))
    if len(codes):
        e_hi = rec.session_energy_at(np.repeat(codes, len(x)), np.tile(hi, len(codes)))
        e_lo = rec.session_energy_at(np.repeat(codes, len(x)), np.tile(lo, len(codes)))
        throttled_kw = (e_hi - e_lo).reshape(len(codes), len(x)).sum(axis=0) / grid_s * 3600.0
    intercept = float(np.polyfit(x, total - throttled_kw, 1)[1])
    p_clear = intercept + float(w.p_clear_kw[w.throttled & (w.end_s >= (t_clear - t_signal).total_seconds())].sum())
    return Baseline("rebound", t_signal, t_clear, p_signal, p_clear, tuple(notes), edges)
