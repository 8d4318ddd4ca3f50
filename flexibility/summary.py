"""Read side: what an activation did, for the BRP API, the admin page and the demo summary.

The cap and PUT figures are final once the activation is restored (a result arriving later is
stale and changes nothing), so `services.activations.restore_activation` stores them then
(`final_figures`, written by `lifecycle.activation_restored`) and a restored activation's summary
reads them from its row instead of recounting its caps and calls. Only the delivery verdicts,
judged by measurement after the restore, are still counted (for a list page, in one query).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from django.db.models import Count, Max, Min, Q, Sum

from ocpi.models import ChargingProfileCall

from .lifecycle import LIVE
from .models import Activation, Curtailment, Signal

S = Curtailment.Status
# What the CSMS made of the caps (a restored cap counts as what it was before the restore).
CAP_STATES = (S.PENDING, S.IN_FORCE, S.REFUSED, S.NO_RESULT, S.FAILED)
D, R = Curtailment.Delivery, Curtailment.Resumption
# The delivery figures: name -> (field, verdict) of the caps it counts.
DELIVERY = {
    "responded": ("delivery", D.RESPONDED),
    "not_responded": ("delivery", D.NOT_RESPONDED),
    "no_data": ("delivery", D.NO_DATA),
    "resumed": ("resumption", R.RESUMED),
    "drivers_at_risk": ("resumption", R.NOT_RESUMED),
}
# The figures stored on a restored activation's row (`final_figures`).
STORED = ("sessions_by_outcome", "caps_by_state", "dispatched_kw", "first_put_at", "puts_answered_at", "results_at")


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
    return activation.curtailments.aggregate(
        **{name: Count("pk", filter=Q(**{field: verdict})) for name, (field, verdict) in DELIVERY.items()})


def delivery_counts_of(activation_ids: Iterable[int]) -> dict[int, dict]:
    """`delivery_counts` of many activations in one query (a page of the signal list)."""
    ids = list(activation_ids)
    counts = {pk: dict.fromkeys(DELIVERY, 0) for pk in ids}
    rows = Curtailment.objects.filter(activation_id__in=ids).values("activation_id").annotate(
        **{name: Count("pk", filter=Q(**{field: verdict})) for name, (field, verdict) in DELIVERY.items()})
    for row in rows:
        counts[row.pop("activation_id")] = row
    return counts


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


def final_figures(activation: Activation) -> dict:
    """The figures counted from the caps and their PUTs: what `Activation` stores at the restore."""
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
    calls = puts.aggregate(
        first_put=Min("sent_at"),
        last_answer=Max("answered_at"),
        unanswered=Count("pk", filter=Q(answered_at__isnull=True)),
        last_result=Max("result_at"),
        awaiting=Count("pk", filter=Q(response_result="ACCEPTED", result="")),
    )
    all_answered = calls["last_answer"] if not calls["unanswered"] and not by_status.get(S.PLANNED) else None
    return {
        "sessions_by_outcome": by_status,
        "caps_by_state": cap_states(activation),
        "dispatched_kw": dispatched_kw,
        "first_put_at": calls["first_put"],
        "puts_answered_at": all_answered,
        "results_at": calls["last_result"] if all_answered and not calls["awaiting"] else None,
    }


def _stored_figures(activation: Activation) -> dict | None:
    if activation.status != Activation.Status.RESTORED or activation.caps_by_state is None:
        return None  # still running, or restored before the figures were stored
    return {name: getattr(activation, name) for name in STORED}


def activation_summary(activation: Activation, delivery: dict | None = None) -> dict:
    """Counts, kW and latency figures (milliseconds after the signal was received).

    A restored activation's figures come from its row; `delivery`, if given, saves counting the
    delivery verdicts (a list page counts them for all its rows at once).
    """
    figures = _stored_figures(activation) or final_figures(activation)
    by_status, states = figures["sessions_by_outcome"], figures["caps_by_state"]
    received = activation.signal.received_at
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
        "sessions_refused": by_status.get(S.REFUSED, 0),
        "sessions_failed": by_status.get(S.FAILED, 0),
        "sessions_by_outcome": by_status,
        "caps_by_state": states,
        "delivery": delivery if delivery is not None else delivery_counts(activation),
        "sessions_skipped": activation.skipped,
        "expected_kw": round(activation.expected_kw, 3),
        "dispatched_kw": round(figures["dispatched_kw"], 3),
        "target": target_figures(activation),
        "latency_ms": {
            "relayed": _ms(received, activation.relayed_at),
            "first_put": _ms(received, figures["first_put_at"]),
            "all_puts_answered": _ms(received, figures["puts_answered_at"]),
            "all_async_results": _ms(received, figures["results_at"]),
            "restored": _ms(received, activation.restored_at),
        },
    }


def target_figures(activation: Activation) -> dict | None:
    """A target-kW activation: target, expected, shortfall (the eligible fleet fell short) and measured shed."""
    if activation.target_kw is None:
        return None
    return {"target_kw": activation.target_kw, "expected_kw": round(activation.expected_kw, 3),
            "shortfall_kw": round(activation.shortfall_kw or 0.0, 3), "measured_kw": activation.measured_kw}


def activation_id_of(signal: Signal) -> int | None:
    try:
        return signal.activation.pk
    except Activation.DoesNotExist:
        return None


def signal_summary(signal: Signal, delivery: Mapping[int, dict] | None = None) -> dict | None:
    """The activation summary of a relayed signal, or None before relay. `delivery`: the delivery
    counts by activation id, when the caller counted them for many (`delivery_counts_of`)."""
    activation_id = activation_id_of(signal)
    if activation_id is None:
        return None
    return activation_summary(signal.activation, (delivery or {}).get(activation_id))
