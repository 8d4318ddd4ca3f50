"""Theoretical minimum power, erasable power by time of day and non-responding EVSEs."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from flexibility.delivery import NOT_RESPONDED, PHASE_EVIDENCE, Reading, Rule, judge, proven_flat_kw
from ocpi.schemas import PLAUSIBLE_PHASES
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


NON_RESPONDER_COLUMNS = ["activation_id", "evse_uid", "session_id", "judged_from", "state_at", "max_current_a"]


def non_responders(rec: Reconstruction, caps: pd.DataFrame, rule: Rule | None = None) -> pd.DataFrame:
    """Capped sessions that did not respond, by the dispatcher's own rule (`flexibility.delivery.judge`).

    `caps` (activation_id, session_id, start, end, and optionally before_a: the per-phase current when
    the cap was planned, and asked: False for a cap the CSMS refused) are the caps sent: the
    database's curtailments, or for the file door the approximation of `kpis.frames_from_states`.
    Each is judged on its session's own states from max(cap start, session start) + grace to its
    end, so a session that began after the signal is judged from its own start, and a session that
    was never capped is never listed. `judge` runs only for the caps that have a judged state above
    the cap's tolerance or without a current (a kWh average): without one the verdict cannot be
    `not_responded`, so this keeps the cost off the thousands of sessions that obeyed.
    """
    rule = rule or Rule()
    caps = _capped_sessions(rec, caps)
    if caps.empty or rec.states.empty:
        return pd.DataFrame(columns=NON_RESPONDER_COLUMNS)
    states = rec.states
    state_code = states["code"].to_numpy()
    state_s = states["t"].to_numpy()
    current_a = _max_current_or_nan(states)
    suspect = np.isnan(current_a) | (current_a > rule.limit_a + rule.tolerance_a)
    suspects_before = np.r_[0, np.cumsum(suspect)]
    # One sorted key over (session, time): the judged window of every cap is one searchsorted away.
    width = float(state_s.max()) + 10.0
    key = state_code * width + state_s
    code = caps["code"].to_numpy()
    session_start_s = rec.first_s[code]
    from_s = np.maximum(caps["start_s"].to_numpy(), session_start_s) + rule.grace.total_seconds()
    until_s = caps["end_s"].to_numpy()
    # A millisecond wider than judge's window (float seconds vs datetimes): judge has the last word.
    first_row = np.searchsorted(key, code * width + from_s - 1e-3, side="left")
    # The states before the cap the dispatcher's sweep reads too (its phase count, the draw it could lower).
    evidence_s = np.maximum(caps["start_s"].to_numpy() - PHASE_EVIDENCE.total_seconds(), 0.0)
    evidence_row = np.searchsorted(key, code * width + evidence_s - 1e-3, side="left")
    end_row = np.searchsorted(key, code * width + until_s + 1e-3, side="right")
    before_a = caps["before_a"].to_numpy(float)
    proves_nothing = before_a <= rule.limit_a + rule.tolerance_a  # judge's own early exit, vectorised
    worth_judging = np.flatnonzero((until_s > from_s) & (suspects_before[end_row] > suspects_before[first_row])
                                   & ~proves_nothing)
    stamps = states["timestamp"].array
    kwh = states["kwh"].to_numpy(float)
    rows = []
    flat_kw: dict[int, float | None] = {}  # per session: what an earlier cap's flat draw proved (the judge's own carry)
    for i in worth_judging[np.lexsort((caps["start_s"].to_numpy()[worth_judging], code[worth_judging]))]:
        lo, hi = first_row[i], end_row[i]
        lo_with_previous = lo - 1 if lo > 0 and state_code[lo - 1] == code[i] else lo
        readings = [Reading(stamps[j].to_pydatetime(), float(kwh[j]),
                            None if np.isnan(current_a[j]) else float(current_a[j]))
                    for j in range(min(lo_with_previous, evidence_row[i]), hi)]
        verdict = judge(readings, cap_start=caps["start"].iat[i].to_pydatetime(),
                        cap_end=caps["end"].iat[i].to_pydatetime(),
                        session_start=_at(rec, session_start_s[i]), phases=_phases(rec.phases[code[i]]),
                        rule=rule, before_a=None if np.isnan(before_a[i]) else float(before_a[i]),
                        flat_kw_before=flat_kw.get(code[i]))
        flat_kw[code[i]] = proven_flat_kw(flat_kw.get(code[i]), verdict)
        if verdict.delivery != NOT_RESPONDED:
            continue
        judged = slice(lo, hi)
        above = np.flatnonzero(suspect[judged])
        measured = current_a[judged][~np.isnan(current_a[judged])]
        rows.append((i, {"activation_id": caps["activation_id"].iat[i], "evse_uid": rec.evse_uids[code[i]],
                         "session_id": rec.session_ids[code[i]], "judged_from": _at(rec, from_s[i]),
                         "state_at": stamps[lo + above[0]], "max_current_a": float(measured.max()) if len(measured)
                         else float("nan")}))
    frame = pd.DataFrame([row for _, row in sorted(rows, key=lambda pair: pair[0])], columns=NON_RESPONDER_COLUMNS)
    frame["judged_from"] = pd.to_datetime(frame["judged_from"], utc=True)
    frame["state_at"] = pd.to_datetime(frame["state_at"], utc=True)
    return frame


def _capped_sessions(rec: Reconstruction, caps: pd.DataFrame) -> pd.DataFrame:
    """The caps asked of the CSMS whose session has states: code, activation_id, start / end (datetimes
    and seconds since t0), before_a."""
    if "asked" in caps.columns:
        caps = caps[caps["asked"].astype(bool).to_numpy()]
    codes = pd.Index(rec.session_ids).get_indexer(caps["session_id"].astype(str))
    known = codes >= 0
    start_s, end_s = (rec.seconds(caps[col]) if len(caps) else np.zeros(0) for col in ("start", "end"))
    before = caps["before_a"].to_numpy(float) if "before_a" in caps.columns else np.full(len(caps), np.nan)
    return pd.DataFrame({"code": codes, "activation_id": caps["activation_id"].astype(str).to_numpy(),
                         "start": pd.to_datetime(caps["start"], utc=True).array,
                         "end": pd.to_datetime(caps["end"], utc=True).array,
                         "start_s": start_s, "end_s": end_s, "before_a": before})[known].reset_index(drop=True)



def _max_current_or_nan(states: pd.DataFrame) -> np.ndarray:
    current = max_phase_current_a(states)
    return np.where(np.isfinite(current), current, np.nan)


def _phases(phases: float) -> int | tuple[int, ...]:
    """Phases seen drawing current are firm; unknown: every plausible count (the dispatcher's assumption)."""
    return int(phases) if np.isfinite(phases) else PLAUSIBLE_PHASES


def _at(rec: Reconstruction, seconds: float) -> datetime:
    return (rec.t0 + pd.Timedelta(seconds=float(seconds))).round("us").to_pydatetime()
