"""Is an activation's settlement resting on enough data?"""

from __future__ import annotations

import numpy as np

from settlement.core.reconstruction import Reconstruction


def bracketed(rec: Reconstruction, codes: np.ndarray, t: float, within_s: float) -> np.ndarray:
    """True where a real state lies within `within_s` before t and another within `within_s` after it,
    or where the session's real data begin after t or end before it (nothing to bracket there)."""
    states = rec.states
    code, ts = states["code"].to_numpy(), states["t"].to_numpy()
    if not len(code):
        return np.zeros(len(codes), bool)
    width = ts.max() + 10.0
    tq = np.clip(t, -1.0, ts.max() + 1.0)
    keys = code * width + ts
    after = np.searchsorted(keys, codes * width + tq, side="left")
    before = after - 1
    has_before = (before >= 0) & (code[np.maximum(before, 0)] == codes)
    safe_after = np.minimum(after, len(code) - 1)
    has_after = (after < len(code)) & (code[safe_after] == codes)
    close_before = has_before & (tq - ts[np.maximum(before, 0)] <= within_s)
    close_after = has_after & (ts[safe_after] - tq <= within_s)
    return (close_before & close_after) | ~has_before | ~has_after


def coverage_share(rec: Reconstruction, active: np.ndarray, t_signal_s: float, t_clear_s: float,
                   within_s: float = 600.0) -> float:
    """Share of active sessions whose states bracket both t_signal and t_clear within `within_s`."""
    codes = np.flatnonzero(active)
    if not len(codes):
        return float("nan")
    ok = bracketed(rec, codes, t_signal_s, within_s) & bracketed(rec, codes, t_clear_s, within_s)
    return float(ok.mean())


def gaps_near(rec: Reconstruction, t_signal_s: float, t_clear_s: float, within_s: float = 600.0) -> np.ndarray:
    """Per session: True where an interval longer than the gap threshold (a data gap) overlaps
    [t_signal - within_s, t_clear + within_s]; a gap hours away does not weaken this activation."""
    gap = np.flatnonzero(rec.interval_s > rec.params.gap_s)
    near = (rec.t[gap] < t_clear_s + within_s) & (rec.t[gap] + rec.interval_s[gap] > t_signal_s - within_s)
    out = np.zeros(len(rec.session_ids), bool)
    out[rec.code[gap[near]]] = True
    return out
