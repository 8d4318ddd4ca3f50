"""Carrying out an activation: plan caps, send them per party, follow their states, restore at the end.

Sending goes through the one OCPI sending service (`ocpi.services.send_profiles`), which
owns the call rows and tells each outcome's disposition (accepted / refused / retry); this module
only decides what to do with it, moving caps along their lifecycle (`flexibility.lifecycle`).
Everything reads and writes in bulk, never per session. It queues nothing: the tasks call it and
queue what it returns.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Least

from ocpi import services as ocpi_services
from ocpi.client import ACCEPTED, RETRY
from ocpi.models import ChargingProfileCall, Session
from ocpi.signals import ProfileResult
from smatch import clock

from .. import lifecycle, planning, summary, targeting
from ..lifecycle import LIVE, RUNNING
from ..models import Activation, Curtailment, SteeringRule
from ..responsiveness import flagged_evse_keys

S = Curtailment.Status
THROTTLED = (*LIVE, S.RESTORED)  # what counts against the 4-hour budget
ASYNC_REFUSALS = frozenset({"REJECTED", "UNKNOWN"})


def _sim_after(real_s: float, now: datetime | None = None) -> datetime:
    """The simulated time `real_s` real seconds from now (the clock may run faster than real time)."""
    return (now or clock.now()) + timedelta(seconds=real_s * clock.get_clock().speed)


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
    """Every active session as planning sees it: draw and its provenance, phases (and how they are
    known), connector bounds, freshness, its party's registration, opt-out, the EVSE's
    responsiveness and recent throttles. Ids (location, EVSE) match without case."""
    rules = SteeringRule.objects.filter(is_active=True).values_list("location_id", "evse_uid")
    out_locations = {loc.upper() for loc, evse in rules if loc and not evse}
    out_evses = {evse.upper() for loc, evse in rules if evse}
    unresponsive = flagged_evse_keys()
    past = _history(now - planning.CAP_WINDOW - planning.MAX_ACTIVATION)
    sessions = Session.objects.filter(status="ACTIVE")
    if session_pks is not None:
        sessions = sessions.filter(pk__in=list(session_pks))
    fields = ("pk", "status", "last_current_a", "phases", "location_id", "evse_uid", "last_power_kw",
              "current_source", "phases_source", "max_current_a", "seen_at", "party_id", "party__status")
    return [
        planning.SessionView(
            session_pk=pk, status=status, last_current_a=current, phases=phases,
            opted_out=location.upper() in out_locations or evse.upper() in out_evses, past=tuple(past.get(pk, ())),
            last_power_kw=power, current_source=current_source, phases_source=phases_source,
            max_current_a=max_current, seen_at=seen_at, party_registered=party_status == "REGISTERED",
            unresponsive=(party_pk, evse.upper()) in unresponsive,
        )
        for (pk, status, current, phases, location, evse, power, current_source, phases_source, max_current,
             seen_at, party_pk, party_status) in sessions.values_list(*fields).iterator(2000)
    ]


def stale_after() -> timedelta:
    """How long a session may go without news before planning skips it (OCPI_SESSION_STALE_AFTER_S)."""
    return timedelta(seconds=settings.OCPI_SESSION_STALE_AFTER_S)


def preview(now: datetime | None = None) -> planning.Plan:
    """What relaying now would do: eligible sessions, skips by reason, expected shed (low and high)."""
    now = now or clock.now()
    return planning.plan_caps(load_views(now), now, planning.activation_end(now), stale_after())


# --- planning and sending -----------------------------------------------------------------------


def plan_activation(activation_id: int, session_pks: Iterable[int] | None = None) -> list[int]:
    """Create the curtailments of an activation (once); return the ids still to send."""
    return [pk for chunk in plan_in_chunks(activation_id, session_pks) for pk in chunk]


def plan_in_chunks(activation_id: int, session_pks: Iterable[int] | None = None) -> Iterator[list[int]]:
    """Create the curtailments of an activation (once), yielding the ids to send chunk by chunk.

    Each chunk of new caps is yielded as soon as it is written, so the caller can queue the first
    PUTs while the rest of a large plan is still being written; last come the caps still unsent
    from an earlier run. With `session_pks`, only those sessions are considered (sessions that
    just started). A repeat after a crash finds the plan done (its figures are saved last) and
    yields what is still unsent; a plan cut short by a crash is completed (the unique key skips
    what exists).
    """
    now = clock.now()
    plan = None
    with transaction.atomic():
        activation = Activation.objects.select_for_update().get(pk=activation_id)
        first_plan = session_pks is None and activation.status == Activation.Status.DISPATCHING
        already_planned = first_plan and bool(activation.skipped)
        if activation.status in RUNNING and now < activation.ends_at and not already_planned:
            views = load_views(now, session_pks)
            late_from = activation.relayed_at if session_pks is not None else None  # late sessions: shortest_cap
            plan = planning.plan_caps(views, now, activation.ends_at, stale_after(), late_from)
            plan = targeting.apply(plan, activation, now, first=session_pks is None)
            before = {v.session_pk: v.last_current_a for v in views if v.current_source == "measured"}
    handed: set[int] = set()
    if plan is not None:
        for start in range(0, len(plan.caps), settings.DISPATCH_CHUNK):
            chunk = plan.caps[start : start + settings.DISPATCH_CHUNK]
            Curtailment.objects.bulk_create(
                [
                    Curtailment(
                        activation_id=activation_id, session_id=c.session_pk, starts_at=c.starts_at,
                        ends_at=c.ends_at, limit_a=c.limit_a, expected_kw=c.expected_kw, due_at=now,
                        before_a=before.get(c.session_pk),
                    )
                    for c in chunk
                ],
                ignore_conflicts=True,
            )
            ids = list(Curtailment.objects.filter(
                activation_id=activation_id, session_id__in=[c.session_pk for c in chunk], status=S.PLANNED,
            ).values_list("pk", flat=True))
            handed.update(ids)
            if ids:
                yield ids
        if first_plan:
            figures = {"eligible": len(plan.caps), "skipped": plan.skipped, "expected_kw": plan.expected_kw}
        else:
            figures = {"eligible": F("eligible") + len(plan.caps), "expected_kw": F("expected_kw") + plan.expected_kw}
        Activation.objects.filter(pk=activation_id).update(**figures)
    pending = Curtailment.objects.filter(activation_id=activation_id, status=S.PLANNED)
    rest = [pk for pk in pending.values_list("pk", flat=True) if pk not in handed]
    if rest:
        yield rest


def ends_at(activation_id: int) -> datetime:
    """When the activation ends (its restore is due)."""
    return Activation.objects.values_list("ends_at", flat=True).get(pk=activation_id)


def send_caps(curtailment_ids: Sequence[int], attempt: int = 0) -> list[int]:
    """PUT the 8 A profile for these curtailments; return the ids to retry (`attempt` + 1).

    Rows are claimed (-> sent, `lifecycle.claim_caps`) before any call, so a restore that starts
    meanwhile sees them as live and DELETEs them; answers then move only rows still sent, so a
    late answer never overwrites what the restore recorded. Rows already sent are sent again only
    once their lease lapsed (the process that claimed them died): a send still running is never
    doubled. Caps that cannot be sent (window closed) or have spent their retries are given up.
    """
    now = clock.now()
    # A lease, renewed while this process sends: when it lapses, the sweep knows the send died.
    claimed = lifecycle.claim_caps(curtailment_ids, now, _sim_after(settings.DISPATCH_CLAIM_LEASE_S, now))
    lifecycle.give_up_caps(curtailment_ids)  # those still planned were not claimable
    with _Lease(claimed):
        sent = ocpi_services.send_profiles(_targets(Curtailment.objects.filter(pk__in=claimed)),
                                           ChargingProfileCall.Kind.SET, now)
    answered = clock.now()
    groups: dict[tuple[str, str, int | None], list[int]] = defaultdict(list)
    for item in sent:  # ocpi's `purpose_id` is the Curtailment's id
        outcome = item.outcome
        if item.disposition == ACCEPTED:  # can be forwarded: pending until the async result
            groups[(S.PENDING, outcome.result, outcome.timeout_s)].append(item.purpose_id)
        elif item.disposition == RETRY:
            groups[(S.PLANNED, outcome.result, None)].append(item.purpose_id)
        else:
            groups[(S.REFUSED, outcome.result, None)].append(item.purpose_id)
    retry: list[int] = []
    for (status, result, timeout_s), cap_ids in groups.items():
        fields: dict = {"response": result, "attempts": F("attempts") + 1}
        if status == S.PENDING:
            fields["result_due_at"] = answered + timedelta(seconds=timeout_s) if timeout_s else F("ends_at")
        if status == S.PLANNED:
            fields["due_at"] = _sim_after(retry_delay_s(attempt + 1), answered)
        if lifecycle.answer_caps(cap_ids, status, **fields) and status == S.PLANNED:
            retry.extend(cap_ids)
    if retry and attempt >= settings.DISPATCH_MAX_RETRIES:
        lifecycle.give_up_caps(retry)
        return []
    return retry


class _Lease:
    """Keeps the claim on caps being sent alive while this process sends them.

    A thread renews `due_at` (now + DISPATCH_CLAIM_LEASE_S) every third of the lease; when the
    process dies (a killed worker, the task's hard time limit) the renewals stop and the sweep
    sees the lease lapse within one lease: only a send known dead is redone, never a live one.
    """

    def __init__(self, ids: Sequence[int]) -> None:
        self.ids, self.stop = list(ids), threading.Event()
        self.thread = threading.Thread(target=self._renew, name="claim-lease", daemon=True)

    def __enter__(self) -> _Lease:
        if self.ids:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()

    def _renew(self) -> None:
        lease = settings.DISPATCH_CLAIM_LEASE_S
        try:
            while not self.stop.wait(lease / 3):
                Curtailment.objects.filter(pk__in=self.ids, status=S.SENT).update(due_at=_sim_after(lease))
        finally:
            connection.close()  # this thread's own connection


def _targets(curtailments) -> list[ocpi_services.ProfileTarget]:
    fields = ("pk", "session_id", "session__session_id", "session__party_id", "session__country_code",
              "session__ocpi_party_id", "ends_at", "limit_a")
    return [ocpi_services.ProfileTarget(*row) for row in curtailments.order_by("pk").values_list(*fields)]


def party_chunks(curtailment_ids: Sequence[int]) -> list[list[int]]:
    """The ids split per party (each party's calls run in their own task), then in chunks."""
    by_party: dict[int, list[int]] = defaultdict(list)
    rows = Curtailment.objects.filter(pk__in=list(curtailment_ids)).values_list("pk", "session__party_id")
    for pk, party_pk in rows.order_by("pk"):
        by_party[party_pk].append(pk)
    size = settings.DISPATCH_CHUNK
    return [ids[i : i + size] for ids in by_party.values() for i in range(0, len(ids), size)]


def on_profile_results(sender, results: Sequence[ProfileResult], **kwargs) -> set:
    """Async results for our PUTs: the CSMS put each cap in force, or refused it. Returns the call
    ids of results that came too late (their cap or its activation is restored: nothing changes).

    `purpose_id` (ocpi's name) is the Curtailment's id. The moves come first: one SELECT locking
    the batch's caps in id order, then one conditional UPDATE per target status; the caps are read
    only when some result moved nothing, to tell stale from merely repeated.
    """
    sets = [r for r in results if r.kind == ChargingProfileCall.Kind.SET and r.purpose_id is not None]
    targets: dict[str, set[int]] = defaultdict(set)
    for r in sets:
        if r.result == "ACCEPTED":
            targets[S.IN_FORCE].add(r.purpose_id)
        elif r.result in ASYNC_REFUSALS:
            targets[S.REFUSED].add(r.purpose_id)
    moved = lifecycle.cap_results(targets)  # the whole batch's caps locked at once, in id order
    if moved == len({r.purpose_id for r in sets}):
        return set()
    rows = Curtailment.objects.filter(pk__in={r.purpose_id for r in sets}).values_list(
        "pk", "status", "activation__status")
    over = {pk for pk, status, activation in rows if status == S.RESTORED or activation == Activation.Status.RESTORED}
    return {r.call_id for r in sets if r.purpose_id in over}


def expire_pending(now: datetime | None = None) -> int:
    """Caps whose CPO timeout passed without a result: no result (still DELETEd at the end)."""
    now = now or clock.now()
    ids = Curtailment.objects.filter(status=S.PENDING, result_due_at__lte=now).values_list("pk", flat=True)
    return lifecycle.move_caps(ids, S.NO_RESULT)


def mark_dispatched(activation_id: int) -> bool:
    """Once nothing is left to send, the activation is active (and the signal too)."""
    if Curtailment.objects.filter(activation_id=activation_id, status__in=(S.PLANNED, S.SENT)).exists():
        return False
    return lifecycle.activation_dispatched(activation_id)


def retry_delay_s(attempt: int) -> float:
    """The one backoff, for transient failures and TOO_OFTEN alike: base * 2**(n-1), capped.

    With the defaults (2 s, 60 s, 6 retries): 2, 4, 8, 16, 32, 60 s: never a burst of retries.
    """
    base, cap = settings.DISPATCH_RETRY_BASE_S, settings.DISPATCH_RETRY_MAX_S
    return min(cap, base * 2 ** max(0, attempt - 1))


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
    targets = _targets(live)
    if not targets:
        return 0
    sent = ocpi_services.send_profiles(targets, ChargingProfileCall.Kind.CLEAR, now)
    answered = clock.now()
    cleared = [s.purpose_id for s in sent if s.disposition == ACCEPTED]  # ocpi's purpose_id: the cap's id
    # Unanswered: the profile's own duration ends the cap at its planned end, not earlier.
    lifecycle.move_caps(cleared, S.RESTORED, restored_at=Least(Value(answered), F("ends_at")))
    lifecycle.move_caps([s.purpose_id for s in sent if s.disposition != ACCEPTED], S.RESTORED,
                        restored_at=F("ends_at"))
    return len(targets)


def restore_activation(activation_id: int) -> bool:
    """End an activation: every live cap is deleted and the activation closed. Idempotent."""
    now = clock.now()
    activation = Activation.objects.get(pk=activation_id)
    if activation.status == Activation.Status.RESTORED:
        return False
    if now < activation.ends_at:
        return False  # queued early (clock skew): the sweep or the scheduled task comes back
    lifecycle.activation_restoring(activation_id)
    lifecycle.give_up_caps(activation.curtailments.filter(status=S.PLANNED).values_list("pk", flat=True))
    # A PUT we gave up on (timeout) may still have been applied: the CPO's async result says so.
    # Such a cap was in force, so it counts against the budget and gets its DELETE like the others.
    applied = ChargingProfileCall.objects.filter(kind=ChargingProfileCall.Kind.SET, result="ACCEPTED")
    lifecycle.move_caps(activation.curtailments.filter(status=S.FAILED, pk__in=applied.values("purpose_id"))
                        .values_list("pk", flat=True), S.IN_FORCE)
    ids = list(activation.curtailments.filter(status__in=LIVE).values_list("pk", flat=True))
    restore_curtailments(ids, now)
    # Every cap is final now (a later result is stale): its figures are stored once, here.
    lifecycle.activation_restored(activation_id, clock.now(), **summary.final_figures(activation))
    return True


# --- the sweep's questions ------------------------------------------------------------------------


def overdue_activation_ids(now: datetime | None = None) -> list[int]:
    now = now or clock.now()
    statuses = (*RUNNING, Activation.Status.RESTORING)
    return list(Activation.objects.filter(status__in=statuses, ends_at__lte=now).values_list("pk", flat=True))


def unplanned_activation_ids(now: datetime | None = None) -> list[int]:
    """Activations relayed two leases ago whose plan was never made (the dispatch task was lost).

    A plan still being made holds the activation's row lock and a repeat finds it made, so a
    re-dispatch on top of a slow one only queues sends that the leases keep from doubling.
    """
    now = now or clock.now()
    grace = _sim_after(2 * settings.DISPATCH_CLAIM_LEASE_S, now) - now
    return list(Activation.objects.filter(
        status=Activation.Status.DISPATCHING, ends_at__gt=now, relayed_at__lte=now - grace, skipped={},
    ).values_list("pk", flat=True))


def lost_sends(now: datetime | None = None) -> dict[int, list[int]]:
    """Caps of running activations whose send is known dead: planned past their due time (a queued
    retry was lost), or sent past their claim (the task that claimed them was killed).

    A send still running holds a claim in the future, so it is never doubled.
    """
    now = now or clock.now()
    late = now - timedelta(seconds=settings.SWEEP_INTERVAL_S * clock.get_clock().speed)
    rows = Curtailment.objects.filter(
        Q(status=S.PLANNED, due_at__lte=late) | Q(status=S.SENT, due_at__lte=now),
        activation__status__in=RUNNING, activation__ends_at__gt=now,
    ).values_list("activation_id", "pk")
    lost: dict[int, list[int]] = defaultdict(list)
    for activation_id, pk in rows:
        lost[activation_id].append(pk)
    return dict(lost)


def uncapped_new_sessions(now: datetime | None = None) -> dict[int, list[int]]:
    """Per running activation, ACTIVE sessions that started during it and have no cap in it yet
    (their `throttle_new_sessions` was lost between commit and the broker)."""
    now = now or clock.now()
    out: dict[int, list[int]] = {}
    for pk, relayed_at in Activation.objects.filter(status__in=RUNNING, ends_at__gt=now).exclude(
            skipped={}).values_list("pk", "relayed_at"):
        capped = Curtailment.objects.filter(activation_id=pk).values("session_id")
        ids = list(Session.objects.filter(status=Session.Status.ACTIVE, first_active_at__gte=relayed_at)
                   .exclude(pk__in=capped).values_list("pk", flat=True))
        if ids:
            out[pk] = ids
    return out


def unanswered_ids(activation_id: int) -> list[int]:
    """Caps of an activation still to send or whose PUT never came back (its task died)."""
    return list(Curtailment.objects.filter(activation_id=activation_id, status__in=(S.PLANNED, S.SENT))
                .values_list("pk", flat=True))


def running_activation_ids(now: datetime | None = None) -> list[int]:
    now = now or clock.now()
    return list(Activation.objects.filter(status__in=RUNNING, ends_at__gt=now).values_list("pk", flat=True))
