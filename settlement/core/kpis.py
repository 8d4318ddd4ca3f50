"""Driver-impact KPIs: how much did curtailment touch the people charging?"""

from __future__ import annotations

import numpy as np
import pandas as pd

from settlement.core.frames import max_phase_current_a
from settlement.core.reconstruction import KW_PER_A_PHASE, Reconstruction

SESSION_COLUMNS = ["session_id", "start", "end", "end_current_a"]
CURTAILMENT_COLUMNS = ["session_id", "start", "end"]


def driver_impact(sessions: pd.DataFrame, curtailments: pd.DataFrame, activations: pd.DataFrame,
                  hot_plugout_a: float = 1.0) -> dict[str, float]:
    """KPIs over `sessions` (session_id, start, end (NaT = still charging), end_current_a: highest phase
    current at the last state) and `curtailments` (session_id, start, end: one row per throttle).

    A "hot plug-out" is a session that ended while still drawing more than `hot_plugout_a`: the
    driver left before the car was full. Comparing its rate for throttled and unthrottled sessions
    shows whether throttling sent drivers away early.
    """
    span = pd.to_datetime(curtailments["end"], utc=True) - pd.to_datetime(curtailments["start"], utc=True)
    throttle_min = (span.dt.total_seconds() / 60.0).clip(lower=0)
    per_session = throttle_min.groupby(curtailments["session_id"].astype(str)).sum()
    ids = sessions["session_id"].astype(str)
    throttled = ids.isin(per_session.index).to_numpy()
    ended = sessions["end"].notna().to_numpy()
    hot = ended & (sessions["end_current_a"].fillna(0.0).to_numpy() > hot_plugout_a)
    lengths = (activations["t_clear"] - activations["t_signal"]).dt.total_seconds() / 60.0

    def rate(mask: np.ndarray) -> float:
        return float(hot[mask & ended].sum() / (mask & ended).sum()) if (mask & ended).any() else float("nan")

    n = len(sessions)
    return {
        "sessions": float(n),
        "throttled_sessions": float(throttled.sum()),
        "share_never_throttled": float((~throttled).sum() / n) if n else float("nan"),
        "mean_throttled_minutes": float(per_session.reindex(ids[throttled]).mean()) if throttled.any()
        else float("nan"),
        "activations": float(len(activations)),
        "mean_activation_minutes": float(lengths.mean()) if len(lengths) else float("nan"),
        "hot_plugout_rate_throttled": rate(throttled),
        "hot_plugout_rate_unthrottled": rate(~throttled),
    }


def frames_from_states(rec: Reconstruction, activations: pd.DataFrame,
                       min_current_a: float = 8.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sessions and *approximate* curtailments for the file door, which has no curtailment records.

    A session counts as throttled during an activation if it was active then and its last state
    before the signal drew more than the minimum (the eligibility rule; a state without a current
    by its kWh average since the state before, on one phase: it could be above the minimum); the throttle lasts for the
    overlap of the session with the activation, `before_a` is that state's current. The database
    door uses the real curtailments. A session that starts during the activation is not counted:
    the file door cannot know whether the dispatcher capped it.
    """
    states = rec.states
    codes = states["code"].to_numpy()
    last = np.r_[codes[1:] != codes[:-1], True] if len(codes) else np.zeros(0, bool)
    first = np.r_[True, codes[1:] != codes[:-1]] if len(codes) else np.zeros(0, bool)
    ns = states["timestamp"].array.asi8
    sessions = pd.DataFrame({
        "session_id": rec.session_ids[codes[last]],
        "start": pd.DatetimeIndex(ns[first], tz="UTC"),
        "end": pd.DatetimeIndex(ns[last], tz="UTC"),
        "end_current_a": np.maximum(max_phase_current_a(states[last]), 0.0) if len(codes) else np.zeros(0),
    })
    parts = []
    t_all = states["t"].to_numpy()
    current = max_phase_current_a(states) if len(codes) else np.zeros(0)
    drawing_a = np.where(np.isfinite(current), current, _kwh_average_a(states, codes, t_all))
    for act in activations.itertuples(index=False):
        (ts,) = rec.seconds(act.t_signal)
        # The last state at or before the signal of each session: the next row is another session or later.
        idx = np.flatnonzero((t_all <= ts) & np.r_[(codes[1:] != codes[:-1]) | (t_all[1:] > ts), True])
        drawing = idx[drawing_a[idx] > min_current_a]
        drawing = drawing[rec.last_s[codes[drawing]] > ts]
        chosen = codes[drawing]
        ends = rec.t0 + pd.to_timedelta(rec.last_s[chosen], unit="s")
        parts.append(pd.DataFrame({"session_id": rec.session_ids[chosen], "start": act.t_signal,
                                   "end": np.minimum(ends, act.t_clear), "activation_id": act.activation_id,
                                   "before_a": np.where(np.isfinite(current[drawing]), current[drawing], np.nan)}))
    curtailments = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=[*CURTAILMENT_COLUMNS, "activation_id", "before_a"])
    return sessions, curtailments


def _kwh_average_a(states: pd.DataFrame, codes: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Per state, the mean power since the session's previous state as one phase's current (NaN at a
    session's first state): the highest current the energy allows on any plausible phase count."""
    kwh = states["kwh"].to_numpy(float)
    same = np.r_[False, codes[1:] == codes[:-1]]
    hours = np.r_[np.nan, np.diff(t_s)] / 3600.0
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_kw = np.r_[np.nan, np.diff(kwh)] / hours
    return np.where(same & (hours > 0), mean_kw / KW_PER_A_PHASE, np.nan)
