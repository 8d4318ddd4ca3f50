"""Shapes of the input frames (shared contract 4) and their cleaning.

States: session_id, evse_uid, timestamp (aware UTC), kwh (cumulative), current_l1_a..l3_a (NaN =
not reported). Activations: activation_id, t_signal, t_clear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

STATE_COLUMNS = ["session_id", "evse_uid", "timestamp", "kwh", "current_l1_a", "current_l2_a", "current_l3_a"]
CURRENT_COLUMNS = STATE_COLUMNS[4:]
ACTIVATION_COLUMNS = ["activation_id", "t_signal", "t_clear"]


class FrameError(ValueError):
    """An input frame does not have the contract's shape."""


def _utc(series: pd.Series, what: str) -> pd.Series:
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        raise FrameError(f"{what} must be timezone-aware datetimes (got {series.dtype})")
    return series.dt.tz_convert("UTC")


def require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FrameError(f"{what} frame lacks column(s) {', '.join(missing)}")


@dataclass(frozen=True)
class CleanStates:
    """States sorted by (session, timestamp), one row per (session, timestamp).

    `frame` has numeric columns only (code, timestamp, kwh, currents); `session_ids[code]` and
    `evse_uids[code]` name them (string columns are slow to carry through 10^6-row sorts).
    """

    frame: pd.DataFrame
    session_ids: np.ndarray
    evse_uids: np.ndarray
    duplicates: np.ndarray  # per code: rows dropped as duplicates of a timestamp
    conflicts: np.ndarray  # per code: those that differed in value (resolved: highest kwh kept)
    dropped_incomplete: int  # rows without timestamp or kwh


def clean_states(states: pd.DataFrame) -> CleanStates:
    """Sort, drop incomplete rows and resolve duplicate timestamps deterministically.

    Of several rows for one (session, timestamp) the one with the highest kwh (then highest
    currents, a reported current beating "not reported") is kept, whatever the input order: a meter
    never runs backwards within a timestamp.
    """
    require_columns(states, STATE_COLUMNS, "states")
    stamps = _utc(states["timestamp"], "states.timestamp").dt.as_unit("ns")
    values = np.column_stack([pd.to_numeric(states[c], errors="raise").to_numpy(float)
                              for c in ["kwh", *CURRENT_COLUMNS]]) if len(states) else np.zeros((0, 4))
    complete = stamps.notna().to_numpy() & ~np.isnan(values[:, 0])
    dropped = int((~complete).sum())
    code, session_ids = pd.factorize(states["session_id"].astype(str)[complete], sort=True)
    session_ids = np.asarray(session_ids, dtype=object)
    evse_uids = np.empty(len(session_ids), dtype=object)
    evse_uids[code] = states["evse_uid"].astype(str).to_numpy(object)[complete]
    ns, values = stamps.array.asi8[complete], values[complete]
    order = np.lexsort((ns, code))
    same = (code[order][1:] == code[order][:-1]) & (ns[order][1:] == ns[order][:-1])
    if same.any():
        # Only duplicate groups need the full tie-break sort; they are contiguous, so sort them in place.
        pos = np.flatnonzero(np.r_[same, False] | np.r_[False, same])
        sub = order[pos]
        keys = np.where(np.isnan(values[sub]), -np.inf, values[sub])
        order[pos] = sub[np.lexsort((*keys[:, ::-1].T, ns[sub], code[sub]))]
    code, ns, values = code[order], ns[order], values[order]
    dup = np.r_[same, False]  # keep the last of each group
    both_nan = np.isnan(values[1:]) & np.isnan(values[:-1])
    equal_next = np.r_[np.all((values[1:] == values[:-1]) | both_nan, axis=1), False]
    n = len(session_ids)
    keep = ~dup
    frame = pd.DataFrame({"code": code[keep], "timestamp": pd.DatetimeIndex(ns[keep], tz="UTC")})
    for i, col in enumerate(["kwh", *CURRENT_COLUMNS]):
        frame[col] = values[keep, i]
    return CleanStates(frame, session_ids, evse_uids, np.bincount(code[dup], minlength=n),
                       np.bincount(code[dup & ~equal_next], minlength=n), dropped)


def clean_activations(activations: pd.DataFrame) -> pd.DataFrame:
    require_columns(activations, ACTIVATION_COLUMNS, "activations")
    frame = activations[ACTIVATION_COLUMNS].copy()
    frame["activation_id"] = frame["activation_id"].astype(str)
    frame["t_signal"] = _utc(frame["t_signal"], "activations.t_signal")
    frame["t_clear"] = _utc(frame["t_clear"], "activations.t_clear")
    bad = frame[~(frame["t_clear"] > frame["t_signal"])]
    if len(bad):
        raise FrameError(f"activation {bad['activation_id'].iloc[0]}: t_clear must be after t_signal")
    if frame["activation_id"].duplicated().any():
        dup = frame.loc[frame["activation_id"].duplicated(), "activation_id"].iloc[0]
        raise FrameError(f"activation {dup} appears twice")
    return frame.sort_values("t_signal", kind="mergesort").reset_index(drop=True)


def total_current_a(frame: pd.DataFrame) -> np.ndarray:
    """Sum of reported phase currents per state; NaN when no phase is reported."""
    currents = frame[CURRENT_COLUMNS].to_numpy(dtype=float)
    reported = ~np.isnan(currents)
    total = np.where(reported, currents, 0.0).sum(axis=1)
    return np.where(reported.any(axis=1), total, np.nan)


def active_phases(frame: pd.DataFrame) -> np.ndarray:
    """Phases drawing current per state (non-null, non-zero), as in the OCPI extension contract."""
    currents = frame[CURRENT_COLUMNS].to_numpy(dtype=float)
    return (np.nan_to_num(currents, nan=0.0) > 0).sum(axis=1)


def max_phase_current_a(frame: pd.DataFrame) -> np.ndarray:
    currents = frame[CURRENT_COLUMNS].to_numpy(dtype=float)
    return np.nanmax(np.where(np.isnan(currents), -np.inf, currents), axis=1)
