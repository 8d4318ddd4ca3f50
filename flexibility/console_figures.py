"""Read side of the operator console: the figures it shows, in human words and units.

Views call these; nothing here writes. Cap states are read through `cap_states` alone, so a change
of the cap lifecycle touches one mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count

from ocpi.models import SessionState
from smatch import clock

from . import planning, powerchart
from .models import Activation, Curtailment, Signal
from .services import activations
from .services.signals import signal_deadline
from .summary import activation_summary

SKIP_WORDS = {
    planning.SKIP_NOT_ACTIVE: "not charging",
    planning.SKIP_NOT_REGISTERED: "CPO not registered",
    planning.SKIP_STALE: "no news from the CPO for too long",
    planning.SKIP_DRAW_UNKNOWN: "draw unknown (one state, no current or power yet)",
    planning.SKIP_AT_OR_BELOW_MIN: "already at or below 8 A",
    planning.SKIP_OPTED_OUT: "opted out by a steering rule",
    planning.SKIP_CAP: "30-minute budget in 4 hours used up",
    planning.SKIP_ALREADY: "already capped by another activation",
    planning.SKIP_TOO_SHORT: "started too late in the activation for a cap to matter",
}
# Cap state -> what the operator reads; the order is the order shown.
CAP_STATE_WORDS = {
    Curtailment.Status.PLANNED: "being sent",
    Curtailment.Status.SENT: "being sent",
    Curtailment.Status.PENDING: "pending at the CSMS",
    Curtailment.Status.IN_FORCE: "in force",
    Curtailment.Status.REFUSED: "refused",
    Curtailment.Status.NO_RESULT: "no result",
    Curtailment.Status.FAILED: "not sent",
    Curtailment.Status.RESTORED: "restored",
}
LATENCY_WORDS = {
    "relayed": "relayed",
    "first_put": "first profile sent",
    "all_puts_answered": "all profiles answered",
    "all_async_results": "all results back",
    "restored": "restored",
}
CHART_BEFORE = timedelta(minutes=2)
CHART_AFTER = timedelta(minutes=1)


@dataclass(frozen=True)
class Preview:
    eligible: int
    expected_kw: float
    expected_high_kw: float  # the planner's high end (every plausible phase count)
    skips: list[tuple[str, int]]  # (reason in words, sessions), non-zero only


@dataclass(frozen=True)
class PendingSignal:
    signal: Signal
    age_s: float
    expires_in_s: float
    auto_relay_in_s: float | None


@dataclass
class ActivationPanel:
    activation: Activation
    running: bool
    ends_in_s: float
    cap_states: list[tuple[str, int]]
    latencies_s: list[tuple[str, float | None]]
    expected_kw: float
    eligible: int
    skips: list[tuple[str, int]] = field(default_factory=list)


def skips_in_words(skipped: dict[str, int]) -> list[tuple[str, int]]:
    return [(SKIP_WORDS.get(reason, reason.replace("_", " ")), n) for reason, n in skipped.items() if n]


def preview(now: datetime | None = None) -> Preview:
    """What relaying now would do, with the expected shed as a range."""
    now = now or clock.now()
    views = activations.load_views(now)
    plan = planning.plan_caps(views, now, planning.activation_end(now))
    return Preview(len(plan.caps), round(plan.expected_kw, 1), round(plan.expected_kw_high, 1),
                   skips_in_words(plan.skipped))


def pending_signals(now: datetime | None = None, limit: int = 20) -> list[PendingSignal]:
    """Signals waiting for a decision, oldest first (the one expiring soonest leads)."""
    now = now or clock.now()
    rows = Signal.objects.filter(status=Signal.Status.RECEIVED).select_related("brp").order_by("received_at")
    out = []
    for signal in rows[:limit]:
        deadline = signal_deadline(signal.received_at, signal.end_time)
        auto = signal.auto_relay_at
        out.append(PendingSignal(signal, (now - signal.received_at).total_seconds(),
                                 max(0.0, (deadline - now).total_seconds()),
                                 None if auto is None else max(0.0, (auto - now).total_seconds())))
    return out


def cap_states(activation: Activation) -> list[tuple[str, int]]:
    """Caps of an activation counted by state, in words, in lifecycle order."""
    counts = dict(activation.curtailments.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    return states_in_words(counts)


def states_in_words(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Counts by cap status -> counts by the word the operator reads, every known word shown."""
    counts = dict(counts)
    words: dict[str, int] = {}
    for status, word in CAP_STATE_WORDS.items():
        words[word] = words.get(word, 0) + counts.pop(status, 0)
    for status, n in counts.items():  # a state this mapping does not know yet still shows
        word = str(status).replace("_", " ")
        words[word] = words.get(word, 0) + n
    return list(words.items())


def latest_activation() -> Activation | None:
    running = Activation.objects.filter(status__in=activations.RUNNING).order_by("-relayed_at").first()
    return running or Activation.objects.order_by("-relayed_at").select_related("signal__brp").first()


def activation_panel(activation: Activation, now: datetime | None = None) -> ActivationPanel:
    now = now or clock.now()
    summary = activation_summary(activation)
    latencies = [(LATENCY_WORDS[k], None if v is None else round(v / 1000, 1))
                 for k, v in summary["latency_ms"].items()]
    return ActivationPanel(
        activation=activation, running=activation.status in activations.RUNNING,
        ends_in_s=max(0.0, (activation.ends_at - now).total_seconds()),
        cap_states=cap_states(activation), latencies_s=latencies,
        expected_kw=round(activation.expected_kw, 1), eligible=activation.eligible,
        skips=skips_in_words(activation.skipped or {}),
    )


def chart(activation: Activation, now: datetime | None = None) -> dict:
    """The live chart's series for the sessions this activation steers, from their pushed states."""
    now = now or clock.now()
    start = activation.relayed_at - CHART_BEFORE
    end = min(now, max(activation.ends_at, activation.restored_at or activation.ends_at) + CHART_AFTER)
    session_ids = activation.curtailments.values("session_id")
    rows = SessionState.objects.filter(session_id__in=session_ids, timestamp__lte=end,
                                       timestamp__gte=start - timedelta(minutes=15)).values_list(
        "session_id", "timestamp", "power_kw", "current_l1_a", "current_l2_a", "current_l3_a", "status")
    points = [powerchart.StatePoint(s, t, p, (c1, c2, c3), status == "ACTIVE") for s, t, p, c1, c2, c3, status in rows]
    series = powerchart.aggregate(points, powerchart.time_grid(start, max(start, end)))
    before = [p for t, p in zip(series.at, series.power_kw, strict=True) if t <= activation.relayed_at]
    target = round(max(0.0, before[-1] - activation.expected_kw), 3) if before else None
    return {
        "at": [t.isoformat() for t in series.at],
        "power_kw": series.power_kw,
        "min_8a_kw": series.min_8a_kw,
        "target_kw": target,  # the power before relay minus the expected shed
        "relayed_at": activation.relayed_at.isoformat(),
        "ends_at": activation.ends_at.isoformat(),
        "sessions": activation.curtailments.count(),
    }


def clock_speed() -> float:
    """Simulated seconds per real second (1 on the system clock): how fast countdowns tick."""
    return float(getattr(clock.get_clock(), "speed", 1.0))
