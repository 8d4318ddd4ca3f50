"""Pure steering arithmetic: ISPs, the activation window, the 30-min-in-4-h cap, eligibility.

No ORM here: callers load plain values, these functions decide, callers save. That keeps the
rules exhaustively testable (see tests/flexibility/test_planning*.py) and fast for 16,000 sessions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# Re-exported: callers of planning take the one phase assumption from here too.
from ocpi.schemas import ASSUMED_PHASES as ASSUMED_PHASES
from ocpi.schemas import BELOW_MIN_WEIGHT, DEFAULT_MAX_CURRENT_A, MIN_CHARGING_A, PHASE_PRIOR, PLAUSIBLE_PHASES

ISP = timedelta(minutes=15)
MAX_ACTIVATION = timedelta(minutes=15)
CAP_WINDOW = timedelta(hours=4)
CAP_BUDGET = timedelta(minutes=30)
LIMIT_A = 8.0  # per phase: the cap we send, and the minimum a session must exceed to be worth it
MIN_THROTTLE = timedelta(seconds=60)  # a budget remainder shorter than this is not worth a PUT
VOLTS_PER_PHASE = 230.0

Interval = tuple[datetime, datetime]


class PlanningError(ValueError):
    """A request the rules refuse (the message says why, for the operator or the BRP)."""


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise PlanningError("naive datetime: all times are timezone-aware UTC")
    return t.astimezone(UTC)


def isp_start(t: datetime) -> datetime:
    """Start of the 15-minute imbalance settlement period containing `t` (HH:00/15/30/45 UTC)."""
    t = _aware(t)
    return t.replace(minute=t.minute - t.minute % 15, second=0, microsecond=0)


def next_isp_boundary(t: datetime) -> datetime:
    """The first ISP boundary strictly after `t` (a time on a boundary gets the next one)."""
    return isp_start(t) + ISP


def isp_starts_between(t0: datetime, t1: datetime) -> list[datetime]:
    """Starts of every ISP that overlaps [t0, t1)."""
    out, s = [], isp_start(t0)
    while s < _aware(t1):
        out.append(s)
        s += ISP
    return out


def activation_end(relayed_at: datetime, end_time: datetime | None = None) -> datetime:
    """End of an activation relayed at `relayed_at`.

    The given end time if any, else the next ISP boundary after relay; never more than 15
    minutes after relay. An end at or before the relay cannot be relayed.
    """
    relayed_at = _aware(relayed_at)
    end = _aware(end_time) if end_time is not None else next_isp_boundary(relayed_at)
    if end <= relayed_at:
        raise PlanningError(f"the signal ended at {end.isoformat()}, before it could be relayed")
    return min(end, relayed_at + MAX_ACTIVATION)


def validate_signal_end(received_at: datetime, end_time: datetime | None) -> None:
    """A BRP's end time must lie in the future and at most 15 minutes away."""
    if end_time is None:
        return
    received_at, end_time = _aware(received_at), _aware(end_time)
    if end_time <= received_at:
        raise PlanningError("end_time is in the past")
    if end_time - received_at > MAX_ACTIVATION:
        raise PlanningError("end_time is more than 15 minutes away: one activation lasts at most 15 minutes")


def _overlap_s(intervals: Iterable[Interval], lo: datetime, hi: datetime) -> float:
    return sum(max(0.0, (min(e, hi) - max(s, lo)).total_seconds()) for s, e in intervals)


def cap_allowance(past: Sequence[Interval], start: datetime, wanted: timedelta) -> timedelta:
    """Longest throttle from `start`, up to `wanted`, keeping every 4-hour window <= 30 minutes.

    `past` are the session's earlier throttled intervals (all ending by `start`). For a new
    interval [start, start+L], the fullest 4-hour window is the one ending at start+L (moving the
    window's end left loses new time at least as fast as it gains old time), so the rule is
    L + throttled(start+L-4h, start) <= 30 min; the left side grows with L, so bisect on seconds.
    """
    budget_s, want_s = CAP_BUDGET.total_seconds(), int(wanted.total_seconds())

    def fits(length_s: int) -> bool:
        lo = start + timedelta(seconds=length_s) - CAP_WINDOW
        return length_s + _overlap_s(past, lo, start) <= budget_s

    if fits(want_s):
        return wanted  # not the truncated seconds: a 14.7 s activation gets all of its 14.7 s
    lo, hi = 0, want_s  # fits(lo) holds by the invariant on `past`; fits(hi) does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return timedelta(seconds=lo)


