"""Per-session power on a common UTC grid from unaligned ~5-minute states.

Each session's cumulative energy is a piecewise function of time that passes exactly through every
state's kWh (decreases clipped to zero and flagged). Inside an interval between two states the
*shape* comes from the instantaneous currents at both ends:

- ``step`` (default): curtailment makes charging current a step function, so the power is held at
  the first state's level until an instant tau and at the second state's level after it; tau is
  chosen so the area matches the energy (clipped to the interval), then the shape is scaled so the
  energy matches exactly (absorbs voltage and power factor differences from the 230 V assumption);
- ``linear``: currents interpolated linearly, scaled so the energy matches;
- flat (fallback): currents missing or zero at both ends while energy rose;
- ``notch`` (when activation windows are given): an activation lying wholly between two states
  leaves no trace in their currents (both show the free level), only an energy shortfall. If the
  energy is below what the end currents explain, the power is held at the first state's level until
  the window, at a constant level inside it, and at the second state's level after it; the level is
  what makes the energy exact (at least 0). Energy inside the window is then exact whenever the power
  outside it equalled the end currents, whatever the response latency.

A session's first state often has kWh > 0 (the push came a little after plug-in). If its current
explains that energy within ``max_lead_s``, a virtual zero-kWh state is placed that long before it, so
a session starting during an activation counts fully (E_i(t_signal) = 0 in formula 1).

Everything is vectorised over the whole sorted frame (no per-session Python loop). Each interval
becomes one or two *pieces* of power c + m (t - s) on [s, e); the aggregate cumulative energy at
every grid edge is a sum of truncated polynomials, computed with three bincounts and cumsums
(O(pieces), independent of how many bins a piece spans). The theoretical-minimum curve is the
same sum over the pieces clipped at the session's 8 A power.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from settlement.core.frames import CleanStates, active_phases, clean_states, total_current_a

KW_PER_A_PHASE = 0.230  # 230 V per phase, unity power factor
MIN_CURRENT_A = 8.0
FLAT, LINEAR, STEP, NOTCH = 0, 1, 2, 3
SHAPES = {"step": STEP, "linear": LINEAR, "flat": FLAT}
NS = 1_000_000_000


@dataclass(frozen=True)
class ReconstructionParams:
    grid_s: float = 60.0
    shape: str = "step"
    gap_s: float = 900.0  # an interval longer than this is a data gap (energy kept, flagged)
    max_lead_s: float = 900.0
    min_current_a: float = MIN_CURRENT_A

    def __post_init__(self) -> None:
        if not self.grid_s > 0:
            raise ValueError("grid_s must be positive")
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}")


@dataclass(eq=False)
class Reconstruction:
    """The reconstructed energy functions of all sessions, plus aggregate curves on the grid."""

    params: ReconstructionParams
    t0: pd.Timestamp  # left edge of bin 0 (UTC), a multiple of grid_s since the epoch
    n_bins: int
    session_ids: np.ndarray
    evse_uids: np.ndarray
    phases: np.ndarray  # per session, NaN = unknown
    first_s: np.ndarray  # per session: first (possibly virtual) state, seconds since t0
    last_s: np.ndarray
    # per state, sorted by (code, t); interval k runs from state k to k+1 (T = 0 at a session's end)
    code: np.ndarray
    t: np.ndarray
    e_kwh: np.ndarray  # reconstructed cumulative energy, 0 at the session's first state
    interval_s: np.ndarray
    delta_kwh: np.ndarray
    mode: np.ndarray
    a_kw: np.ndarray
    b_kw: np.ndarray
    tau_s: np.ndarray
    notch_s: np.ndarray  # NOTCH intervals: the window's length (it starts tau_s into the interval)
    notch_kw: np.ndarray  # NOTCH intervals: the unscaled level inside the window
    bin_energy_kwh: np.ndarray  # aggregate energy per grid bin
    bin_theoretical_kwh: np.ndarray  # same with every session above the minimum set to it
    session_flags: pd.DataFrame
    states: pd.DataFrame = field(repr=False)  # cleaned real states: code, timestamp, kwh, currents, t
    # Built on first use and kept: the (session, time) search key over every state, and memos of pure
    # functions of this reconstruction (counterfactual.session_window). Profiled: rebuilding the key
    # per query was half of the compute on a 16,000-point day (~800 queries over 1.3 M states).
    _search: tuple[float, float, np.ndarray] | None = field(default=None, init=False, repr=False)
    memo: dict = field(default_factory=dict, init=False, repr=False)

    @property
    def grid_s(self) -> float:
        return self.params.grid_s

    @property
    def index(self) -> pd.DatetimeIndex:
        return pd.date_range(self.t0, periods=self.n_bins, freq=pd.Timedelta(seconds=self.grid_s), name="t")

    def power_kw(self) -> pd.Series:
        """Aggregate power (bin mean, kW) indexed by bin start."""
        return pd.Series(self.bin_energy_kwh * 3600.0 / self.grid_s, index=self.index, name="power_kw")

    def theoretical_kw(self) -> pd.Series:
        return pd.Series(self.bin_theoretical_kwh * 3600.0 / self.grid_s, index=self.index, name="theoretical_kw")

    def seconds(self, when) -> np.ndarray:
        """Seconds since t0 for aware timestamps (scalar or array-like)."""
        ns = pd.DatetimeIndex(np.atleast_1d(pd.to_datetime(when, utc=True))).as_unit("ns").asi8
        return (ns - self.t0.value) / NS

    def partial_kwh(self, k: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Energy of interval k delivered in its first u seconds."""
        return _partial(u, self.interval_s[k], self.delta_kwh[k], self.mode[k], self.a_kw[k], self.b_kw[k],
                        self.tau_s[k], self.notch_s[k], self.notch_kw[k])

    def session_energy_at(self, codes: np.ndarray, t: np.ndarray) -> np.ndarray:
        """E_i(t): reconstructed cumulative kWh of sessions `codes` at seconds `t` (0 before the first state)."""
        codes = np.asarray(codes, dtype=np.int64)
        t = np.broadcast_to(np.asarray(t, dtype=float), codes.shape)
        if not len(self.t):
            return np.zeros(codes.shape)
        t_max, width, key = self._search_key()
        # Clipping keeps each query inside its session's key range; E is constant outside the data.
        t = np.clip(t, -1.0, t_max + 1.0)
        idx = np.searchsorted(key, codes * width + t, side="right") - 1
        ok = idx >= 0
        idx_c = np.where(ok, idx, 0)
        ok &= self.code[idx_c] == codes
        energy = self.e_kwh[idx_c] + self.partial_kwh(idx_c, t - self.t[idx_c])
        return np.where(ok, energy, 0.0)


    def _search_key(self) -> tuple[float, float, np.ndarray]:
        """(last time, width of one session's key range, sorted key code * width + t of every state)."""
        if self._search is None:
            t_max = self.t.max()
            width = t_max + 10.0
            self._search = (t_max, width, self.code * width + self.t)
        return self._search


