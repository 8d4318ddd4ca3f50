"""Target-kW activations: which eligible sessions to cap so the expected shed covers a BRP's target.

Pure: callers hand in plain candidates (from `planning.plan_caps` plus what the database knows
of each session) and get back the chosen session ids. No ORM here, so the rules are property-tested
(tests/flexibility/test_selection.py) and cheap for 16,000 sessions (bench/selection.py).

Order, fair for drivers: the most remaining 4-hour budget first, then sessions not throttled yet
today, then the longest plugged-in, then the session id (deterministic). Walking that order, a
session is taken while the counted shed is still below target x (1 + margin); the last one, if it
would carry the sum more than FIT_SHARE past that, gives way to the first later one that closes the
gap within it (`_closer`); the counted shed of a
session is its expected shed (the plan's best estimate, the figure the preview and the target are
stated in) times its EVSE's responsiveness weight (1 = follows caps, 0 = flagged: it never helps
reach the target, so it is never chosen).

One exception to the order: a cap the delivery judge could not tell from no response comes after
all the others (chosen only when they fall short): a session drawing within the judge's tolerance
of the cap (`min_above_a` per phase, `min_shed_kw` in kW; targeting passes DELIVERY_TOLERANCE_A and
_KW). Such a cap frees little, cannot be measured, yet spends the driver's budget and their "not
throttled today"; and the longest plugged-in are often those finishing their charge just above
8 A, so without this rule half the kW took two thirds of the sessions
(tests/integration/test_target_kw.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import numpy as np

from . import planning


class Candidate(NamedTuple):  # a tuple, not a dataclass: 16,000 of them are built per plan
    session_pk: int
    expected_kw: float  # the cap's expected shed, best estimate (planning.CapPlan.expected_kw)
    budget_left_s: float  # throttle seconds left in the session's 4-hour window before this activation
    throttled_today: bool  # capped at least once since 00:00 UTC
    plugged_in_at: datetime
    weight: float = 1.0  # EVSE responsiveness: 1 follows caps, 0 flagged (counted out), between: partly
    above_limit_a: float = math.inf  # per-phase current above the cap, highest plausible reading


@dataclass(frozen=True)
class Selection:
    chosen: tuple[int, ...]  # session ids, in the fairness order
    target_kw: float
    needed_kw: float  # target x (1 + margin): what the choice aims to cover
    counted_kw: float  # sum of expected x weight over the chosen sessions
    shortfall_kw: float  # target - counted when even every usable session falls short, else 0

    @property
    def covered(self) -> bool:
        return self.shortfall_kw == 0.0


FULL_BUDGET_S = planning.CAP_BUDGET.total_seconds()
FIT_SHARE = 0.1  # how far past target x (1 + margin) the choice may go before a big session is passed over


def counted_kw(c: Candidate) -> float:
    if c.weight == 1.0:
        return max(0.0, c.expected_kw)
    return max(0.0, c.expected_kw) * min(1.0, max(0.0, c.weight))


def unmeasurable(c: Candidate, min_shed_kw: float = 0.0, min_above_a: float = 0.0) -> bool:
    """Within the delivery judge's tolerance of the cap: its response could not be told apart."""
    return counted_kw(c) < min_shed_kw or c.above_limit_a < min_above_a


def fairness_key(c: Candidate, min_shed_kw: float = 0.0, min_above_a: float = 0.0) -> tuple:
    """Sort key: an unmeasurable cap last, then most budget left, not throttled today, plugged in
    longest, then the id."""
    return (unmeasurable(c, min_shed_kw, min_above_a), -c.budget_left_s, c.throttled_today, c.plugged_in_at,
            c.session_pk)


def usable(c: Candidate) -> bool:
    """A session with no budget left or nothing to give is never chosen."""
    return c.budget_left_s > 0 and counted_kw(c) > 0


def select(candidates: Iterable[Candidate], target_kw: float, margin: float, min_shed_kw: float = 0.0,
           min_above_a: float = 0.0) -> Selection:
    """The fewest sessions, in the fairness order (`fairness_key`), whose counted shed reaches
    target x (1 + margin); unmeasurable caps (`unmeasurable`) only when the others fall short.

    When all usable sessions together fall short of the target, they are all chosen and the
    shortfall says by how much (against the target itself, not the margin).
    """
    if target_kw <= 0:
        raise ValueError("target_kw must be positive")
    if margin < 0:
        raise ValueError("margin must not be negative")
    needed = target_kw * (1.0 + margin)
    cands = [c for c in candidates if c.budget_left_s > 0]
    # Columns at once (a Candidate is a tuple): 16,000 sessions in a few ms, not tens.
    pk, expected, budget, today, plugged, weight, above = zip(*cands, strict=True) if cands else ((),) * 7
    kw = np.maximum(np.array(expected, float), 0.0)  # counted_kw, as arrays: the same figures
    w = np.array(weight, float)
    kw = np.where(w == 1.0, kw, kw * np.clip(w, 0.0, 1.0))
    keep = np.flatnonzero(kw > 0)
    small = (kw < min_shed_kw) | (np.array(above, float) < min_above_a)
    # The fairness_key as one lexsort (last key first).
    order = keep[np.lexsort((
        np.array(pk, np.int64)[keep],
        np.array([t.timestamp() for t in plugged], float)[keep],
        np.array(today, bool)[keep],
        -np.array(budget, float)[keep],
        small[keep],
    ))]
    running = np.cumsum(kw[order])  # sequential sums: the same figures as adding one by one
    count = min(len(order), int(np.searchsorted(running, needed, side="left")) + 1)
    picks = list(order[:count])
    if count and running[count - 1] > needed * (1.0 + FIT_SHARE):
        picks[-1] = _closer(order, kw, small, count - 1, needed, float(running[count - 2]) if count > 1 else 0.0)
    chosen = [pk[i] for i in picks]
    total = float(sum(kw[i] for i in picks)) if picks else 0.0
    shortfall = max(0.0, target_kw - total)
    return Selection(tuple(chosen), target_kw, needed, total, shortfall)


