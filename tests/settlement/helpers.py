"""Generate S.csv-shaped states from a known 1-second truth, for hand-checkable tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

KW_PER_A = 0.230
DAY = pd.Timestamp("2025-05-06T00:00:00Z")


def at(hhmmss: str) -> pd.Timestamp:
    return pd.Timestamp(f"2025-05-06T{hhmmss}Z")


def state_rows(session_id: str, evse_uid: str, times: list[pd.Timestamp], kwh: list[float],
               currents: list[float | None], phases: int = 3) -> list[dict]:
    rows = []
    for t, e, c in zip(times, kwh, currents, strict=True):
        cur = [c if i < phases else None for i in range(3)]
        rows.append({"session_id": session_id, "evse_uid": evse_uid, "timestamp": t, "kwh": e,
                     "current_l1_a": cur[0], "current_l2_a": cur[1], "current_l3_a": cur[2]})
    return rows


def frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    for c in ("current_l1_a", "current_l2_a", "current_l3_a"):
        df[c] = pd.to_numeric(df[c]).astype(float)
    return df


def sampled_session(session_id: str, evse_uid: str, start: pd.Timestamp, end: pd.Timestamp,
                    current_at, phases: int = 3, period_s: int = 300) -> list[dict]:
    """States every `period_s` from `start` (plus one at `end`) of a session whose per-phase current
    is `current_at(t)` (piecewise constant); kWh integrates the truth second by second."""
    seconds = int((end - start).total_seconds())
    grid = start + pd.to_timedelta(np.arange(seconds + 1), unit="s")
    amps = np.array([current_at(t) for t in grid[:-1]])
    kwh = np.r_[0.0, np.cumsum(amps * phases * KW_PER_A / 3600.0)]
    picks = list(range(0, seconds + 1, period_s))
    if picks[-1] != seconds:
        picks.append(seconds)
    return state_rows(session_id, evse_uid, [grid[i] for i in picks], [float(kwh[i]) for i in picks],
                      [float(amps[min(i, seconds - 1)]) if i < seconds else 0.0 for i in picks], phases)


def truth_energy_kwh(current_at, start: pd.Timestamp, end: pd.Timestamp, phases: int = 3) -> float:
    seconds = int((end - start).total_seconds())
    grid = start + pd.to_timedelta(np.arange(seconds), unit="s")
    return float(sum(current_at(t) for t in grid) * phases * KW_PER_A / 3600.0)
