"""Read side: what an activation did, for the BRP API, the admin page and the demo summary."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, Max, Min, Q, Sum

from ocpi.models import ChargingProfileCall

from .models import LIVE, Activation, Curtailment, Signal

S = Curtailment.Status
# What the CSMS made of the caps (a restored cap counts as what it was before the restore).
CAP_STATES = (S.PENDING, S.IN_FORCE, S.REFUSED, S.NO_RESULT, S.FAILED)


def cap_states(activation: Activation) -> dict:
    """Caps by state: pending at the CSMS / in force / refused / no result / failed, and unsent."""
    rows = activation.curtailments.values_list("status", "restored_from").annotate(n=Count("pk"))
    counts = dict.fromkeys([*CAP_STATES, "unsent"], 0)
    for status, restored_from, n in rows.values_list("status", "restored_from", "n"):
        state = restored_from if status == S.RESTORED else status
        state = "unsent" if state in (S.PLANNED, S.SENT, "") else state
        counts[state] = counts.get(state, 0) + n
    return counts


def delivery_counts(activation: Activation) -> dict:
    """Delivery proven by measurement: responded / did not respond / no data, and after the restore."""
    caps = activation.curtailments
    delivery = dict(caps.exclude(delivery="").values_list("delivery").annotate(n=Count("pk"))
                    .values_list("delivery", "n"))
    resumed = dict(caps.exclude(resumption="").values_list("resumption").annotate(n=Count("pk"))
                   .values_list("resumption", "n"))
    return {
        "responded": delivery.get(Curtailment.Delivery.RESPONDED, 0),
        "not_responded": delivery.get(Curtailment.Delivery.NOT_RESPONDED, 0),
        "no_data": delivery.get(Curtailment.Delivery.NO_DATA, 0),
        "resumed": resumed.get(Curtailment.Resumption.RESUMED, 0),
        "drivers_at_risk": resumed.get(Curtailment.Resumption.NOT_RESUMED, 0),
    }


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    return None if start is None or end is None else round((end - start).total_seconds() * 1000)


def _outcome(activation: Activation, throttled: int, caps: int) -> str:
    """One word for the operator: did the CPO carry the activation out?

    `restored` alone does not say it: an activation whose every PUT failed is restored too.
    in_progress (not restored yet), not_dispatched (no plan was made before the end: the queue
    was down all along), no_sessions (planned, nothing eligible), complete (every cap was in
    force), partial (some refused or failed), failed (none was in force).
    """
    if activation.status != Activation.Status.RESTORED:
        return "in_progress"
    if caps == 0:
        return "no_sessions" if activation.skipped else "not_dispatched"  # a plan always counts skips
    if throttled == caps:
        return "complete"
    return "partial" if throttled else "failed"


def activation_summary(activation: Activation) -> dict:
    """Counts, kW and latency figures (milliseconds after the signal was received)."""
    by_status = dict(
        activation.curtailments.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    accepted = Q(status__in=[*LIVE, S.RESTORED]) & ~Q(status=S.SENT) & ~Q(restored_from=S.SENT)
    dispatched_kw = activation.curtailments.filter(accepted).aggregate(kw=Sum("expected_kw"))["kw"] or 0.0
    # Latency is about the fan-out at relay; sessions that join later have their own clock.
    first_start = activation.curtailments.aggregate(t=Min("starts_at"))["t"]
    initial = activation.curtailments.filter(starts_at__lte=first_start + timedelta(seconds=1)) if first_start else None
    cap_ids = initial.values("pk") if initial is not None else []
    puts = ChargingProfileCall.objects.filter(purpose_id__in=cap_ids, kind=ChargingProfileCall.Kind.SET)
    figures = puts.aggregate(
        first_put=Min("sent_at"),
        last_answer=Max("answered_at"),
        unanswered=Count("pk", filter=Q(answered_at__isnull=True)),
        last_result=Max("result_at"),
        awaiting=Count("pk", filter=Q(response_result="ACCEPTED", result="")),
    )
    planned = by_status.get(Curtailment.Status.PLANNED, 0)
    all_answered = figures["last_answer"] if not figures["unanswered"] and not planned else None
    all_results = figures["last_result"] if all_answered and not figures["awaiting"] else None
    received = activation.signal.received_at
    states = cap_states(activation)
    throttled = states[S.PENDING] + states[S.IN_FORCE] + states[S.NO_RESULT]
    return {
        "outcome": _outcome(activation, throttled, sum(by_status.values())),
        "status": activation.status,
        "relayed_at": activation.relayed_at,
        "ends_at": activation.ends_at,
        "restored_at": activation.restored_at,
        "stopped_early": activation.stopped_early,
        "sessions_eligible": activation.eligible,
        "sessions_throttled": throttled,
        "sessions_refused": by_status.get(Curtailment.Status.REFUSED, 0),
        "sessions_failed": by_status.get(Curtailment.Status.FAILED, 0),
        "sessions_by_outcome": by_status,
        "caps_by_state": states,
        "delivery": delivery_counts(activation),
        "sessions_skipped": activation.skipped,
        "expected_kw": round(activation.expected_kw, 3),
        "dispatched_kw": round(dispatched_kw, 3),
        "target": target_figures(activation),
        "latency_ms": {
            "relayed": _ms(received, activation.relayed_at),
            "first_put": _ms(received, figures["first_put"]),
            "all_puts_answered": _ms(received, all_answered),
            "all_async_results": _ms(received, all_results),
            "restored": _ms(received, activation.restored_at),
        },
    }


def target_figures(activation: Activation) -> dict | None:
    """A target-kW activation: target, expected, shortfall (the eligible fleet fell short) and measured shed."""
    if activation.target_kw is None:
        return None
    return {"target_kw": activation.target_kw, "expected_kw": round(activation.expected_kw, 3),
            "shortfall_kw": round(activation.shortfall_kw or 0.0, 3), "measured_kw": activation.measured_kw}


def signal_summary(signal: Signal) -> dict | None:
    """The activation summary of a relayed signal, or None before relay."""
    try:
        return activation_summary(signal.activation)
    except Activation.DoesNotExist:
        return None
