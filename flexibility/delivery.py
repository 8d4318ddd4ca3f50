"""Delivery proven by measurement: did a capped session's draw fall to the cap, and come back after?

One rule, a pure function (no ORM), so the dispatcher and settlement judge alike:

- a reading's per-phase draw is its measured current when there is one; else its power (the POWER
  dimension, or the average between two states from their kWh difference, energy-conserving)
  compared with the cap converted at 230 V on the session's phases. When the phase count is not
  firm, every plausible count is weighed: the fleet prior (`ocpi.schemas.PHASE_PRIOR`) times how well
  each of the session's power readings fits it (an EV draws at least 6 A per phase unless finishing,
  at most the connector's max_amperage); the count does not change within a session, so a 3.7 kW draw
  that was 3.7 kW before the cap too is a one-phase EV at 16 A, not a three-phase one at 5.3 A. A
  reading decides when the counts holding at least DECISIVE of the weight agree; else it is left out;
- a session is judged only on its own readings after the cap started (a session that began after
  the signal from its own start), after a grace period for the charger to act, until the restore;
  an average from kWh counts only when both its states lie in that window; a reading stamped at the
  restore instant or later is not in it (an instant's reading at the restore is not a capped one);
- the draw just before the cap (BEFORE_WINDOW before it: the median measured current or POWER, else
  the kWh average) is what the cap could lower. At or below the cap (plus its tolerance) on every
  plausible phase count, the cap asked for nothing: no data, whatever came after. At or below on
  some count only, a draw that did not fall proves nothing either (a three-phase EV tapering at 4 A
  per phase and a one-phase EV ignoring the cap at 12 A draw the same 2.8 kW before and during it):
  no data rather than `not_responded`, so it never counts against the EVSE; `responded` only when
  the draw fell to the cap's level, by more than the power tolerance (a draw that stayed where it
  was proves obedience no more than defiance). Time tells the two apart: a draw below 6 A per phase
  (the least a charger offers, IEC 61851-1) is an EV finishing its charge, whose current falls
  steadily, while a one-phase EV at 12-16 A draws flat. So a draw that stayed FLAT (within
  FLAT_SHARE) from the session's states before the cap through the capped window, over two segments
  of FLAT_WINDOW at least FLAT_SPAN apart, rules out the counts on which it would be finishing; when
  the counts left (weighed by the fleet prior) put it above the cap by DECISIVE, `not_responded`
  stands. A session's phase count does not change, so what one cap's flat draw ruled out stays ruled
  out for its later caps (`flat_kw_before`), even once its own draw begins to taper: an EV at 13 A on
  one phase nearing full falls slowly, and over a longer history it no longer reads as flat;
- `responded` when the median judged reading is at or below the cap plus a tolerance,
  `not_responded` when above, `no_data` when no reading qualifies;
- after the restore (grace, then a window): `resumed` when the median reading is above the cap plus
  the tolerance, `not_resumed` (a driver at risk) when not, `no_data` when no reading qualifies.

`judge_frame` takes a DataFrame of states (columns `timestamp`, `kwh`, `current_a`, `power_kw`).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from .planning import DEFAULT_MAX_CURRENT_A, MAX_CURRENT_TOLERANCE, MIN_CHARGING_A, PHASE_PRIOR, phase_weights

VOLTS_PER_PHASE = 230.0

RESPONDED, NOT_RESPONDED, NO_DATA = "responded", "not_responded", "no_data"
RESUMED, NOT_RESUMED = "resumed", "not_resumed"
DECISIVE = 0.8  # share of the phase-count weight that must agree for a power reading to decide
# The states before a cap its judges read (the dispatcher's sweep and settlement alike): the full draw
# tells a session's phase count best, and the last of them the draw the cap could lower.
PHASE_EVIDENCE = timedelta(minutes=15)
# A draw is flat when its energy-conserving average over the first FLAT_WINDOW of the session's states
# in the evidence (from PHASE_EVIDENCE before the cap) and over the last one before the cap ended differ
# by at most FLAT_SHARE, the two at least FLAT_SPAN apart (midpoint to midpoint). An EV finishing its
# charge falls faster: the tapering three-phase cars of the seed-1 realism run fell 2.3-4.6 % over 90-150 s.
FLAT_SHARE = 0.01
FLAT_WINDOW = timedelta(seconds=30)
FLAT_SPAN = timedelta(seconds=45)


@dataclass(frozen=True)
class Reading:
    """One state of a session: cumulative energy, and what it measured, if anything."""

    at: datetime
    kwh: float
    current_a: float | None = None  # highest per-phase current
    power_kw: float | None = None  # the POWER dimension (not a kWh-derived average)


@dataclass(frozen=True)
class Rule:
    limit_a: float = 8.0
    tolerance_a: float = 1.5
    tolerance_kw: float = 0.5
    grace: timedelta = timedelta(seconds=120)
    resume_window: timedelta = timedelta(minutes=15)
    before_window: timedelta = timedelta(minutes=2)  # the draw just before the cap: what it could lower


@dataclass(frozen=True)
class Verdict:
    delivery: str  # responded / not_responded / no_data
    resumption: str  # resumed / not_resumed / no_data; "" when not restored yet
    # Responded: the draw just before the cap minus the median draw under it, when powers (POWER or
    # kWh averages) tell both; None otherwise. A measurement, not part of the verdict.
    shed_kw: float | None = field(default=None, compare=False)
    # The flat draw (kW) that ruled out the phase counts on which the session would be finishing its
    # charge, this cap's or an earlier one's; None when none did. Kept for the session's later caps.
    flat_kw: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class _Level:
    start: datetime  # the reading applies over [start, end]: an instant, or the span of a kWh average
    end: datetime
    at_or_below: bool | None  # at or below the cap plus its tolerance; None: the phase counts disagree
    power_kw: float | None = None  # the power it was judged from (None: a measured current)


def _power_level(power_kw: float, weights: dict[int, float], rule: Rule) -> bool | None:
    cap_kw = {k: _cap_kw(k, rule) for k in weights}
    low = sum(w for k, w in weights.items() if power_kw <= cap_kw[k])
    return True if low >= DECISIVE else False if low <= 1 - DECISIVE else None


def _powers(ordered: Sequence[Reading]) -> list[tuple[datetime, datetime, float | None, float | None]]:
    """(start, end, current A, power kW) of each reading: an instant, or the span of a kWh average."""
    out = []
    for i, r in enumerate(ordered):
        if r.current_a is not None or r.power_kw is not None:
            out.append((r.at, r.at, r.current_a, r.power_kw))
        elif i > 0:
            prev = ordered[i - 1]
            hours = (r.at - prev.at).total_seconds() / 3600
            if hours > 0 and r.kwh >= prev.kwh:
                out.append((prev.at, r.at, None, (r.kwh - prev.kwh) / hours))
    return out


def _levels(readings: Iterable[Reading], phases: Sequence[int], rule: Rule,
            max_current_a: float | None = None) -> list[_Level]:
    spans = _powers(sorted(readings, key=lambda r: r.at))
    weights = phase_weights((p for _, _, c, p in spans if c is None and p is not None), phases, max_current_a)
    out: list[_Level] = []
    for start, end, current_a, power_kw in spans:
        if current_a is not None:
            out.append(_Level(start, end, current_a <= rule.limit_a + rule.tolerance_a))
        elif power_kw is not None:
            out.append(_Level(start, end, _power_level(power_kw, weights, rule), power_kw))
    return [level for level in out if level.at_or_below is not None]


@dataclass(frozen=True)
class _Before:
    some: bool  # at or below what the cap allows on some plausible phase count (the cap may not bind)
    every: bool  # on every plausible count (the cap asked for nothing)
    power_kw: float | None  # the draw, when a power (not a current) told it


def _before(ordered: Sequence[Reading], phases: Sequence[int], rule: Rule, cap_start: datetime,
            session_start: datetime) -> _Before | None:
    """The draw just before the cap against what the cap allows (plus its tolerance); None when the
    session's states before the cap do not tell."""
    pre = [r for r in ordered if session_start <= r.at <= cap_start]
    if not pre:
        return None
    window = [r for r in pre if r.at >= pre[-1].at - rule.before_window]
    currents = [r.current_a for r in window if r.current_a is not None]
    if currents:
        fits = statistics.median(currents) <= rule.limit_a + rule.tolerance_a
        return _Before(fits, fits, None)
    powers = [r.power_kw for r in window if r.power_kw is not None]
    if powers:
        power_kw = statistics.median(powers)
    else:
        if len(window) < 2:
            window = pre[-2:]
        hours = (window[-1].at - window[0].at).total_seconds() / 3600
        if len(window) < 2 or hours <= 0 or window[-1].kwh < window[0].kwh:
            return None
        power_kw = (window[-1].kwh - window[0].kwh) / hours  # energy-conserving over the window
    fits = [power_kw <= _cap_kw(k, rule) for k in phases]
    return _Before(any(fits), all(fits), power_kw)


