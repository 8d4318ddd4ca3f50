"""The lives of a signal, an activation and a cap (a Curtailment): every status write is here.

Each named transition below is one conditional UPDATE (`... WHERE status IN (the statuses it may
come from)`) and says how many rows moved. A row in any other status is left alone: a late answer,
a repeated task or two operators at once never undo what happened since. Services decide what
should happen and call these; nothing else writes a `status`.

The tables (each line: from -> the statuses it may move to; a test keeps them equal to the code):

Signal (a BRP's request to reduce consumption)
    received -> relayed, vetoed, expired, cancelled
    relayed -> active, cancelled, restored
    active -> cancelled, restored
    vetoed, expired, cancelled, restored: final

    relay: an operator or the BRP's policy; veto: an operator, with a reason; expire: its end
    passed unrelayed; cancel: the BRP (a running one is restored at once); active and restored
    follow its activation.

Activation (a relayed signal being carried out)
    dispatching -> active, restoring, restored
    active -> restoring, restored
    restoring -> restored
    restored: final

    active: nothing left to send; restoring: its end came, the DELETEs are going out; restored:
    every live cap deleted, the summary figures stored (`Activation.dispatched_kw`, ...).

Curtailment (one session capped at 8 A in one activation)
    planned -> sent, failed
    sent -> pending, refused, planned, failed, restored
    pending -> in_force, refused, no_result, restored
    no_result -> in_force, refused, restored
    in_force -> refused, restored
    failed -> in_force
    refused, restored: final

    sent: claimed by a send task, which holds a lease (`due_at`); a lapsed lease is claimed again
    (sent -> sent). The synchronous answer moves only a cap still sent: pending (ACCEPTED: the
    CPO can forward it), refused, or planned again (a retry). The asynchronous result puts a cap
    in force or refuses it; without one within the CPO's timeout it is no_result (still DELETEd
    at the end). failed: never sent (window closed, retries spent); a PUT we gave up on that was
    applied after all goes in force, so it gets its DELETE. restored keeps what it was in
    `restored_from`; a restore during a PUT wins over the PUT's answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from django.db import models, transaction
from django.db.models import F, Q

from .models import Activation, Curtailment, Signal

Sig, Act, Cap = Signal.Status, Activation.Status, Curtailment.Status

SIGNAL_TRANSITIONS: dict[str, frozenset[str]] = {
    Sig.RECEIVED: frozenset({Sig.RELAYED, Sig.VETOED, Sig.EXPIRED, Sig.CANCELLED}),
    Sig.RELAYED: frozenset({Sig.ACTIVE, Sig.CANCELLED, Sig.RESTORED}),
    Sig.ACTIVE: frozenset({Sig.CANCELLED, Sig.RESTORED}),
    Sig.VETOED: frozenset(),
    Sig.EXPIRED: frozenset(),
    Sig.CANCELLED: frozenset(),
    Sig.RESTORED: frozenset(),
}
ACTIVATION_TRANSITIONS: dict[str, frozenset[str]] = {
    Act.DISPATCHING: frozenset({Act.ACTIVE, Act.RESTORING, Act.RESTORED}),
    Act.ACTIVE: frozenset({Act.RESTORING, Act.RESTORED}),
    Act.RESTORING: frozenset({Act.RESTORED}),
    Act.RESTORED: frozenset(),
}
CAP_TRANSITIONS: dict[str, frozenset[str]] = {
    Cap.PLANNED: frozenset({Cap.SENT, Cap.FAILED}),
    Cap.SENT: frozenset({Cap.PENDING, Cap.REFUSED, Cap.PLANNED, Cap.FAILED, Cap.RESTORED}),
    Cap.PENDING: frozenset({Cap.IN_FORCE, Cap.REFUSED, Cap.NO_RESULT, Cap.RESTORED}),
    Cap.NO_RESULT: frozenset({Cap.IN_FORCE, Cap.REFUSED, Cap.RESTORED}),
    Cap.IN_FORCE: frozenset({Cap.REFUSED, Cap.RESTORED}),
    Cap.FAILED: frozenset({Cap.IN_FORCE}),
    Cap.REFUSED: frozenset(),
    Cap.RESTORED: frozenset(),
}
TABLES = {Signal: SIGNAL_TRANSITIONS, Activation: ACTIVATION_TRANSITIONS, Curtailment: CAP_TRANSITIONS}

# Activations still being carried out (their caps may still be planned and sent).
RUNNING = (Act.DISPATCHING, Act.ACTIVE)
# Caps the CSMS may be applying: they count against the budget and get a DELETE at the end.
LIVE = (Cap.SENT, Cap.PENDING, Cap.IN_FORCE, Cap.NO_RESULT)


def sources(model: type[models.Model], to: str) -> list[str]:
    """Every status of `model` that may move to `to`."""
    return [status for status, targets in TABLES[model].items() if to in targets]


def _move(rows: models.QuerySet, to: str, only_from: Sequence[str] | None = None, **fields) -> int:
    """The one conditional UPDATE: rows in a status allowed to move to `to` (or in `only_from`,
    which must be a subset) move; the others stay. Returns how many moved."""
    allowed = sources(rows.model, to)
    if only_from is not None:
        if not set(only_from) <= set(allowed):
            raise ValueError(f"{rows.model.__name__}: {sorted(only_from)} -> {to} is not in the table")
        allowed = list(only_from)
    return rows.filter(status__in=allowed).update(status=to, **fields)


def _move_caps(rows: models.QuerySet, to: str, only_from: Sequence[str] | None = None, **fields) -> int:
    """`_move` for a batch of caps, taking the row locks in id order first: a batch of results,
    a send's claim and a restore touch overlapping caps at once, and an UPDATE locks rows in the
    order it happens to scan them, so two batches could each wait for the other (a deadlock)."""
    with transaction.atomic():
        return _move(Curtailment.objects.filter(pk__in=_lock_caps(rows)), to, only_from, **fields)


def _lock_caps(rows: models.QuerySet) -> list[int]:
    """Lock these caps in id order (inside the caller's transaction); returns their ids."""
    return list(rows.order_by("pk").select_for_update(of=("self",)).values_list("pk", flat=True))


# --- signal ---------------------------------------------------------------------------------------


def relay_signal(signal_id: int) -> bool:
    return _move(Signal.objects.filter(pk=signal_id), Sig.RELAYED) == 1


def veto_signal(signal_id: int, reason: str) -> bool:
    return _move(Signal.objects.filter(pk=signal_id), Sig.VETOED, veto_reason=reason) == 1


def expire_signal(signal_id: int) -> bool:
    return _move(Signal.objects.filter(pk=signal_id), Sig.EXPIRED) == 1


def cancel_signal(signal_id: int) -> bool:
    return _move(Signal.objects.filter(pk=signal_id), Sig.CANCELLED) == 1


# --- activation (its signal follows) --------------------------------------------------------------


def activation_dispatched(activation_id: int) -> bool:
    """Nothing left to send: the activation is active, and so is its signal (unless cancelled)."""
    with transaction.atomic():
        moved = _move(Activation.objects.filter(pk=activation_id), Act.ACTIVE) == 1
        if moved:
            _move(Signal.objects.filter(activation__pk=activation_id), Sig.ACTIVE)
    return moved


def activation_restoring(activation_id: int) -> bool:
    return _move(Activation.objects.filter(pk=activation_id), Act.RESTORING) == 1


def activation_restored(activation_id: int, restored_at: datetime, **figures) -> bool:
    """Every live cap deleted: the activation is restored with its summary figures, and so is its
    signal (a cancelled one stays cancelled)."""
    with transaction.atomic():
        moved = _move(Activation.objects.filter(pk=activation_id), Act.RESTORED, restored_at=restored_at,
                      **figures) == 1
        _move(Signal.objects.filter(activation__pk=activation_id), Sig.RESTORED)
    return moved


# --- cap ------------------------------------------------------------------------------------------


def move_caps(ids: Iterable[int], to: str, **fields) -> int:
    """Move caps to `to` from every status the table allows it from; a restore keeps the status it
    ended in `restored_from`."""
    if to == Cap.RESTORED:
        fields.setdefault("restored_from", F("status"))
    return _move_caps(Curtailment.objects.filter(pk__in=list(ids)), to, **fields)


def cap_results(targets: Mapping[str, Iterable[int]]) -> int:
    """A batch of the CSMS's asynchronous results ({in force or refused: cap ids}), while their
    activation is not restored: after that they are too late to matter.

    Every cap of the batch is locked first, in id order, then each target's move runs: moving
    target after target, each locking in order, would still take the batch's locks out of order
    (in force 7, then refused 3) and deadlock with a restore or a claim locking 3, then 7.
    """
    wanted = {to: set(ids) for to, ids in targets.items()}
    with transaction.atomic():
        rows = Curtailment.objects.filter(pk__in=set().union(*wanted.values()))
        locked = set(_lock_caps(rows.exclude(activation__status=Act.RESTORED)))
        return sum(_move(Curtailment.objects.filter(pk__in=ids & locked), to) for to, ids in wanted.items())


def claim_caps(ids: Iterable[int], now: datetime, lease_until: datetime) -> list[int]:
    """planned -> sent (or sent -> sent when the claim's lease lapsed: the send that held it died),
    for caps of a running activation whose window is still open; returns the ids claimed.

    One locked UPDATE before any call, so a restore that starts meanwhile sees them as live and
    DELETEs them; a send still running holds a lease in the future and is never doubled.
    """
    with transaction.atomic():
        claimable = Curtailment.objects.filter(
            Q(status=Cap.PLANNED) | Q(status=Cap.SENT, due_at__lte=now),
            pk__in=list(ids), activation__status__in=RUNNING, activation__ends_at__gt=now, ends_at__gt=now,
        )
        claimed = list(claimable.order_by("pk").select_for_update(of=("self",)).values_list("pk", flat=True))
        Curtailment.objects.filter(pk__in=claimed).update(status=Cap.SENT, due_at=lease_until)
    return claimed


def answer_caps(ids: Iterable[int], to: str, **fields) -> int:
    """The synchronous answer to a PUT: only caps still sent move (pending, refused or planned
    again); a restore that ran meanwhile has the last word."""
    return _move_caps(Curtailment.objects.filter(pk__in=list(ids)), to, only_from=[Cap.SENT], **fields)


def give_up_caps(ids: Iterable[int]) -> int:
    """Planned caps that cannot be sent any more (window closed, retries spent): failed, nothing throttled."""
    return _move(Curtailment.objects.filter(pk__in=list(ids)), Cap.FAILED, only_from=[Cap.PLANNED])