def _partial(u, T, dE, mode, a, b, tau, notch, level) -> np.ndarray:
    """Energy of an interval (length T, energy dE, shape mode/a/b/tau/notch/level) in its first u seconds."""
    u = np.clip(u, 0.0, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        flat = dE * u / T
        lin = dE * (a * u + (b - a) * u * u / (2 * T)) / ((a + b) * T / 2)
        step = dE * (a * np.minimum(u, tau) + b * np.maximum(u - tau, 0.0)) / (a * tau + b * (T - tau))
        after = T - tau - notch
        dip = dE * (a * np.minimum(u, tau) + level * np.clip(u - tau, 0.0, notch)
                    + b * np.maximum(u - tau - notch, 0.0)) / (a * tau + level * notch + b * after)
    out = np.select([mode == LINEAR, mode == STEP, mode == NOTCH], [lin, step, dip], flat)
    out = np.where(np.isfinite(out), out, flat)
    out = np.where(u >= T, dE, out)
    return np.where(T > 0, out, 0.0)


def _owner(starts: np.ndarray, n: int) -> np.ndarray:
    """For runs starting at `starts` (sorted, distinct, starts[0] == 0) covering n items: the run of each."""
    marks = np.zeros(n, np.int64)
    marks[starts[1:]] = 1
    return np.cumsum(marks)


def _flag_text(counts: dict[str, np.ndarray], n: int) -> np.ndarray:
    out = np.full(n, "", dtype=object)
    for name, count in counts.items():
        hit = np.flatnonzero(count > 0)
        for i in hit:  # only flagged sessions: a handful, not the hot path
            label = name if count[i] == 1 else f"{name} x{count[i]}"
            out[i] = label if not out[i] else f"{out[i]}; {label}"
    return out


@dataclass(frozen=True)
class _Observed:
    """The cleaned real states as arrays, sorted by (session code, time)."""

    clean: CleanStates
    code: np.ndarray
    ns: np.ndarray
    kwh: np.ndarray
    power_kw: np.ndarray  # from the phase currents at 230 V; NaN where no current was reported
    first_rows: np.ndarray  # each session's first row


@dataclass(frozen=True)
class _Intervals:
    """Interval k runs from state k to state k + 1 of the same session (length 0 at a session's end)."""

    next_state: np.ndarray
    same_session: np.ndarray  # state k + 1 belongs to the same session
    kwh_decrease: np.ndarray  # a meter reset or bad value: flagged, never integrated as negative
    delta_kwh: np.ndarray
    length_s: np.ndarray
    first_rows: np.ndarray  # each session's first and last state (virtual starts included)
    last_rows: np.ndarray
    energy_before: np.ndarray  # cumulative delta_kwh over all states before state k (one extra at the end)
    e_kwh: np.ndarray  # each state's cumulative energy since its session's first state


def reconstruct(states: pd.DataFrame, params: ReconstructionParams | None = None,
                windows: pd.DataFrame | None = None) -> Reconstruction:
    """Rebuild every session's energy function and the aggregate power on the grid.

    `windows` (t_signal, t_clear; aware, not overlapping) are the activations: an interval between two
    states that holds a whole window and falls short of its end currents' energy gets the notch shape.
    """
    params = params or ReconstructionParams()
    observed = _observe(states)
    code, ns, kwh, power_kw, lead = _with_virtual_starts(observed.code, observed.ns, observed.kwh,
                                                         observed.power_kw, observed.first_rows, params.max_lead_s)
    t0_ns, t, n_bins = _grid(ns, params.grid_s)
    intervals = _intervals(code, t, kwh)
    start_kw, end_kw, start_from_prev = _end_powers(power_kw, intervals.next_state, intervals.same_session,
                                                    intervals.delta_kwh, intervals.length_s, params.gap_s)
    usable = np.isfinite(start_kw) & np.isfinite(end_kw) & (start_kw + end_kw > 0)
    from_energy_alone = intervals.same_session & usable & ~(np.isfinite(power_kw)
                                                            & np.isfinite(power_kw[intervals.next_state]))
    mode, tau, notch_s, notch_kw = _shapes(params.shape, t, intervals.length_s, intervals.delta_kwh, start_kw,
                                           end_kw, intervals.same_session & usable, from_energy_alone,
                                           _window_seconds(windows, t0_ns) if len(code) else None, start_from_prev)
    phases = _session_phases(observed)
    rec = Reconstruction(
        params=params, t0=pd.Timestamp(t0_ns, tz="UTC"), n_bins=n_bins, session_ids=observed.clean.session_ids,
        evse_uids=observed.clean.evse_uids, phases=phases, first_s=t[intervals.first_rows],
        last_s=t[intervals.last_rows], code=code, t=t, e_kwh=intervals.e_kwh, interval_s=intervals.length_s,
        delta_kwh=intervals.delta_kwh, mode=mode, a_kw=np.nan_to_num(start_kw), b_kw=np.nan_to_num(end_kw),
        tau_s=tau, notch_s=notch_s, notch_kw=notch_kw, bin_energy_kwh=np.zeros(n_bins),
        bin_theoretical_kwh=np.zeros(n_bins),
        session_flags=pd.DataFrame(), states=observed.clean.frame.assign(t=(observed.ns - t0_ns) / NS),
    )
    rec.bin_energy_kwh, rec.bin_theoretical_kwh = _aggregate_curves(rec)
    no_current = intervals.same_session & (intervals.delta_kwh > 0) & ~usable
    rec.session_flags = _session_flags(rec, observed, intervals, no_current, lead)
    return rec


def _observe(states: pd.DataFrame) -> _Observed:
    clean = clean_states(states)
    frame = clean.frame
    code = frame["code"].to_numpy()
    first_rows = np.flatnonzero(np.r_[True, code[1:] != code[:-1]]) if len(frame) else np.zeros(0, int)
    return _Observed(clean, code, frame["timestamp"].array.asi8, frame["kwh"].to_numpy(float),
                     total_current_a(frame) * KW_PER_A_PHASE, first_rows)


def _grid(ns: np.ndarray, grid_s: float) -> tuple[int, np.ndarray, int]:
    """(t0 in ns: a multiple of the grid step at or before the first state, seconds since t0 per state,
    number of bins up to the last state)."""
    if not len(ns):
        return 0, np.zeros(0), 1
    grid_ns = round(grid_s * NS)
    t0_ns = (int(ns.min()) // grid_ns) * grid_ns
    t = (ns - t0_ns) / NS
    return t0_ns, t, max(1, int(np.ceil(t.max() / grid_s)))


def _intervals(code: np.ndarray, t: np.ndarray, kwh: np.ndarray) -> _Intervals:
    n = len(code)
    next_state = np.minimum(np.arange(n) + 1, max(n - 1, 0))
    same_session = np.r_[code[1:] == code[:-1], False] if n else np.zeros(0, bool)
    raw_kwh = np.where(same_session, kwh[next_state] - kwh, 0.0)
    delta_kwh = np.maximum(raw_kwh, 0.0)
    first_rows = np.flatnonzero(np.r_[True, code[1:] != code[:-1]]) if n else np.zeros(0, int)
    last_rows = np.r_[first_rows[1:] - 1, n - 1] if n else np.zeros(0, int)
    energy_before = np.r_[0.0, np.cumsum(delta_kwh)]
    return _Intervals(
        next_state=next_state, same_session=same_session, kwh_decrease=same_session & (raw_kwh < 0),
        delta_kwh=delta_kwh, length_s=np.where(same_session, t[next_state] - t, 0.0), first_rows=first_rows,
        last_rows=last_rows, energy_before=energy_before,
        e_kwh=energy_before[:n] - energy_before[first_rows][code] if n else np.zeros(0))


def _window_seconds(windows: pd.DataFrame | None, t0_ns: int) -> np.ndarray | None:
    """The activation windows as [t_signal, t_clear] seconds since t0, sorted by signal; None without any."""
    if windows is None or not len(windows):
        return None
    bounds_ns = pd.to_datetime(windows[["t_signal", "t_clear"]].to_numpy().ravel(), utc=True).as_unit("ns").asi8
    seconds = (bounds_ns.reshape(-1, 2) - t0_ns) / NS
    return seconds[np.argsort(seconds[:, 0], kind="stable")]


def _session_phases(observed: _Observed) -> np.ndarray:
    """Per session, the most phases seen drawing current; NaN = never seen (kWh only, or all zero)."""
    phases = np.full(len(observed.clean.session_ids), np.nan)
    if len(observed.code):
        phases = np.maximum.reduceat(active_phases(observed.clean.frame), observed.first_rows).astype(float)
        phases[phases == 0] = np.nan
    return phases


def _aggregate_curves(rec: Reconstruction) -> tuple[np.ndarray, np.ndarray]:
    """Energy per grid bin of all sessions, and the same with every session held to its minimum-current power."""
    start_s, length_s, level_kw, slope_kw_per_s, interval = _pieces(rec)
    energy = _bin_energy(start_s, length_s, level_kw, slope_kw_per_s, rec.n_bins, rec.grid_s)
    floor_kw = rec.phases[rec.code[interval]] * KW_PER_A_PHASE * rec.params.min_current_a
    theoretical = _bin_energy(*_clip_pieces(start_s, length_s, level_kw, slope_kw_per_s, floor_kw), rec.n_bins,
                              rec.grid_s)
    return energy, theoretical


def _session_flags(rec: Reconstruction, observed: _Observed, intervals: _Intervals, no_current: np.ndarray,
                   lead: np.ndarray) -> pd.DataFrame:
    n_sessions = len(rec.session_ids)
    code, clean = rec.code, observed.clean
    n_real = np.bincount(observed.code, minlength=n_sessions)
    flags = _flag_text({
        "single_state": (n_real == 1).astype(int),
        "kwh_decrease": np.bincount(code[intervals.kwh_decrease], minlength=n_sessions),
        "gap": np.bincount(code[intervals.same_session & (intervals.length_s > rec.params.gap_s)],
                           minlength=n_sessions),
        "energy_without_current": np.bincount(code[no_current], minlength=n_sessions),
        "started_before_data": ((observed.kwh[observed.first_rows] > 0) & ~lead).astype(int),
        "kwh_only": np.bincount(observed.code[np.isnan(observed.power_kw)], minlength=n_sessions),
        "conflicting_duplicates": clean.conflicts,
        "duplicates": clean.duplicates,
    }, n_sessions)
    cumulative = intervals.energy_before
    return pd.DataFrame({
        "session_id": rec.session_ids, "evse_uid": rec.evse_uids, "n_states": n_real, "phases": rec.phases,
        "energy_kwh": cumulative[intervals.last_rows + 1] - cumulative[intervals.first_rows] if len(code)
        else np.zeros(0), "flags": flags,
    })


def _with_virtual_starts(code: np.ndarray, ns: np.ndarray, kwh: np.ndarray, p_kw: np.ndarray, starts: np.ndarray,
                         max_lead_s: float) -> tuple[np.ndarray, ...]:
    """The states plus a virtual zero-kWh state before every first state whose energy its power explains
    within `max_lead_s` (module doc); a kWh-only first state uses its first interval's mean power.
    Returns (code, ns, kwh, p_kw) sorted by (code, ns), and which sessions got one."""
    k0, p0 = kwh[starts], p_kw[starts]
    if len(code):
        second = np.minimum(starts + 1, len(code) - 1)
        has_second = (second > starts) & (code[second] == code[starts])
        with np.errstate(divide="ignore", invalid="ignore"):
            m0 = (kwh[second] - k0) / ((ns[second] - ns[starts]) / NS) * 3600.0
        p0 = np.where(np.isnan(p0) & has_second, m0, p0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lead_s = np.where(p0 > 0, k0 / p0 * 3600.0, np.inf)
    lead = (k0 > 0) & (lead_s <= max_lead_s)
    li = starts[lead]
    code_v = np.r_[code, code[li]]
    ns_v = np.r_[ns, ns[li] - np.round(lead_s[lead] * NS).astype(np.int64)]
    kwh_v = np.r_[kwh, np.zeros(len(li))]
    p_v = np.r_[p_kw, p_kw[li]]
    if len(li):
        order = np.lexsort((ns_v, code_v))
        code_v, ns_v, kwh_v, p_v = code_v[order], ns_v[order], kwh_v[order], p_v[order]
    return code_v, ns_v, kwh_v, p_v, lead


def _shapes(shape: str, t, T, dE, a, b, usable, derived, w, a_from_prev=None) -> tuple[np.ndarray, ...]:
    """Per interval: mode, tau, notch length and level (a and b may be changed in place at window edges).

    `usable`: both end powers known and not both zero; `derived`: an end power comes from energy alone;
    `w`: the activation windows (seconds since t0, sorted) or None; `a_from_prev`: the start power is
    the previous interval's mean (a kWh-only state).
    """
    n = len(t)
    mode = np.full(n, FLAT, np.int8)
    tau = np.zeros(n)
    if shape != "flat":
        mode[usable] = LINEAR
    if shape == "step":
        stepping = usable & (a != b)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_kw = dE / (T / 3600.0)
            tau = np.where(stepping, np.clip(T * (mean_kw - b) / (a - b), 0.0, T), 0.0)
        mode[stepping] = STEP
    notch_s, notch_kw = np.zeros(n), np.zeros(n)
    if w is not None and shape != "flat":
        _window_edges(t, T, dE, a, b, derived, w, mode, tau,
                      np.zeros(n, bool) if a_from_prev is None else a_from_prev)
        _notches(t, T, dE, a, b, usable, derived, w, mode, tau, notch_s, notch_kw)
    return mode, tau, notch_s, notch_kw


def _end_powers(p_kw: np.ndarray, nxt: np.ndarray, same: np.ndarray, dE: np.ndarray, T: np.ndarray,
                gap_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power at both ends of every interval: the states' measured currents, or for a kWh-only state the
    mean power of the neighbouring interval on that side (shape from energy alone), and where the start
    power is the previous interval's mean.

    A cap, a clear or a taper inside an interval then becomes a step from the level before to the
    level after it, placed where the interval's energy says (the notch when a whole window lies inside).
    Without a usable neighbour (first or last interval, a data gap) the interval's own mean is used.
    """
    n = len(p_kw)
    if not n:
        return p_kw, p_kw, np.zeros(0, bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(same & (T > 0), dE / T * 3600.0, np.nan)
    ok = same & (T <= gap_s) & np.isfinite(mean)
    prev = np.r_[0, np.arange(n - 1)]
    prev_ok = np.r_[False, ok[:-1]] & ok
    next_ok = np.r_[ok[1:], False] & ok
    before = np.where(prev_ok, mean[prev], mean)
    after = np.where(next_ok, mean[nxt], mean)
    a = np.where(np.isfinite(p_kw), p_kw, before)
    b = np.where(np.isfinite(p_kw[nxt]), p_kw[nxt], after)
    return a, b, ~np.isfinite(p_kw) & prev_ok


def _window_edges(t, T, dE, a, b, derived, w, mode, tau, a_from_prev) -> None:
    """kWh-only intervals that hold a signal or a clear (not a whole window): a step at that edge (in place).

    Without currents the level inside the window is unknown; the neighbouring interval outside the
    window gives the free level, and the energy gives the level inside: power at the free level
    before the signal (after the clear) and at the level that makes the energy exact inside. At the
    clear, when the previous interval lies wholly inside the window (`a_from_prev`: its mean is the
    start power), that capped level is kept up to the clear and the energy gives the level after.
    """
    if not derived.any():
        return
    for edge, free_is_a in ((0, True), (1, False)):
        j = np.searchsorted(w[:, edge], t, side="right")  # the first edge after the interval's start
        jj = np.minimum(j, len(w) - 1)
        at = w[jj, edge]
        other = w[jj, 1 - edge]
        ok = derived & (j < len(w)) & (at < t + T)
        # the window's other end lies outside the interval (a whole window inside is the notch's case)
        ok &= (other >= t + T) if edge == 0 else (other <= t)
        outside = np.where(free_is_a, at - t, t + T - at)
        free = a if free_is_a else b
        with np.errstate(divide="ignore", invalid="ignore"):
            level = (dE * 3600.0 - free * outside) / (T - outside)
        ok &= np.isfinite(level) & (T - outside > 0) & (outside > 0)
        level = np.maximum(level, 0.0)
        if free_is_a:
            b[ok] = level[ok]
        else:
            # At the clear, when the previous interval lies wholly inside the window its mean is the
            # capped level, and the cap holds until the clear (a known instant): keep it inside and
            # let the energy give the level after (the next interval's mean misses a taper or a
            # catch-up right after the clear).
            prev_start = np.r_[np.nan, t[:-1]]
            capped = ok & a_from_prev & (prev_start >= other)
            with np.errstate(divide="ignore", invalid="ignore"):
                after = np.maximum((dE * 3600.0 - a * (T - outside)) / outside, 0.0)
            b[capped] = after[capped]
            a[ok & ~capped] = level[ok & ~capped]
        mode[ok] = STEP
        tau[ok] = (at - t)[ok]


def _notches(t, T, dE, a, b, usable, derived, w, mode, tau, notch_s, notch_kw) -> None:
    """Mark (in place) the intervals whose energy the end currents do not explain inside a window.

    The notch is the part of the interval inside the window [w0, w1]: the whole window when it lies
    inside the interval; with measured currents at both ends, also [t, w1] of an interval that starts
    inside the window and ends after the clear, at a state that still shows the free level because
    the cap was not yet in force at it (response latency), so that its end currents over-explain
    the energy. Outside the window the power is the end currents'; inside, the level that makes the
    energy exact.
    """
    # The last window starting before the interval's end; the interval overlaps it if it ends after t.
    j = np.searchsorted(w[:, 0], t + T, side="left") - 1
    ok = usable & (j >= 0) & (T > 0)
    jj = np.maximum(j, 0)
    w0, w1 = w[jj, 0], w[jj, 1]
    ok &= (w1 > t) & (w1 > w0)
    whole = (w0 > t) & (w1 < t + T)
    before, after = np.maximum(w0 - t, 0.0), np.maximum(t + T - w1, 0.0)
    inside = T - before - after
    # Started inside, ended after the clear, both currents measured (kWh-only edges: _window_edges).
    # Not an interval ending inside the window: a state there that still shows the free level was
    # before the cap took effect, so the interval holds no capped power to place.
    started_inside = (j >= 0) & (T > 0) & (w0 <= t) & (t < w1) & (w1 < t + T) & ~derived
    ok &= whole | started_inside
    with np.errstate(divide="ignore", invalid="ignore"):
        level = (dE * 3600.0 - a * before - b * after) / inside
    # a shortfall (beyond rounding): the end currents over-explain it
    ok &= np.isfinite(level) & (level < np.minimum(a, b) * (1.0 - 1e-9))
    mode[ok] = NOTCH
    tau[ok] = before[ok]
    notch_s[ok] = inside[ok]
    notch_kw[ok] = np.maximum(level[ok], 0.0)  # below zero: stopped in the window, rest scaled down
    # The same intervals when their first state already shows the cap (a below b): the cap holds
    # until the clear, a known instant, so the step goes there and the level after it is what makes
    # the energy exact (not the second state's, which a taper after the clear leaves lower).
    with np.errstate(divide="ignore", invalid="ignore"):
        level_after = (dE * 3600.0 - a * inside) / after
    clear = usable & started_inside & ~ok & (a < b) & np.isfinite(level_after) & (after > 0)
    b[clear] = np.maximum(level_after[clear], 0.0)
    mode[clear] = STEP
    tau[clear] = inside[clear]


def _pieces(rec: Reconstruction) -> tuple[np.ndarray, ...]:
    """Power pieces c + m (t - s) on [s, e) (kW, seconds), scaled so each interval's energy is exact."""
    k = np.flatnonzero((rec.interval_s > 0) & (rec.delta_kwh > 0))
    T, dE, mode, a, b, tau, notch, level = (x[k] for x in (rec.interval_s, rec.delta_kwh, rec.mode, rec.a_kw,
                                                           rec.b_kw, rec.tau_s, rec.notch_s, rec.notch_kw))
    start = rec.t[k]
    energy_kws = dE * 3600.0
    lin, step, dip = mode == LINEAR, mode == STEP, mode == NOTCH
    with np.errstate(divide="ignore", invalid="ignore"):
        area = np.select([lin, step, dip], [(a + b) * T / 2, a * tau + b * (T - tau),
                                            a * tau + level * notch + b * (T - tau - notch)], T)
        scale = energy_kws / area
    bad = ~np.isfinite(scale) | (area <= 0)
    lin, step, dip = lin & ~bad, step & ~bad, dip & ~bad
    scale = np.where(bad, 0.0, scale)  # those intervals fall back to flat; keep inf * 0 out of the products
    c1 = np.where(lin | step | dip, a * scale, energy_kws / T)
    m1 = np.where(lin, (b - a) * scale / T, 0.0)
    # Lengths stay interval-local (tau, T - tau): absolute times lose digits on millisecond pieces.
    length1 = np.where(step | dip, tau, T)
    second = step & (tau < T)
    s = np.r_[start, (start + tau)[second], (start + tau)[dip], (start + tau + notch)[dip]]
    length = np.r_[length1, (T - tau)[second], notch[dip], (T - tau - notch)[dip]]
    c = np.r_[c1, (b * scale)[second], (level * scale)[dip], (b * scale)[dip]]
    m = np.r_[m1, np.zeros(int(second.sum()) + 2 * int(dip.sum()))]
    owner = np.r_[k, k[second], k[dip], k[dip]]
    keep = length > 0
    return s[keep], length[keep], c[keep], m[keep], owner[keep]


def _clip_pieces(s, length, c, m, cap_kw) -> tuple[np.ndarray, ...]:
    """Pieces with power min(p, cap) (cap NaN = unknown phases: unchanged); ramps are split at the crossing."""
    cap = np.where(np.isnan(cap_kw), np.inf, cap_kw)
    p_start, p_end = c, c + m * length
    with np.errstate(divide="ignore", invalid="ignore"):
        to_cross = (cap - c) / m
    crossing = (m != 0) & (np.minimum(p_start, p_end) < cap) & (np.maximum(p_start, p_end) > cap)
    # Non-crossing pieces: entirely below (unchanged) or entirely above (constant cap).
    above = ~crossing & (np.minimum(p_start, p_end) >= cap)
    c_out, m_out = np.where(above, cap, c), np.where(above, 0.0, m)
    len_out = np.where(crossing, to_cross, length)
    # Crossing pieces: keep [s, cross) as it was or at cap, add [cross, e).
    rising = crossing & (m > 0)
    c_out = np.where(crossing & ~rising, cap, c_out)
    m_out = np.where(crossing & ~rising, 0.0, m_out)
    s2, len2 = (s + to_cross)[crossing], (length - to_cross)[crossing]
    c2 = cap[crossing]
    m2 = np.where(rising[crossing], 0.0, m[crossing])
    return np.r_[s, s2], np.r_[len_out, len2], np.r_[c_out, c2], np.r_[m_out, m2]


def _bin_energy(s, length, c, m, n_bins: int, grid_s: float) -> np.ndarray:
    """Energy per grid bin (kWh) of the sum of pieces c + m (t - s) on [s, s + length).

    Bin-local arithmetic keeps steep, very short pieces (two states a millisecond apart) exact:
    - a piece inside one bin adds its exact energy c L + m L^2 / 2 there;
    - a constant piece over several bins adds its head to the first bin, g c to the full bins between
      (a first-difference array, summed in extended precision) and the remainder of its energy to
      the last bin, so it adds up to c L to rounding;
    - a ramp over several bins (``linear`` shape only) is cut into (piece, bin) pairs whose energies
      are differences of its cumulative energy, which telescope.
    """
    g = grid_s
    first = np.clip(np.floor(s / g).astype(np.int64), 0, n_bins - 1)
    last = np.clip(np.ceil((s + length) / g).astype(np.int64) - 1, first, n_bins - 1)
    total = c * length + m * length**2 / 2
    one = first == last
    out = np.bincount(first[one], weights=total[one], minlength=n_bins).astype(float)  # bincount of nothing is int
    flat = ~one & (m == 0)
    sf, lf, cf, ff, lastf = s[flat], length[flat], c[flat], first[flat], last[flat]
    head = np.clip((ff + 1) * g - sf, 0.0, lf)
    n_full = np.maximum(lastf - ff - 1, 0)
    out += np.bincount(ff, weights=cf * head, minlength=n_bins)
    out += np.bincount(lastf, weights=total[flat] - cf * head - n_full * g * cf, minlength=n_bins)
    d = np.bincount(ff + 1, weights=g * cf, minlength=n_bins + 2) - np.bincount(lastf, weights=g * cf,
                                                                                  minlength=n_bins + 2)
    out += np.cumsum(d.astype(np.longdouble))[:n_bins].astype(float)
    ramp = np.flatnonzero(~one & (m != 0))
    if len(ramp):
        count = last[ramp] - first[ramp] + 1
        starts = np.cumsum(count) - count
        owner = _owner(starts, int(count.sum()))
        bins = first[ramp][owner] + np.arange(int(count.sum())) - starts[owner]
        sr, lr, cr, mr = (x[ramp][owner] for x in (s, length, c, m))
        hi = np.clip((bins + 1) * g - sr, 0.0, lr)
        lo = np.clip(bins * g - sr, 0.0, lr)
        out += np.bincount(bins, weights=cr * (hi - lo) + mr * (hi * hi - lo * lo) / 2, minlength=n_bins)
    return out / 3600.0