def _average_kw(span: Sequence[Reading]) -> float | None:
    hours = (span[-1].at - span[0].at).total_seconds() / 3600 if len(span) >= 2 else 0.0
    return (span[-1].kwh - span[0].kwh) / hours if hours > 0 and span[-1].kwh >= span[0].kwh else None


def _flat_kw(ordered: Sequence[Reading], since: datetime, until: datetime) -> float | None:
    """The draw when it stayed flat over [since, until] (see FLAT_SHARE), else None."""
    states = [r for r in ordered if since <= r.at <= until]
    if len(states) < 4:
        return None
    first = next((i for i, r in enumerate(states) if r.at - states[0].at >= FLAT_WINDOW), None)
    last = next((i for i in range(len(states) - 1, -1, -1) if states[-1].at - states[i].at >= FLAT_WINDOW), None)
    if first is None or last is None or last < first:
        return None
    head, tail = states[:first + 1], states[last:]
    apart = (tail[0].at + (tail[-1].at - tail[0].at) / 2) - (head[0].at + (head[-1].at - head[0].at) / 2)
    a, b = _average_kw(head), _average_kw(tail)
    if apart < FLAT_SPAN or a is None or b is None or a <= 0 or abs(b - a) > FLAT_SHARE * a:
        return None
    return (a + b) / 2


