"""Celery tasks of the steering loop. Each takes ids, calls one service, and is safe to repeat."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import transaction

from smatch import clock

from . import dispatch, responsiveness, services, targeting
from .models import Activation


def _queue_sends(activation_id: int, ids: list[int], attempt: int = 0, countdown: float = 0) -> None:
    """One send task per party and chunk: a slow party's calls never wait in front of another's."""
    for chunk in dispatch.party_chunks(ids):
        send_caps.apply_async((activation_id, chunk, attempt), countdown=countdown)


@shared_task(name="flexibility.relay_by_policy", acks_late=True)
def relay_by_policy(signal_id: int) -> None:
    services.relay_if_due(signal_id)


@shared_task(name="flexibility.dispatch_activation", acks_late=True)
def dispatch_activation(activation_id: int, resume: bool = False) -> None:
    """Plan the caps, queue their PUTs per party, and schedule the restore at the end.

    `resume` (the sweep, for a plan that was never made or cut short): completes the plan and
    queues what is still planned.
    """
    if resume:
        dispatch.plan_activation(activation_id)  # completes a plan a crash cut short
        pending = dispatch.unanswered_ids(activation_id)
    else:  # each chunk is queued as soon as it is written: PUTs start before a large plan is done
        pending = dispatch.plan_activation(activation_id, on_planned=lambda ids: _queue_sends(activation_id, ids))
    ends_at = Activation.objects.values_list("ends_at", flat=True).get(pk=activation_id)
    restore_activation.apply_async((activation_id,), countdown=clock.real_seconds_until(ends_at))
    if pending:
        _queue_sends(activation_id, pending)
    else:
        dispatch.mark_dispatched(activation_id)


@shared_task(name="flexibility.send_caps", acks_late=True, soft_time_limit=settings.DISPATCH_SEND_SOFT_LIMIT_S,
             time_limit=settings.DISPATCH_SEND_HARD_LIMIT_S)
def send_caps(activation_id: int, curtailment_ids: list[int], attempt: int = 0) -> None:
    """PUT profiles of one party; transient failures and TOO_OFTEN come back with a growing delay."""
    retry = dispatch.send_caps(curtailment_ids, attempt)
    if retry and attempt < settings.DISPATCH_MAX_RETRIES:
        _queue_sends(activation_id, retry, attempt + 1, dispatch.retry_delay_s(attempt + 1))
    elif retry:
        dispatch.give_up(retry)
    dispatch.mark_dispatched(activation_id)


@shared_task(name="flexibility.throttle_new_sessions", acks_late=True)
def throttle_new_sessions(session_ids: list[int]) -> None:
    """Sessions that started while an activation runs are capped too, from their first push."""
    for activation_id in dispatch.running_activation_ids():
        pending = dispatch.plan_activation(activation_id, session_ids)
        if pending:
            _queue_sends(activation_id, pending)


@shared_task(name="flexibility.restore_activation", acks_late=True)
def restore_activation(activation_id: int) -> None:
    dispatch.restore_activation(activation_id)


@shared_task(name="flexibility.sweep")
def sweep() -> None:
    """The safety net after a crash or a lost message: only what is known to be dead is redone."""
    for activation_id in dispatch.overdue_activation_ids():
        services.enqueue(restore_activation, activation_id)
    for activation_id in dispatch.unplanned_activation_ids():  # its dispatch task was lost
        services.enqueue(dispatch_activation, activation_id, True)
    for activation_id, ids in dispatch.lost_sends().items():  # a lost retry, a killed send task
        _queue_sends(activation_id, ids)
    for activation_id, session_ids in dispatch.uncapped_new_sessions().items():  # a lost throttle_new_sessions
        pending = dispatch.plan_activation(activation_id, session_ids)
        if pending:
            _queue_sends(activation_id, pending)
    for activation_id, session_ids in targeting.top_up_due(clock.now()).items():  # target-kW caps short of it
        _queue_sends(activation_id, dispatch.plan_activation(activation_id, session_ids))
    dispatch.expire_pending()
    responsiveness.assess_due()
    dispatch.restore_curtailments()  # caps shortened by the budget end before their activation
    for signal_id in services.due_policy_relays():
        services.enqueue(relay_by_policy, signal_id)
    services.expire_overdue_signals()


def on_sessions_started(sender, session_ids: list[int], **kwargs) -> None:
    ids = list(session_ids)
    transaction.on_commit(lambda: services.enqueue(throttle_new_sessions, ids))