def _closer(order: np.ndarray, kw: np.ndarray, small: np.ndarray, last: int, needed: float, before: float) -> int:
    """The session closing the choice: the one at `last` in the order, whose shed carries the sum more
    than FIT_SHARE past `needed`, or the first later one of the same kind (measurable or not) that
    closes the gap within it. One big car at the end no longer overshoots a small target by a third
    (seen: a 5.5 kW shed on a 12.9 kW target); the number of sessions is the same."""
    rest = order[last + 1:]
    fits = (kw[rest] >= needed - before) & (kw[rest] <= needed * (1.0 + FIT_SHARE) - before) \
        & (small[rest] == small[order[last]])
    hits = np.flatnonzero(fits)
    return int(rest[hits[0]]) if len(hits) else int(order[last])


class CapSoFar(NamedTuple):
    expected_kw: float
    standing: bool  # the CSMS was asked and has not refused, and measurement does not say it was ignored
    responded: bool  # measurement says the draw fell to the cap
    shed_kw: float | None = None  # responded: the shed measured (draw before minus draw under the cap)


def standing_and_measured_kw(caps: Iterable[CapSoFar]) -> tuple[float, float]:
    """(shed still expected from caps not refused nor measured as ignored, shed of caps measured as responded).

    A cap measured as responded counts its measured shed when the states told one (else its
    expected shed): a cap that freed less than expected (an EV on fewer phases than its best
    estimate weighed) leaves the target short, and the top-up covers it. A cap without a verdict
    yet (within its grace, no reading) still stands at its expected shed: a top-up answers a
    refusal or a measurement, never the mere wait for the next state.
    """
    standing = measured = 0.0
    for cap in caps:
        kw = cap.shed_kw if cap.responded and cap.shed_kw is not None else cap.expected_kw
        standing += kw if cap.standing else 0.0
        measured += kw if cap.responded else 0.0
    return standing, measured


def responsiveness_weight(recent: Sequence[bool]) -> float:
    """How much of an EVSE's expected shed to count: the share of its recent judged caps it
    responded to (none judged: 1). An EVSE that ignored one cap in four counts for 0.75."""
    return sum(1 for ok in recent if ok) / len(recent) if recent else 1.0


def budget_left_s(past: Sequence[planning.Interval], at: datetime) -> float:
    """Throttle seconds a session has left in the 4-hour window ending at `at`."""
    if not past:
        return planning.CAP_BUDGET.total_seconds()
    lo = at - planning.CAP_WINDOW
    used = sum(max(0.0, (min(e, at) - max(s, lo)).total_seconds()) for s, e in past)
    return max(0.0, planning.CAP_BUDGET.total_seconds() - used)


def throttled_since(past: Sequence[planning.Interval], since: datetime) -> bool:
    return any(e > since for _, e in past)


def day_start(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def candidates_from_plan(plan: planning.Plan, pasts: dict[int, Sequence[planning.Interval]],
                         plugged_in: dict[int, datetime], weights: dict[int, float], at: datetime,
                         today_pasts: dict[int, Sequence[planning.Interval]] | None = None) -> list[Candidate]:
    """One candidate per planned cap; `today_pasts` (throttles since 00:00) defaults to `pasts`."""
    today = day_start(at)
    today_pasts = pasts if today_pasts is None else today_pasts
    out = []
    for c in plan.caps:
        pk = c.session_pk
        past, past_today = pasts.get(pk, ()), today_pasts.get(pk, ())
        out.append(Candidate(pk, c.expected_kw, budget_left_s(past, at) if past else FULL_BUDGET_S,
                             bool(past_today) and throttled_since(past_today, today),
                             plugged_in.get(pk, at), weights.get(pk, 1.0),
                             math.inf if c.above_limit_a is None else c.above_limit_a))
    return out


def narrow(plan: planning.Plan, selection: Selection) -> planning.Plan:
    """The plan with only the chosen caps; skip counts are kept (what was eligible but not chosen is
    not a skip: the activation records it as `eligible - len(caps)`)."""
    keep = set(selection.chosen)
    return planning.Plan(caps=[c for c in plan.caps if c.session_pk in keep], skipped=dict(plan.skipped),
                         by_source=dict(plan.by_source))