def _not_finishing(flat_kw: float, counts: Sequence[int], max_current_a: float | None) -> dict[int, float]:
    """The counts a flat draw leaves (a flat draw is not an EV finishing its charge: out go the counts
    on which it is below 6 A per phase, and those above the connector's maximum), with their prior."""
    most = (max_current_a or DEFAULT_MAX_CURRENT_A) * (1 + MAX_CURRENT_TOLERANCE)
    return {k: PHASE_PRIOR.get(k, 0.0) or 1e-3 for k in counts
            if MIN_CHARGING_A * (1 - MAX_CURRENT_TOLERANCE) <= flat_kw * 1000 / (VOLTS_PER_PHASE * k) <= most}


def _above(power_kw: float, kept: dict[int, float], rule: Rule) -> bool:
    """True when the counts kept put the draw above the cap by DECISIVE of their weight."""
    if not kept:
        return False
    low = sum(w for k, w in kept.items() if power_kw <= _cap_kw(k, rule)) / sum(kept.values())
    return low <= 1 - DECISIVE


def _cap_kw(phases: int, rule: Rule) -> float:
    return rule.limit_a * VOLTS_PER_PHASE * phases / 1000 + rule.tolerance_kw


def _majority_low(levels: Sequence[_Level]) -> bool | None:
    if not levels:
        return None
    return statistics.median(1.0 if level.at_or_below else 0.0 for level in levels) >= 0.5


