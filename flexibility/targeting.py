"""Target-kW activations around the pure selection (`selection.py`): the intake checks, the plan narrowed.

A signal may carry `target_kw`. At intake it must be a positive number, on the one actionable
direction, and at most what the fleet could physically shed; a refused signal is not stored. At
planning, the eligible caps of the first plan are narrowed to the fewest sessions, fairly chosen,
whose expected shed covers the target with `TARGET_MARGIN` (caps too small for the delivery
judge to see come last); the activation records the target and
the shortfall when even every eligible session falls short (then all of them are capped).
Top-up: while it runs, the sweep judges the caps from the states pushed since they started
(`delivery.judge`); when the caps still standing (not refused, not measured above the cap) fall
short of the target, more sessions are chosen, the same fair way, from the eligible ones left.
Sessions that start during a target-kW activation are used only for such a top-up.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace
from datetime import datetime

from django.conf import settings
from django.db.models import Q

from ocpi.models import Connector, Session, SessionState
from smatch.errors import Refusal

from . import delivery, planning, responsiveness, selection
from .error_codes import FlexibilityErrorCode as Code
from .models import Activation, Curtailment, EvseResponsiveness, Signal

PHASES_BY_POWER_TYPE = {"AC_1_PHASE": 1, "AC_2_PHASE": 2, "AC_2_PHASE_SPLIT": 2, "AC_3_PHASE": 3}
FALLBACK_MAX_A = 32.0  # a connector or session whose max amperage nobody told us: the usual AC ceiling
# Caps that count against the budget: sent to the CSMS and not refused (what dispatch counts, listed
# here by name so this module does not depend on where the lifecycle's tables live).
_C = Curtailment.Status
THROTTLED = (_C.SENT, _C.PENDING, _C.IN_FORCE, _C.NO_RESULT, _C.RESTORED)
STANDING = (_C.PLANNED, _C.SENT, _C.PENDING, _C.IN_FORCE, _C.NO_RESULT)  # may still shed during the activation


class TargetRefused(Refusal):
    """A target the rules refuse (HTTP 400)."""


def check_target(target_kw: float | None, fleet_max_kw: float) -> None:
    """Refuse a target that is not a positive finite number, or above the fleet's maximum (the
    direction is checked for every signal, target or not)."""
    if target_kw is None:
        return
    if isinstance(target_kw, bool) or not isinstance(target_kw, int | float) or not math.isfinite(target_kw) \
            or target_kw <= 0:
        raise TargetRefused(Code.TARGET_NOT_POSITIVE, "target_kw must be a positive number of kW")
    if target_kw > fleet_max_kw:
        raise TargetRefused(Code.TARGET_ABOVE_FLEET_MAX,
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


def apply(plan: planning.Plan, activation: Activation, now: datetime, first: bool) -> planning.Plan:
    """The plan narrowed to the target's selection; the plan unchanged when the signal has no target.

    First plan: the fewest sessions covering target x (1 + margin). Later plans (sessions that
    started meanwhile, the sweep's top-up over every active session, or a first plan completed
    after a crash): only what the caps already there and still standing lack, judged from the
    states that arrived since the caps started.
    """
    target_kw = Signal.objects.filter(pk=activation.signal_id).values_list("target_kw", flat=True).first()
    if target_kw is None:
        return plan
    if first and not Curtailment.objects.filter(activation_id=activation.pk).exists():
        chosen = choose(load_candidates(plan, now), target_kw)
        Activation.objects.filter(pk=activation.pk).update(target_kw=target_kw, shortfall_kw=chosen.shortfall_kw)
        return selection.narrow(plan, chosen)
    standing_kw, _ = judge_so_far(activation.pk, now)
    if standing_kw >= target_kw or not plan.caps:
        return planning.Plan(skipped=dict.fromkeys(planning.SKIP_REASONS, 0))
    chosen = choose(load_candidates(plan, now), target_kw - standing_kw)
    return selection.narrow(plan, chosen)


def choose(candidates: list[selection.Candidate], target_kw: float) -> selection.Selection:
    """`selection.select` with TARGET_MARGIN; caps within the delivery judge's tolerance of the
    limit (DELIVERY_TOLERANCE_A per phase, DELIVERY_TOLERANCE_KW) come last."""
    return selection.select(candidates, target_kw, settings.TARGET_MARGIN, settings.DELIVERY_TOLERANCE_KW,
                            settings.DELIVERY_TOLERANCE_A)


def judge_so_far(activation_id: int, now: datetime) -> tuple[float, float]:
    """(standing, measured) shed of an activation's caps from the states pushed since they started
    (`delivery.judge` up to now); records the measured shed on the activation."""
    caps = list(Curtailment.objects.filter(activation_id=activation_id).values_list(
        "session_id", "status", "expected_kw", "starts_at", "limit_a", "before_a", "session__start_date_time",
        "session__phases", "session__phases_source"))
    if not caps:
        return 0.0, 0.0
    readings = load_readings({c[0] for c in caps}, min(c[3] for c in caps), now)
    base = responsiveness.rule()
    so_far, decided = [], False
    for session_pk, status, expected_kw, starts_at, limit_a, before_a, session_start, phases, source in caps:
        verdict = delivery.judge(readings.get(session_pk, ()), cap_start=starts_at, cap_end=now,
                                 session_start=session_start, phases=responsiveness.plausible_phases(phases, source),
                                 rule=replace(base, limit_a=limit_a), before_a=before_a)
        standing = status in STANDING and verdict.delivery != delivery.NOT_RESPONDED
        so_far.append(selection.CapSoFar(expected_kw, standing, verdict.delivery == delivery.RESPONDED,
                                         verdict.shed_kw))
        decided = decided or verdict.delivery in (delivery.RESPONDED, delivery.NOT_RESPONDED)
    standing_kw, measured_kw = selection.standing_and_measured_kw(so_far)
    # No cap judged yet (no state since the caps began, e.g. 5-minute kWh states and a short window):
    # the measured shed is unknown, not 0 kW.
    Activation.objects.filter(pk=activation_id).update(measured_kw=measured_kw if decided else None)
    return standing_kw, measured_kw


def load_readings(session_pks: set[int], since: datetime, until: datetime) -> dict[int, list[delivery.Reading]]:
    """States as the delivery rule reads them: the highest measured phase current, else POWER, else kWh."""
    out: dict[int, list[delivery.Reading]] = defaultdict(list)
    rows = SessionState.objects.filter(session_id__in=session_pks, timestamp__gte=since, timestamp__lte=until)
    for pk, *row in rows.values_list("session_id", "timestamp", "kwh", "current_l1_a", "current_l2_a",
                                     "current_l3_a", "power_kw", "current_source").iterator(5000):
        out[pk].append(responsiveness.reading(*row))
    return out


def top_up_due(now: datetime) -> dict[int, list[int]]:
    """Running target-kW activations whose standing caps fall short of the target, each with the
    active sessions not capped in it (the top-up chooses among them: `apply`, later plan)."""
    running = Activation.objects.filter(status__in=(Activation.Status.DISPATCHING, Activation.Status.ACTIVE),
                                        ends_at__gt=now, target_kw__isnull=False)
    out = {}
    for activation_id, target_kw in running.values_list("pk", "target_kw"):
        standing_kw, _ = judge_so_far(activation_id, now)
        if standing_kw < target_kw:
            capped = Curtailment.objects.filter(activation_id=activation_id).values("session_id")
            out[activation_id] = list(Session.objects.filter(status=Session.Status.ACTIVE).exclude(pk__in=capped)
                                      .order_by("pk").values_list("pk", flat=True))
    return out


def load_candidates(plan: planning.Plan, now: datetime) -> list[selection.Candidate]:
    """Each planned cap with its session's plug-in time, throttles since 00:00 or 4 h ago, and its
    EVSE's record of judged caps (a flagged EVSE's expected shed is already 0 in the plan)."""
    pks = {c.session_pk for c in plan.caps}
    since = min(selection.day_start(now), now - planning.CAP_WINDOW)
    plugged, evse_of = {}, {}
    for pk, started, party_pk, evse_uid in Session.objects.filter(status=Session.Status.ACTIVE).values_list(
            "pk", "start_date_time", "party_id", "evse_uid").iterator(5000):
        if pk in pks:
            plugged[pk], evse_of[pk] = started, (party_pk, evse_uid.upper())
    pasts: dict[int, list[planning.Interval]] = defaultdict(list)
    rows = Curtailment.objects.filter(Q(ends_at__gt=since), status__in=THROTTLED, starts_at__lt=now)
    for pk, start, end, restored in rows.values_list("session_id", "starts_at", "ends_at", "restored_at"):
        if pk in pks:
            pasts[pk].append((start, min(end, restored) if restored else end))
    records = {(party_pk, key): recent for party_pk, key, recent in
               EvseResponsiveness.objects.filter(judged__gt=0).values_list("party_id", "evse_key", "recent")}
    weights = {pk: selection.responsiveness_weight(records[evse]) for pk, evse in evse_of.items() if evse in records}
    return selection.candidates_from_plan(plan, pasts, plugged, weights, now)
