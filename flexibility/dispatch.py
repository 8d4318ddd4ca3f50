"""Carrying out an activation: plan caps, fan the PUTs out, retry, restore at the end.

The hot loop (one OCPI PUT per session) runs in `ocpi_client.client.fan_out` over pooled
keep-alive connections; everything around it reads and writes in bulk, never per session.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q, QuerySet

from ocpi_client.models import ChargingProfileCall, Session
from smatch import clock
from smatch.db import update_from_values

from . import planning
from .models import Activation, Curtailment, Signal, SteeringRule

log = logging.getLogger(__name__)

LIVE = (Curtailment.Status.SENT, Curtailment.Status.ACCEPTED)
THROTTLED = (*LIVE, Curtailment.Status.RESTORED)  # what counts against the 4-hour budget
RUNNING = (Activation.Status.DISPATCHING, Activation.Status.ACTIVE)
REFUSALS = {"REJECTED", "NOT_SUPPORTED", "UNKNOWN_SESSION"}


# --- loading ------------------------------------------------------------------------------------


def _history(since: datetime, session_pk: int | None = None) -> dict[int, list[planning.Interval]]:
    past: dict[int, list[planning.Interval]] = defaultdict(list)
    rows = Curtailment.objects.filter(ends_at__gt=since, status__in=THROTTLED)
    if session_pk is not None:
        rows = rows.filter(session_id=session_pk)
    rows = rows.values_list("session_id", "starts_at", "ends_at", "restored_at")
    for session_pk, start, end, restored in rows:
        past[session_pk].append((start, min(end, restored) if restored else end))
    return past


def load_views(now: datetime, session_pks: Iterable[int] | None = None) -> list[planning.SessionView]:
    """Every active session as planning sees it: current, phases, opt-out, recent throttles."""
    rules = SteeringRule.objects.filter(is_active=True).values_list("location_id", "evse_uid")
    out_locations = {loc for loc, evse in rules if loc and not evse}
    out_evses = {evse for loc, evse in rules if evse}
    past = _history(now - planning.CAP_WINDOW - planning.MAX_ACTIVATION)
    sessions = Session.objects.filter(status="ACTIVE")
    if session_pks is not None:
        sessions = sessions.filter(pk__in=list(session_pks))
    fields = ("pk", "status", "last_current_a", "phases", "location_id", "evse_uid")
    return [
        planning.SessionView(
            session_pk=pk, status=status, last_current_a=current, phases=phases,
            opted_out=location in out_locations or evse in out_evses, past=tuple(past.get(pk, ())),
        )
        for pk, status, current, phases, location, evse in sessions.values_list(*fields).iterator(2000)
    ]


def preview(now: datetime | None = None) -> planning.Plan:
    """What relaying now would do: eligible sessions, skips by reason, expected shed."""
    now = now or clock.now()
    return planning.plan_caps(load_views(now), now, planning.activation_end(now))


# --- planning and sending -----------------------------------------------------------------------


def plan_activation(activation_id: int, session_pks: Iterable[int] | None = None,
                    on_planned: Callable[[list[int]], None] | None = None) -> list[int]:
    """Create the curtailments of an activation (once); return the ids still to send.

    With `session_pks`, only those sessions are considered (sessions that just started). With
    `on_planned`, each chunk of new caps is handed over as soon as it is written, so the first PUTs
    go out while the rest of a large plan is still being written; those ids are not returned.
    A repeat after a crash finds the plan done (its figures are saved last) and returns what is
    still unsent; a plan cut short by a crash is completed (the unique key skips what exists).
    """
    now = clock.now()
    plan = None
    with transaction.atomic():
        activation = Activation.objects.select_for_update().get(pk=activation_id)
        first_plan = session_pks is None and activation.status == Activation.Status.DISPATCHING
        already_planned = first_plan and bool(activation.skipped)
        if activation.status in RUNNING and now < activation.ends_at and not already_planned:
            plan = planning.plan_caps(load_views(now, session_pks), now, activation.ends_at)
    handed: set[int] = set()
    if plan is not None:
        for start in range(0, len(plan.caps), settings.DISPATCH_CHUNK):
            chunk = plan.caps[start : start + settings.DISPATCH_CHUNK]
            Curtailment.objects.bulk_create(
                [
                    Curtailment(
                        activation_id=activation_id, session_id=c.session_pk, starts_at=c.starts_at,
                        ends_at=c.ends_at, limit_a=c.limit_a, expected_kw=c.expected_kw,
                    )
                    for c in chunk
                ],
                ignore_conflicts=True,
            )
            if on_planned is not None:
                ids = list(Curtailment.objects.filter(
                    activation_id=activation_id, session_id__in=[c.session_pk for c in chunk],
                    status=Curtailment.Status.PLANNED,
                ).values_list("pk", flat=True))
                handed.update(ids)
                on_planned(ids)
        if first_plan:
            figures = {"eligible": len(plan.caps), "skipped": plan.skipped, "expected_kw": plan.expected_kw}
        else:
            figures = {"eligible": F("eligible") + len(plan.caps), "expected_kw": F("expected_kw") + plan.expected_kw}
        Activation.objects.filter(pk=activation_id).update(**figures)
    pending = Curtailment.objects.filter(activation_id=activation_id, status=Curtailment.Status.PLANNED)
    return [pk for pk in pending.values_list("pk", flat=True) if pk not in handed]


def send_caps(curtailment_ids: Sequence[int]) -> list[int]:
    """PUT the 8 A profile for these curtailments; return the ids to retry (transient failures).

    Rows are claimed (-> SENT) in one locked UPDATE before any call, so a restore that starts
    meanwhile sees them as live and DELETEs them; answers are then written only to rows still
    SENT, so a late answer never overwrites what the restore recorded. Rows already SENT are sent
    again: that is a task redelivered after a worker crash, and a repeated PUT is harmless.
    """
    now = clock.now()
    with transaction.atomic():
        claimable = Curtailment.objects.filter(
            pk__in=curtailment_ids, status__in=(Curtailment.Status.PLANNED, Curtailment.Status.SENT),
            activation__status__in=RUNNING, activation__ends_at__gt=now, ends_at__gt=now,
        )
        claimed = list(claimable.select_for_update(of=("self",)).values_list("pk", flat=True))
        Curtailment.objects.filter(pk__in=claimed).update(status=Curtailment.Status.SENT)
    _fail(Curtailment.objects.filter(pk__in=curtailment_ids, status=Curtailment.Status.PLANNED))
    due = _targets(Curtailment.objects.filter(pk__in=claimed))
    outcomes = _call_cpo(due, ChargingProfileCall.Kind.SET, now)
    by_status: dict[str, list[int]] = defaultdict(list)
    for c, outcome in zip(due, outcomes, strict=True):
        if outcome.result == "ACCEPTED":
            status = Curtailment.Status.ACCEPTED
        elif outcome.result in REFUSALS:
            status = Curtailment.Status.REFUSED
        else:  # TOO_OFTEN, HTTP 5xx, timeouts: try again while the window lasts
            status = Curtailment.Status.PLANNED
        by_status[f"{status}|{outcome.result}"].append(c.pk)
    retry: list[int] = []
    for key, ids in by_status.items():
        status, result = key.split("|", 1)
        updated = Curtailment.objects.filter(pk__in=ids, status=Curtailment.Status.SENT).update(
            status=status, response=result, attempts=F("attempts") + 1
        )
        if status == Curtailment.Status.PLANNED and updated:
            retry.extend(ids)
    return retry


def _fail(curtailments: Iterable[Curtailment]) -> None:
    """Planned caps whose window closed before they could be sent: recorded, nothing throttled."""
    ids = [c.pk for c in curtailments]
    if ids:
        Curtailment.objects.filter(pk__in=ids, status=Curtailment.Status.PLANNED).update(
            status=Curtailment.Status.FAILED
        )


class _Target(NamedTuple):
    """What a profile call needs of a curtailment: read as plain tuples, no model instances."""

    pk: int
    session_pk: int
    session_id: str  # the CPO's Session.id
    party_pk: int
    ends_at: datetime
    limit_a: float


def _targets(curtailments: QuerySet[Curtailment]) -> list[_Target]:
    fields = ("pk", "session_id", "session__session_id", "session__party_id", "ends_at", "limit_a")
    return [_Target(*row) for row in curtailments.order_by("pk").values_list(*fields)]


def _call_cpo(targets: Sequence[_Target], kind: str, now: datetime) -> list:
    """Record one profile call per curtailment, make them all concurrently, record the answers.

    Outcomes come back in the order of `targets`. Calls are grouped per CPO platform so each
    platform's pooled keep-alive connections carry its own share.
    """
    from ocpi_client import client as ocpi
    from ocpi_client import services as ocpi_services
    from ocpi_client.models import OcpiParty

    calls = [
        ChargingProfileCall(id=uuid.uuid4(), session_id=t.session_pk, kind=kind, purpose_id=t.pk, created_at=now)
        for t in targets
    ]
    ChargingProfileCall.objects.bulk_create(calls, batch_size=2000)
    by_party: dict[int, list[int]] = defaultdict(list)
    for index, target in enumerate(targets):
        by_party[target.party_pk].append(index)
    parties = OcpiParty.objects.in_bulk(list(by_party))
    outcomes: list = [None] * len(targets)
    for party_pk, indexes in by_party.items():
        outbound = [_outbound(ocpi, targets[i], calls[i].id, kind, now) for i in indexes]
        answers = ocpi.client_for(parties[party_pk]).fan_out(outbound, max_workers=settings.DISPATCH_THREADS)
        for i, answer in zip(indexes, answers, strict=True):
            outcomes[i] = answer
    ocpi_services.record_outcomes(outcomes)
    return outcomes


def _outbound(ocpi, target: _Target, call_id: uuid.UUID, kind: str, now: datetime):
    body = None
    if kind == ChargingProfileCall.Kind.SET:
        duration_s = max(1, int((target.ends_at - now).total_seconds()))
        body = ocpi.build_set_charging_profile(call_id, target.limit_a, now, duration_s)
    return ocpi.OutboundCall(call_id=call_id, kind=kind, session_id=target.session_id, set_charging_profile=body)


def mark_dispatched(activation_id: int) -> None:
    """Once nothing is left to send, the activation is active (and the signal too)."""
    unanswered = (Curtailment.Status.PLANNED, Curtailment.Status.SENT)
    if Curtailment.objects.filter(activation_id=activation_id, status__in=unanswered).exists():
        return
    with transaction.atomic():
        if Activation.objects.filter(pk=activation_id, status=Activation.Status.DISPATCHING).update(
            status=Activation.Status.ACTIVE
        ):
            Signal.objects.filter(activation__pk=activation_id, status=Signal.Status.RELAYED).update(
                status=Signal.Status.ACTIVE
            )


def give_up(curtailment_ids: Sequence[int]) -> None:
    """Transient failures that outlived the activation: recorded as failed, nothing throttled."""
    Curtailment.objects.filter(pk__in=curtailment_ids, status=Curtailment.Status.PLANNED).update(
        status=Curtailment.Status.FAILED
    )


def retry_delay_s(attempt: int) -> float:
    """Bounded exponential backoff in wall-clock seconds: 0.5, 1, 2, 4, 4, ..."""
    return min(4.0, 0.5 * 2 ** max(0, attempt - 1))


def budget_used(session_pk: int, at: datetime) -> str:
    """Throttled minutes of a session in the 4 hours before `at` (the activation page's column)."""
    past = _history(at - planning.CAP_WINDOW, session_pk).get(session_pk, [])
    used = planning.max_window_throttle([(s, e) for s, e in past if s <= at] or [(at, at)])
    return f"{used.total_seconds() / 60:.1f} / {planning.CAP_BUDGET.total_seconds() / 60:.0f} min"


# --- restoring ----------------------------------------------------------------------------------


def restore_curtailments(curtailment_ids: Sequence[int] | None = None, now: datetime | None = None) -> int:
    """DELETE the profile of every live curtailment whose end has come (or of the given ones).

    A DELETE that fails changes nothing for the driver: the profile carries its own duration, so
    the CSMS falls back at `ends_at` by itself; the restore time recorded is then that end.
    """
    now = now or clock.now()
    live = Curtailment.objects.filter(status__in=LIVE)
    live = live.filter(pk__in=curtailment_ids) if curtailment_ids is not None else live.filter(ends_at__lte=now)
    rows = _targets(live)
    if not rows:
        return 0
    outcomes = _call_cpo(rows, ChargingProfileCall.Kind.CLEAR, now)
    answered = clock.now()
    restored = [
        # Unanswered: the profile's own duration ends the cap at its planned end, not earlier.
        {"pk": c.pk, "status": Curtailment.Status.RESTORED,
         "restored_at": min(answered, c.ends_at) if outcome.result == "ACCEPTED" else c.ends_at}
        for c, outcome in zip(rows, outcomes, strict=True)
    ]
    update_from_values(Curtailment, restored, ["status", "restored_at"])
    return len(rows)


def restore_activation(activation_id: int) -> bool:
    """End an activation: every live cap is deleted and the activation closed. Idempotent."""
    now = clock.now()
    activation = Activation.objects.get(pk=activation_id)
    if activation.status == Activation.Status.RESTORED:
        return False
    if now < activation.ends_at:
        return False  # queued early (clock skew): the sweep or the scheduled task comes back
    Activation.objects.filter(pk=activation_id, status__in=RUNNING).update(status=Activation.Status.RESTORING)
    Curtailment.objects.filter(activation_id=activation_id, status=Curtailment.Status.PLANNED).update(
        status=Curtailment.Status.FAILED
    )
    # A PUT we gave up on (timeout) may still have been applied: the CPO's async result says so.
    # Such a cap was in force, so it counts against the budget and gets its DELETE like the others.
    applied = ChargingProfileCall.objects.filter(kind=ChargingProfileCall.Kind.SET, result="ACCEPTED")
    Curtailment.objects.filter(
        activation_id=activation_id, status=Curtailment.Status.FAILED, pk__in=applied.values("purpose_id")
    ).update(status=Curtailment.Status.ACCEPTED)
    ids = list(activation.curtailments.filter(status__in=LIVE).values_list("pk", flat=True))
    restore_curtailments(ids, now)
    with transaction.atomic():
        Activation.objects.filter(pk=activation_id).exclude(status=Activation.Status.RESTORED).update(
            status=Activation.Status.RESTORED, restored_at=clock.now()
        )
        Signal.objects.filter(activation__pk=activation_id).filter(
            Q(status=Signal.Status.RELAYED) | Q(status=Signal.Status.ACTIVE)
        ).update(status=Signal.Status.RESTORED)
    return True


def overdue_activation_ids(now: datetime | None = None) -> list[int]:
    now = now or clock.now()
    statuses = (*RUNNING, Activation.Status.RESTORING)
    return list(Activation.objects.filter(status__in=statuses, ends_at__lte=now).values_list("pk", flat=True))


def stall_s() -> float:
    """Real seconds without any answer after which a dispatch counts as dead: two timeouts + two backoffs."""
    return 2 * settings.OCPI_HTTP_TIMEOUT_S + 2 * retry_delay_s(settings.DISPATCH_MAX_RETRIES)


def stalled_activation_ids(now: datetime | None = None) -> list[int]:
    """Activations still dispatching whose sends made no progress for `stall_s()` real seconds.

    Their task died with a worker (an unacknowledged Redis message comes back only after the
    visibility timeout, an hour) or never reached the broker (Redis down at relay). Re-dispatching
    is safe: the plan is made once and a repeated PUT is harmless.
    """
    now = now or clock.now()
    out = []
    candidates = Activation.objects.filter(status=Activation.Status.DISPATCHING, ends_at__gt=now)
    for pk, relayed_at in candidates.values_list("pk", "relayed_at"):
        caps = Curtailment.objects.filter(activation_id=pk).values("pk")
        last = ChargingProfileCall.objects.filter(kind=ChargingProfileCall.Kind.SET, purpose_id__in=caps).aggregate(
            created=Max("created_at"), answered=Max("answered_at"))
        progress = max(t for t in (relayed_at, last["created"], last["answered"]) if t is not None)
        if (now - progress).total_seconds() / clock.get_clock().speed > stall_s():
            out.append(pk)
    return out


def unanswered_ids(activation_id: int) -> list[int]:
    """Caps of an activation still to send or whose PUT never came back (its task died)."""
    unanswered = (Curtailment.Status.PLANNED, Curtailment.Status.SENT)
    return list(Curtailment.objects.filter(activation_id=activation_id, status__in=unanswered)
                .values_list("pk", flat=True))


def running_activation_ids(now: datetime | None = None) -> list[int]:
    now = now or clock.now()
    return list(Activation.objects.filter(status__in=RUNNING, ends_at__gt=now).values_list("pk", flat=True))