def judge(readings: Iterable[Reading], *, cap_start: datetime, cap_end: datetime, session_start: datetime,
          phases: int | Sequence[int], restored_at: datetime | None = None, rule: Rule = Rule(),
          before_a: float | None = None, max_current_a: float | None = None,
          flat_kw_before: float | None = None) -> Verdict:
    """The verdict on one cap from the session's own readings (any order; those outside the windows
    only weigh the phase counts).

    `phases`: the session's phase count, or the plausible counts when it is not firm;
    `max_current_a`: the connector's max_amperage, when known. `before_a`:
    the per-phase current measured when the cap was planned; already at the cap's level, the cap
    proves nothing (a session at 9 A ignoring it still reads "at 8 A"): no data either way; the same
    from the session's own readings just before the cap (`_before`, see the module's text).
    `flat_kw_before`: the flat draw an earlier cap of this session was judged on (`Verdict.flat_kw`).
    """
    if before_a is not None and before_a <= rule.limit_a + rule.tolerance_a:
        return Verdict(NO_DATA, NO_DATA if restored_at is not None else "")
    counts = (phases,) if isinstance(phases, int) else tuple(phases)
    ordered = sorted(readings, key=lambda r: r.at)
    before = _before(ordered, counts, rule, cap_start, session_start)
    if before is not None and before.every:  # at or below the cap on every count: it asked for nothing
        return Verdict(NO_DATA, NO_DATA if restored_at is not None else "")
    levels = _levels(ordered, counts, rule, max_current_a)
    judge_from = max(cap_start, session_start) + rule.grace
    until = min(cap_end, restored_at) if restored_at is not None else cap_end
    # An instant's reading counts while the cap holds (before `until`); a kWh average when it ends by then.
    during = [lv for lv in levels if lv.start >= judge_from
              and (lv.end < until if lv.start == lv.end else lv.end <= until)]
    low = _majority_low(during)
    delivery = NO_DATA if low is None else (RESPONDED if low else NOT_RESPONDED)
    flat_kw = None
    if before is not None and before.some and delivery != NO_DATA:
        # The cap may not have bound (the draw fits it on some count): only a fall proves anything.
        powers = [lv.power_kw for lv in during if lv.power_kw is not None]
        fell = (delivery == RESPONDED and before.power_kw is not None and len(powers) == len(during)
                and statistics.median(powers) <= before.power_kw - rule.tolerance_kw)
        if delivery == NOT_RESPONDED:
            flat_kw = _flat_kw(ordered, max(session_start, cap_start - PHASE_EVIDENCE), until)
            if flat_kw is None or not _above(flat_kw, _not_finishing(flat_kw, counts, max_current_a), rule):
                # What an earlier cap's flat draw ruled out, weighed on the draw under this cap.
                earlier = flat_kw_before is not None and bool(powers) and _above(
                    statistics.median(powers), _not_finishing(flat_kw_before, counts, max_current_a), rule)
                flat_kw = flat_kw_before if earlier else None
        if not (fell or flat_kw is not None):
            delivery = NO_DATA
    shed_kw = _measured_shed_kw(before, during) if delivery == RESPONDED else None
    if restored_at is None:
        return Verdict(delivery, "", shed_kw, flat_kw)
    after_from = restored_at + rule.grace
    after = [lv for lv in levels if lv.start >= after_from and lv.end <= after_from + rule.resume_window]
    still_low = _majority_low(after)
    resumption = NO_DATA if still_low is None else (NOT_RESUMED if still_low else RESUMED)
    return Verdict(delivery, resumption, shed_kw, flat_kw)


def proven_flat_kw(known: float | None, verdict: Verdict) -> float | None:
    """What a session's flat draws have proved so far, with this verdict's: the lowest draw rules out
    the most phase counts (`judge(..., flat_kw_before=)` of its later caps)."""
    if verdict.flat_kw is None:
        return known
    return verdict.flat_kw if known is None else min(known, verdict.flat_kw)


def _measured_shed_kw(before: _Before | None, during: Sequence[_Level]) -> float | None:
    powers = [lv.power_kw for lv in during if lv.power_kw is not None]
    if before is None or before.power_kw is None or not powers or len(powers) < len(during):
        return None
    return max(0.0, before.power_kw - statistics.median(powers))


def judge_frame(states: pd.DataFrame, **kwargs) -> Verdict:
    """`judge` over a DataFrame of one session's states: `timestamp`, `kwh`, and optionally
    `current_a` / `power_kw` (NaN or None where not measured)."""
    def value(row, column: str) -> float | None:
        v = row.get(column)
        return None if v is None or pd.isna(v) else float(v)

    readings = [Reading(pd.Timestamp(row["timestamp"]).to_pydatetime(), float(row["kwh"]),
                        value(row, "current_a"), value(row, "power_kw"))
                for row in states.to_dict("records")]
    return judge(readings, **kwargs)


def flag(recent: Sequence[bool], failures_n: int, window_m: int) -> bool:
    """An EVSE that did not respond in at least N of its last M judged activations is flagged."""
    return sum(1 for responded in recent[-window_m:] if not responded) >= failures_n
