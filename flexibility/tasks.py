"""Celery tasks of the steering loop. Each takes ids, calls the services, and is safe to repeat.

The services decide and return ids; the tasks queue the work that follows (per party and chunk,
with the retry's delay) through the broker-safe `smatch.celery.enqueue`. A task runs outside any
transaction, so what it queues is committed already. The services queue their own follow-ups on
commit by task name (`services.signals`), so they never import this module.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import transaction

from smatch import celery, clock

from . import responsiveness, targeting
from .services import activations, signals


def _queue_sends(activation_id: int, ids: list[int], attempt: int = 0, countdown: float | None = None) -> None:
    """One send task per party and chunk: a slow party's calls never wait in front of another's."""
    for chunk in activations.party_chunks(ids):
        celery.enqueue(send_caps, activation_id, chunk, attempt, countdown=countdown)


@shared_task(name="flexibility.relay_by_policy", acks_late=True)
def relay_by_policy(signal_id: int) -> None:
    signals.relay_if_due(signal_id)


@shared_task(name="flexibility.dispatch_activation", acks_late=True)
def dispatch_activation(activation_id: int, resume: bool = False) -> None:
    """Plan the caps, queue their PUTs per party, and schedule the restore at the end.

    `resume` (the sweep, for a plan that was never made or cut short): completes the plan and
    queues what is still unanswered.
    """
    if resume:
        activations.plan_activation(activation_id)  # completes a plan a crash cut short
        _queue_sends(activation_id, activations.unanswered_ids(activation_id))
    else:  # each chunk is queued as soon as it is written: PUTs start before a large plan is done
        for ids in activations.plan_in_chunks(activation_id):
            _queue_sends(activation_id, ids)
    countdown = clock.real_seconds_until(activations.ends_at(activation_id))
    celery.enqueue(restore_activation, activation_id, countdown=countdown)
    activations.mark_dispatched(activation_id)  # nothing to send: active at once


@shared_task(name="flexibility.send_caps", acks_late=True, soft_time_limit=settings.DISPATCH_SEND_SOFT_LIMIT_S,
             time_limit=settings.DISPATCH_SEND_HARD_LIMIT_S)
def send_caps(activation_id: int, curtailment_ids: list[int], attempt: int = 0) -> None:
    """PUT profiles of one party; transient failures and TOO_OFTEN come back with a growing delay."""
    retry = activations.send_caps(curtailment_ids, attempt)
    if retry:
        _queue_sends(activation_id, retry, attempt + 1, activations.retry_delay_s(attempt + 1))
    activations.mark_dispatched(activation_id)


@shared_task(name="flexibility.throttle_new_sessions", acks_late=True)
def throttle_new_sessions(session_ids: list[int]) -> None:
    """Sessions that started while an activation runs are capped too, from their first push."""
    for activation_id in activations.running_activation_ids():
        _queue_sends(activation_id, activations.plan_activation(activation_id, session_ids))


@shared_task(name="flexibility.restore_activation", acks_late=True)
def restore_activation(activation_id: int) -> None:
    activations.restore_activation(activation_id)


@shared_task(name="flexibility.sweep")
def sweep() -> None:
    """The safety net after a crash or a lost message: only what is known to be dead is redone."""
    for activation_id in activations.overdue_activation_ids():
        celery.enqueue(restore_activation, activation_id)
    for activation_id in activations.unplanned_activation_ids():  # its dispatch task was lost
        celery.enqueue(dispatch_activation, activation_id, True)
    for activation_id, ids in activations.lost_sends().items():  # a lost retry, a killed send task
        _queue_sends(activation_id, ids)
    for activation_id, session_ids in activations.uncapped_new_sessions().items():  # a lost throttle_new_sessions
        _queue_sends(activation_id, activations.plan_activation(activation_id, session_ids))
    for activation_id, session_ids in targeting.top_up_due(clock.now()).items():  # target-kW caps short of it
        _queue_sends(activation_id, activations.plan_activation(activation_id, session_ids))
    activations.expire_pending()
    responsiveness.assess_due()
    activations.restore_curtailments()  # caps shortened by the budget end before their activation
    for signal_id in signals.due_policy_relays():
        celery.enqueue(relay_by_policy, signal_id)
    signals.expire_overdue_signals()


def on_sessions_started(sender, session_ids: list[int], **kwargs) -> None:
    ids = list(session_ids)
    transaction.on_commit(lambda: celery.enqueue(throttle_new_sessions, ids))