def max_window_throttle(intervals: Sequence[Interval]) -> timedelta:
    """The largest throttled time inside any 4-hour window (checked at every interval end)."""
    worst = 0.0
    for _, end in intervals:
        worst = max(worst, _overlap_s(intervals, end - CAP_WINDOW, end))
    return timedelta(seconds=worst)


# --- eligibility ------------------------------------------------------------------------------

# The one assumption for a phase count nobody told us lives with the OCPI intake (ASSUMED_PHASES:
# converting a power to a per-phase current for display and delivery checks); decisions and the
# expected shed here consider every count in PLAUSIBLE_PHASES, so neither a cap nor a promise rests
# on the guess.
# A phase count that makes the draw exceed the connector's max_amperage by more than this is not plausible.
MAX_CURRENT_TOLERANCE = 0.10
STALE_AFTER = timedelta(minutes=30)  # default of OCPI_SESSION_STALE_AFTER_S

ELIGIBLE = "eligible"
SKIP_NOT_ACTIVE = "not_active"
SKIP_NOT_REGISTERED = "party_not_registered"
SKIP_STALE = "stale"
SKIP_DRAW_UNKNOWN = "draw_unknown"
SKIP_AT_OR_BELOW_MIN = "at_or_below_8a"
SKIP_OPTED_OUT = "opted_out"
SKIP_CAP = "cap_exhausted"
SKIP_ALREADY = "already_throttled"
SKIP_TOO_SHORT = "window_too_short"
SKIP_REASONS = (SKIP_NOT_ACTIVE, SKIP_NOT_REGISTERED, SKIP_STALE, SKIP_DRAW_UNKNOWN, SKIP_AT_OR_BELOW_MIN,
                SKIP_OPTED_OUT, SKIP_CAP, SKIP_ALREADY, SKIP_TOO_SHORT)

# Session.phases_source values whose phase count is the session's own (a connector only bounds it:
# a one-phase car on a three-phase connector draws on one phase).
FIRM_PHASE_SOURCES = frozenset({"reported", "power_current"})
# Session.phases_source "power": the session drew more than fewer phases carry, `phases` is a lower bound.
PHASES_AT_LEAST = "power"


@dataclass(frozen=True)
class SessionView:
    """What planning needs to know of one charging session, loaded in bulk by the caller.

    `last_current_a` is a per-phase reading when `current_source` is "measured" (or when no power is
    known, for callers that only have a current); otherwise `last_power_kw` is what was observed.
    """

    session_pk: int
    status: str
    last_current_a: float | None
    phases: int | None = None
    opted_out: bool = False
    past: tuple[Interval, ...] = ()  # earlier throttled intervals, most recent 4 h are enough
    last_power_kw: float | None = None
    current_source: str = ""
    phases_source: str = "reported"  # how `phases` is known; "connector" makes it an upper bound
    max_current_a: float | None = None  # the connector's max_amperage, bounds the plausible phase counts
    seen_at: datetime | None = None  # last push or pull of the session; None: not checked
    party_registered: bool = True
    unresponsive: bool = False  # the EVSE ignored recent caps: still capped, counted out of the shed


@dataclass(frozen=True)
class CapPlan:
    session_pk: int
    starts_at: datetime
    ends_at: datetime
    limit_a: float
    expected_kw: float  # the best estimate of the shed (phase counts weighed, see `phase_weights`)
    expected_kw_high: float | None = None  # the high end (None: the same as expected_kw)
    expected_kw_low: float | None = None  # the low end: what we can promise (None: the same as expected_kw)
    above_limit_a: float | None = None  # per-phase current above limit_a, highest plausible reading (None: unknown)


