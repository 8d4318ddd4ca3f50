"""Actions on signals: intake from a BRP, the CPO's relay / veto, cancel and stop.

Views, admin actions, the console, commands and tasks call these; they hold no HTTP or admin
concerns. Status moves go through `flexibility.lifecycle`. What must happen next (the policy's
relay, the dispatch, an early restore) is queued on commit by the task's name
(`smatch.celery.enqueue_on_commit`): this module never imports the tasks, which call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction

from smatch import celery, clock
from smatch.errors import Conflict, Refusal

from .. import lifecycle, planning, targeting
from ..error_codes import FlexibilityErrorCode as Code
from ..models import Activation, Brp, Decision, Signal

POLICY_LABEL = "policy"
# The tasks this module queues, by their registered names (flexibility/tasks.py).
RELAY_BY_POLICY, DISPATCH_ACTIVATION, RESTORE_ACTIVATION = (
    "flexibility.relay_by_policy", "flexibility.dispatch_activation", "flexibility.restore_activation")


class SignalRefused(Refusal):
    """A signal request that breaks a rule: `code` says which, the message tells the BRP or the operator."""


class SignalConflict(SignalRefused, Conflict):
    """A request that clashes with the signal's state, or a BRP id used before for a different signal."""


# --- signals ------------------------------------------------------------------------------------


def signal_deadline(received_at: datetime, end_time: datetime | None) -> datetime:
    """After this a signal can no longer be relayed: its end, or the end of the ISP it arrived in."""
    return end_time or planning.next_isp_boundary(received_at)


@dataclass(frozen=True)
class Intake:
    signal: Signal
    created: bool


def receive_signal(
    brp: Brp,
    external_id: str,
    direction: str,
    end_time: datetime | None = None,
    isp_start: datetime | None = None,
    target_kw: float | None = None,
) -> Intake:
    """Store a BRP's signal (idempotent on the BRP's id) and apply the BRP's relay policy. With
    `target_kw`, the activation caps only the sessions needed to shed it (`targeting`)."""
    wanted = (direction, end_time, isp_start, target_kw)
    existing = Signal.objects.filter(brp=brp, external_id=external_id).first()
    if existing is not None:
        return Intake(_same_or_conflict(existing, wanted), created=False)
    if direction != Signal.Direction.REDUCE:
        raise SignalRefused(Code.DIRECTION_NOT_ACTIONABLE,
                            f"direction {direction!r} is not actionable: only 'reduce_consumption' is")
    now = clock.now()
    try:
        planning.validate_signal_end(now, end_time)
    except planning.PlanningError as exc:
        raise SignalRefused(Code.END_TIME_OUT_OF_RANGE, str(exc)) from exc
    if isp_start is not None and isp_start != planning.isp_start(isp_start):
        raise SignalRefused(Code.ISP_START_NOT_A_BOUNDARY,
                            "isp_start must be an ISP boundary (HH:00, :15, :30 or :45 UTC)")
    if target_kw is not None:
        targeting.check_target(target_kw, targeting.fleet_max_kw())
    auto_at = None
    if brp.policy == Brp.Policy.AUTO_AFTER:
        auto_at = now + timedelta(seconds=brp.auto_after_s or 0)
    elif brp.policy == Brp.Policy.AUTO:  # due at once; the sweep relays it if the queued relay is lost
        auto_at = now
    try:
        with transaction.atomic():
            signal = Signal.objects.create(
                brp=brp, external_id=external_id, direction=direction, end_time=end_time,
                isp_start=isp_start, received_at=now, auto_relay_at=auto_at, target_kw=target_kw,
            )
    except IntegrityError:  # the same id raced in from a parallel request: that one wins
        signal = Signal.objects.get(brp=brp, external_id=external_id)
        return Intake(_same_or_conflict(signal, wanted), created=False)
    _apply_policy_on_arrival(signal)
    return Intake(signal, created=True)


def _same_or_conflict(signal: Signal, wanted: tuple) -> Signal:
    if (signal.direction, signal.end_time, signal.isp_start, signal.target_kw) != wanted:
        raise SignalConflict(Code.EXTERNAL_ID_REUSED,
                             f"id {signal.external_id!r} was already used for a different signal")
    return signal


def _apply_policy_on_arrival(signal: Signal) -> None:
    if signal.brp.policy == Brp.Policy.AUTO:
        celery.enqueue_on_commit(RELAY_BY_POLICY, signal.pk)
    elif signal.brp.policy == Brp.Policy.AUTO_AFTER:
        celery.enqueue_on_commit(RELAY_BY_POLICY, signal.pk, countdown=clock.real_seconds_until(signal.auto_relay_at))


