"""Target-kW activations around the pure selection (`selection.py`): the intake checks, the plan narrowed.

A signal may carry `target_kw`. At intake it must be a positive number, on the one actionable
direction, and at most what the fleet could physically shed; a refused signal is not stored. At
planning, the eligible caps of the first plan are narrowed to the fewest sessions, fairly chosen,
whose expected shed covers the target with `TARGET_MARGIN`; the activation records the target and
the shortfall when even every eligible session falls short (then all of them are capped).
Sessions that start during a target-kW activation are not capped: they are kept for a top-up.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from enum import StrEnum

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from ocpi.models import Connector, Session

from . import planning, selection, services
from .models import LIVE, Activation, Brp, Curtailment, Signal

PHASES_BY_POWER_TYPE = {"AC_1_PHASE": 1, "AC_2_PHASE": 2, "AC_2_PHASE_SPLIT": 2, "AC_3_PHASE": 3}
FALLBACK_MAX_A = 32.0  # a connector or session whose max amperage nobody told us: the usual AC ceiling
THROTTLED = (*LIVE, Curtailment.Status.RESTORED)


class TargetErrorCode(StrEnum):
    TARGET_NOT_POSITIVE = "target_not_positive"
    TARGET_ABOVE_FLEET_MAX = "target_above_fleet_max"
    TARGET_DIRECTION_NOT_ACTIONABLE = "target_direction_not_actionable"
    TARGET_CONFLICT = "target_conflict"


class TargetRefused(ValueError):
    """A target the rules refuse: `code` for programs, the message for people (house's Refusal shape)."""

    def __init__(self, code: TargetErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def message(self) -> str:
        return str(self)


def check_target(direction: str, target_kw: float | None, fleet_max_kw: float) -> None:
    """Refuse a target that is not a positive finite number, above the fleet's maximum, or on a
    direction nothing can be done for."""
    if target_kw is None:
        return
    if isinstance(target_kw, bool) or not isinstance(target_kw, int | float) or not math.isfinite(target_kw) \
            or target_kw <= 0:
        raise TargetRefused(TargetErrorCode.TARGET_NOT_POSITIVE, "target_kw must be a positive number of kW")
    if direction != Signal.Direction.REDUCE:
        raise TargetRefused(TargetErrorCode.TARGET_DIRECTION_NOT_ACTIONABLE,
                            f"target_kw on direction {direction!r}: only 'reduce_consumption' can be acted on")
    if target_kw > fleet_max_kw:
        raise TargetRefused(TargetErrorCode.TARGET_ABOVE_FLEET_MAX,
                            f"target_kw {target_kw:g} is above the fleet's physical maximum of {fleet_max_kw:.0f} kW")


def connector_shed_kw(max_amperage_a: float | None, phases: int) -> float:
    """The most one connector can free when capped at 8 A: its full current down to 8 A on every phase."""
    return max(0.0, (max_amperage_a or FALLBACK_MAX_A) - planning.LIMIT_A) * phases * planning.VOLTS_PER_PHASE / 1000


def fleet_max_kw() -> float:
    """What the whole fleet could shed if every AC connector charged at its maximum; when no
    Locations were pulled, the active sessions at their connector's (or the usual) maximum, 3 phases."""
    connectors = Connector.objects.exclude(power_type="DC").values_list("max_amperage_a", "power_type")
    total = sum(connector_shed_kw(amps, PHASES_BY_POWER_TYPE.get(kind, 3)) for amps, kind in connectors)
    if total > 0:
        return total
    sessions = Session.objects.filter(status=Session.Status.ACTIVE).values_list("max_current_a", "phases")
    return sum(connector_shed_kw(amps, phases or 3) for amps, phases in sessions)


def receive_signal(brp: Brp, external_id: str, direction: str, target_kw: float | None = None,
                   **fields) -> services.Intake:
    """`services.receive_signal` with a target: checked first, stored in the same transaction."""
    if target_kw is not None:
        check_target(direction, target_kw, fleet_max_kw())
    with transaction.atomic():
        intake = services.receive_signal(brp, external_id, direction, **fields)
        if intake.created and target_kw is not None:
            Signal.objects.filter(pk=intake.signal.pk).update(target_kw=target_kw)
            intake.signal.target_kw = target_kw
        elif not intake.created and intake.signal.target_kw != target_kw:
            raise TargetRefused(TargetErrorCode.TARGET_CONFLICT,
                                f"id {external_id!r} was already used for a signal with another target_kw")
    return intake


def apply(plan: planning.Plan, activation: Activation, now: datetime, first: bool) -> planning.Plan:
    """The plan narrowed to the target's selection (first plan), or nothing (sessions that joined
    later: kept for a top-up); the plan unchanged when the signal has no target."""
    target_kw = Signal.objects.filter(pk=activation.signal_id).values_list("target_kw", flat=True).first()
    if target_kw is None:
        return plan
    if not first:
        return planning.Plan(skipped=dict.fromkeys(planning.SKIP_REASONS, 0))
    chosen = selection.select(load_candidates(plan, now), target_kw, settings.TARGET_MARGIN)
    Activation.objects.filter(pk=activation.pk).update(target_kw=target_kw, shortfall_kw=chosen.shortfall_kw)
    return selection.narrow(plan, chosen)


def load_candidates(plan: planning.Plan, now: datetime) -> list[selection.Candidate]:
    """Each planned cap with its session's plug-in time and throttles since 00:00 or 4 h ago."""
    pks = {c.session_pk for c in plan.caps}
    since = min(selection.day_start(now), now - planning.CAP_WINDOW)
    plugged = {pk: t for pk, t in Session.objects.filter(status=Session.Status.ACTIVE)
               .values_list("pk", "start_date_time").iterator(5000) if pk in pks}
    pasts: dict[int, list[planning.Interval]] = defaultdict(list)
    rows = Curtailment.objects.filter(Q(ends_at__gt=since), status__in=THROTTLED, starts_at__lt=now)
    for pk, start, end, restored in rows.values_list("session_id", "starts_at", "ends_at", "restored_at"):
        if pk in pks:
            pasts[pk].append((start, min(end, restored) if restored else end))
    return selection.candidates_from_plan(plan, pasts, plugged, {}, now)