@dataclass
class Plan:
    caps: list[CapPlan] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))
    # Capped sessions by where their draw came from ("measured", "power", "kwh", "assumed"): the preview
    # shows how much of the expected shed rests on measurement.
    by_source: dict[str, int] = field(default_factory=dict)

    @property
    def expected_kw(self) -> float:
        """Best estimate of the expected shed."""
        return sum(c.expected_kw for c in self.caps)

    @property
    def expected_kw_low(self) -> float:
        return sum(c.expected_kw if c.expected_kw_low is None else c.expected_kw_low for c in self.caps)

    @property
    def expected_kw_high(self) -> float:
        return sum(c.expected_kw if c.expected_kw_high is None else c.expected_kw_high for c in self.caps)


def shed_kw(current_a: float, phases: int | None, limit_a: float = LIMIT_A) -> float:
    """Power freed by capping a session drawing `current_a` per phase on `phases` phases to `limit_a`.

    An unknown phase count counts as one phase: the low end of what it can free.
    """
    return max(0.0, current_a - limit_a) * (phases or 1) * VOLTS_PER_PHASE / 1000.0


def plausible_phases(view: SessionView) -> tuple[int, ...]:
    """Phase counts the session may be drawing on: its own when firm, else every plausible one
    (up to the connector's), less those that would need more current than the connector gives."""
    if view.phases and (view.phases_source in FIRM_PHASE_SOURCES or view.phases == 1):
        return (view.phases,)
    counts = tuple(n for n in PLAUSIBLE_PHASES if not view.phases or (
        n >= view.phases if view.phases_source == PHASES_AT_LEAST else n <= view.phases))
    if view.max_current_a and _uses_power(view):
        limit = view.max_current_a * (1 + MAX_CURRENT_TOLERANCE)
        fitting = tuple(n for n in counts if _per_phase_a(view, n) <= limit)
        counts = fitting or counts[-1:]  # the connector's own figures disagree: keep the widest reading
    return counts


def _uses_power(view: SessionView) -> bool:
    """True when the draw is known as a power (converted per phase count), not as a per-phase current."""
    if view.last_power_kw is None:
        return False
    return view.current_source != "measured" or view.last_current_a is None


def _per_phase_a(view: SessionView, phases: int) -> float:
    if _uses_power(view):
        return (view.last_power_kw or 0.0) * 1000.0 / (VOLTS_PER_PHASE * phases)
    return view.last_current_a or 0.0


def draw_known(view: SessionView) -> bool:
    return view.last_current_a is not None or view.last_power_kw is not None


def per_phase_current_range_a(view: SessionView) -> tuple[float, float]:
    """Lowest and highest per-phase current over the plausible phase counts (needs a known draw)."""
    currents = [_per_phase_a(view, n) for n in plausible_phases(view)]
    return min(currents), max(currents)


def shed_range_kw(view: SessionView, limit_a: float = LIMIT_A) -> tuple[float, float]:
    """(low, high) power freed by the cap over the plausible phase counts; (0, 0) when unresponsive."""
    if view.unresponsive or not draw_known(view):
        return 0.0, 0.0
    sheds = [shed_kw(_per_phase_a(view, n), n, limit_a) for n in plausible_phases(view)]
    return min(sheds), max(sheds)


def shortest_cap(activation_start: datetime, end: datetime) -> timedelta:
    """The shortest cap worth a PUT in an activation: MIN_THROTTLE, or the whole activation when the
    BRP asked for a shorter one. A session capped late (it started, or its draw became known, during
    the activation) with less left than this is not sent: the EVSE would barely apply the limit
    before the DELETE, and its result would come after the cap was cleared."""
    return min(MIN_THROTTLE, end - activation_start)


def _fit(power_kw: float, k: int, max_current_a: float | None) -> float:
    per_phase = power_kw * 1000.0 / (VOLTS_PER_PHASE * k)
    if per_phase > (max_current_a or DEFAULT_MAX_CURRENT_A) * (1 + MAX_CURRENT_TOLERANCE):
        return ABOVE_MAX_FIT
    if per_phase < MIN_CHARGING_A * (1 - MAX_CURRENT_TOLERANCE):
        return BELOW_MIN_WEIGHT
    return 1.0