def _decide(signal: Signal, action: str, actor, label: str, reason: str = "") -> None:
    Decision.objects.create(
        signal=signal, action=action, actor=actor, actor_label=label, reason=reason, at=clock.now()
    )


def _label(actor) -> str:
    return actor.get_username() if actor is not None else POLICY_LABEL


def relay_signal(signal_id: int, actor=None, label: str | None = None) -> Activation:
    """Relay a received signal: open its activation and queue the dispatch."""
    with transaction.atomic():
        signal = Signal.objects.select_for_update().get(pk=signal_id)
        if signal.status != Signal.Status.RECEIVED:
            raise SignalConflict(Code.SIGNAL_ALREADY_DECIDED,
                                 f"signal is {signal.status}: only a received signal can be relayed")
        now = clock.now()
        expired = now >= signal_deadline(signal.received_at, signal.end_time)
        if expired:
            _expire(signal)
        else:
            ends_at = planning.activation_end(now, signal.end_time)
            activation = Activation.objects.create(signal=signal, relayed_at=now, ends_at=ends_at)
            lifecycle.relay_signal(signal.pk)
            _decide(signal, Decision.Action.RELAY, actor, label or _label(actor))
    if expired:
        raise SignalConflict(Code.SIGNAL_EXPIRED, "the signal's end has passed: it expired and cannot be relayed")
    celery.enqueue_on_commit(DISPATCH_ACTIVATION, activation.pk)
    return activation


def relay_if_due(signal_id: int) -> Activation | None:
    """The policy's relay: only if the signal is still waiting (an operator may have decided)."""
    try:
        return relay_signal(signal_id, label=POLICY_LABEL)
    except SignalRefused:
        return None


def due_policy_relays() -> list[int]:
    """Signals whose auto-after delay has passed without a decision (a lost countdown, a crash)."""
    return list(
        Signal.objects.filter(status=Signal.Status.RECEIVED, auto_relay_at__lte=clock.now()).values_list(
            "pk", flat=True
        )
    )


def veto_signal(signal_id: int, actor, reason: str) -> Signal:
    if not reason.strip():
        raise SignalRefused(Code.VETO_NEEDS_REASON, "a veto needs a reason")
    with transaction.atomic():
        signal = Signal.objects.select_for_update().get(pk=signal_id)
        if signal.status != Signal.Status.RECEIVED:
            raise SignalConflict(Code.SIGNAL_ALREADY_DECIDED,
                                 f"signal is {signal.status}: only a received signal can be vetoed")
        lifecycle.veto_signal(signal.pk, reason)
        _decide(signal, Decision.Action.VETO, actor, _label(actor), reason)
    signal.refresh_from_db(fields=["status", "veto_reason"])
    return signal


def _expire(signal: Signal) -> None:
    if lifecycle.expire_signal(signal.pk):
        _decide(signal, Decision.Action.EXPIRE, None, POLICY_LABEL, "not relayed before its end")


def expire_overdue_signals() -> int:
    """Mark received signals whose end passed unrelayed as expired (periodic sweep)."""
    now, count = clock.now(), 0
    for signal in Signal.objects.filter(status=Signal.Status.RECEIVED, received_at__lt=now).iterator():
        if now >= signal_deadline(signal.received_at, signal.end_time):
            with transaction.atomic():
                if lifecycle.expire_signal(signal.pk):
                    _decide(signal, Decision.Action.EXPIRE, None, POLICY_LABEL, "not relayed before its end")
                    count += 1
    return count


def end_early(signal_id: int, actor=None, label: str | None = None, cancel: bool = False) -> Signal:
    """BRP cancel or operator stop-now: a waiting signal is cancelled, a running one restored now."""
    with transaction.atomic():
        signal = Signal.objects.select_for_update().get(pk=signal_id)
        action = Decision.Action.CANCEL if cancel else Decision.Action.STOP
        if signal.status == Signal.Status.RECEIVED and cancel:
            lifecycle.cancel_signal(signal.pk)
        elif signal.status in (Signal.Status.RELAYED, Signal.Status.ACTIVE):
            now = clock.now()
            Activation.objects.filter(signal=signal, ends_at__gt=now).update(ends_at=now, stopped_early=True)
            if cancel:
                lifecycle.cancel_signal(signal.pk)
            celery.enqueue_on_commit(RESTORE_ACTIVATION, signal.activation.pk)
        else:
            raise SignalConflict(Code.NOTHING_TO_END, f"signal is {signal.status}: nothing to {action}")
        _decide(signal, action, actor, label or _label(actor))
    signal.refresh_from_db(fields=["status"])
    return signal