# How well one power reading fits a phase count: 1 between 6 A and the connector's max_amperage; less
# below (an EV finishing its charge) or above (a kWh average is coarse: never 0, so one noisy average
# cannot rule the truth out; planning's `plausible_phases` applies the connector's maximum as a rule).
ABOVE_MAX_FIT = 0.02


def phase_weights(powers_kw: Iterable[float], phases: Sequence[int], max_current_a: float | None = None,
                  prior: dict[int, float] = PHASE_PRIOR) -> dict[int, float]:
    """Weight of each plausible phase count given all of a session's power readings (sums to 1)."""
    weights = {k: prior.get(k, 0.0) or 1e-3 for k in phases}
    for p in powers_kw:
        if p > 0:  # a car drawing nothing fits every count alike
            weights = {k: w * _fit(p, k, max_current_a) for k, w in weights.items()}
            total = sum(weights.values())
            weights = {k: w / total for k, w in weights.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


def shed_estimate_kw(view: SessionView, limit_a: float = LIMIT_A) -> float:
    """The best estimate of the power freed by the cap: the shed on each plausible phase count,
    weighed by how likely the count is (`phase_weights`); 0 when unresponsive."""
    if view.unresponsive or not draw_known(view):
        return 0.0
    counts = plausible_phases(view)
    powers = [view.last_power_kw] if _uses_power(view) and view.last_power_kw is not None else []
    weights = phase_weights(powers, counts, view.max_current_a)
    return sum(w * shed_kw(_per_phase_a(view, n), n, limit_a) for n, w in weights.items())


def classify(view: SessionView, start: datetime, end: datetime,
             stale_after: timedelta = STALE_AFTER, activation_start: datetime | None = None) -> tuple[str, timedelta]:
    """Why a session is skipped, or ELIGIBLE with how long it may be throttled.

    Capped when the draw could be above 8 A per phase on any plausible phase count: a cap at 8 A on
    a session already below it changes nothing, a missed one loses its whole shed. `activation_start`:
    when a cap is planned after the relay (a late session), its window must last `shortest_cap`.
    """
    if view.status != "ACTIVE":
        return SKIP_NOT_ACTIVE, timedelta(0)
    if not view.party_registered:
        return SKIP_NOT_REGISTERED, timedelta(0)
    if view.seen_at is not None and start - view.seen_at > stale_after:
        return SKIP_STALE, timedelta(0)
    if not draw_known(view):
        return SKIP_DRAW_UNKNOWN, timedelta(0)
    if per_phase_current_range_a(view)[1] <= LIMIT_A:
        return SKIP_AT_OR_BELOW_MIN, timedelta(0)
    if view.opted_out:
        return SKIP_OPTED_OUT, timedelta(0)
    if any(s < end and e > start for s, e in view.past):
        return SKIP_ALREADY, timedelta(0)
    if activation_start is not None and end - start < shortest_cap(activation_start, end):
        return SKIP_TOO_SHORT, timedelta(0)
    allowed = cap_allowance(view.past, start, end - start)
    if allowed < min(MIN_THROTTLE, end - start):
        return SKIP_CAP, timedelta(0)
    return ELIGIBLE, allowed


def plan_caps(views: Iterable[SessionView], start: datetime, end: datetime,
              stale_after: timedelta = STALE_AFTER, activation_start: datetime | None = None) -> Plan:
    """Decide, for every session, whether and until when it is capped at 8 A in [start, end).
    `activation_start`: the relay, when planning late sessions of a running activation."""
    start, end = _aware(start), _aware(end)
    if end - start > MAX_ACTIVATION:
        raise PlanningError("an activation lasts at most 15 minutes")
    plan = Plan()
    for view in views:
        verdict, allowed = classify(view, start, end, stale_after, activation_start)
        if verdict != ELIGIBLE:
            plan.skipped[verdict] += 1
            continue
        low, high = shed_range_kw(view)
        best = min(high, max(low, shed_estimate_kw(view)))
        above = per_phase_current_range_a(view)[1] - LIMIT_A
        plan.caps.append(CapPlan(view.session_pk, start, start + allowed, LIMIT_A, best, high, low, above))
        source = view.current_source or "measured"  # a bare current (no provenance given) is a reading
        plan.by_source[source] = plan.by_source.get(source, 0) + 1
    return plan
