"""Loading and saving around `delivery.judge`: each restored cap's verdict, and the per-EVSE record.

Run by the sweep once the resumption window of a restored cap has passed; a cap is judged once.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min

from ocpi.models import ChargingProfileCall, SessionState
from smatch import clock
from smatch.db import update_from_values

from . import delivery, planning
from .models import Curtailment, EvseResponsiveness

S = Curtailment.Status
JUDGED_STATES = (S.PENDING, S.IN_FORCE, S.NO_RESULT)  # caps the CSMS was asked to apply and did not refuse
RECENT_KEPT = 20
PHASE_EVIDENCE = delivery.PHASE_EVIDENCE  # states before a cap: its phase count, the draw it could lower


def rule() -> delivery.Rule:
    return delivery.Rule(limit_a=planning.LIMIT_A, tolerance_a=settings.DELIVERY_TOLERANCE_A,
                         tolerance_kw=settings.DELIVERY_TOLERANCE_KW,
                         grace=timedelta(seconds=settings.DELIVERY_GRACE_S),
                         resume_window=timedelta(seconds=settings.DELIVERY_RESUME_WINDOW_S))


def reading(timestamp, kwh, l1, l2, l3, power_kw, source) -> delivery.Reading:
    """A state as the rule reads it: measured currents; the POWER dimension; else kWh only."""
    currents = [c for c in (l1, l2, l3) if c is not None]
    if currents and source in ("measured", ""):
        return delivery.Reading(timestamp, kwh, current_a=max(currents))
    if power_kw is not None and source in ("power", ""):
        return delivery.Reading(timestamp, kwh, power_kw=power_kw)
    # "kwh", and "assumed" (phases not known for sure: its power may be the kWh average since the
    # state before, which read as an instant would put minutes of pre-cap draw after the cap's
    # start): the rule derives the averages from the kWh itself.
    return delivery.Reading(timestamp, kwh)


def plausible_phases(phases: int | None, source: str) -> tuple[int, ...]:
    """The session's phase count when firm (reported, or a POWER / CURRENT pair); else every
    plausible count up to what is known (a connector's phases only bound the car's)."""
    if phases and (source in planning.FIRM_PHASE_SOURCES or phases == 1):
        return (phases,)
    if phases and source == planning.PHASES_AT_LEAST:  # a lower bound proved by the power drawn
        return tuple(k for k in planning.PLAUSIBLE_PHASES if k >= phases)
    return tuple(k for k in planning.PLAUSIBLE_PHASES if not phases or k <= phases)


def assess_due(now: datetime | None = None, batch: int = 2000) -> int:
    """Judge restored caps whose resumption window has passed; update their EVSEs' records."""
    now = now or clock.now()
    r = rule()
    ready_before = now - r.grace - r.resume_window
    caps = list(Curtailment.objects.filter(
        status=S.RESTORED, restored_from__in=JUDGED_STATES, delivery="", restored_at__lte=ready_before,
    ).values_list("pk", "session_id", "starts_at", "ends_at", "restored_at", "limit_a", "session__start_date_time",
                  "session__phases", "session__phases_source", "session__party_id", "session__evse_uid",
                  "before_a", "session__max_current_a")[:batch])
    if not caps:
        return 0
    lo = min(c[2] for c in caps)
    hi = max(c[4] for c in caps) + r.grace + r.resume_window
    readings: dict[int, list[delivery.Reading]] = defaultdict(list)
    # States from before the cap too: the full draw is what tells a session's phase count best.
    states = SessionState.objects.filter(session_id__in={c[1] for c in caps}, timestamp__gte=lo - PHASE_EVIDENCE,
                                         timestamp__lte=hi)
    for row in states.values_list("session_id", "timestamp", "kwh", "current_l1_a", "current_l2_a", "current_l3_a",
                                  "power_kw", "current_source").iterator(5000):
        readings[row[0]].append(reading(*row[1:]))
    # What earlier caps' flat draws proved about each session (the lowest rules out the most counts).
    flat_kw = dict(Curtailment.objects.filter(session_id__in={c[1] for c in caps}, flat_kw__isnull=False)
                   .values_list("session_id").annotate(kw=Min("flat_kw")).values_list("session_id", "kw"))
    # A cap acts from when the CSMS accepted its PUT, not from when it was planned (a busy dispatcher or a
    # retry after TOO_OFTEN sends it seconds or minutes later): the grace counts from then.
    accepted = dict(ChargingProfileCall.objects.filter(
        kind=ChargingProfileCall.Kind.SET, purpose_id__in=[c[0] for c in caps], response_result="ACCEPTED",
    ).values_list("purpose_id").annotate(at=Max("answered_at")).values_list("purpose_id", "at"))
    verdicts, per_evse = [], defaultdict(list)
    for pk, session_pk, starts, ends, restored, limit_a, session_start, phases, source, party_pk, evse, before, \
            max_a in sorted(caps, key=lambda c: c[2]):
        acting_from = max(starts, accepted.get(pk) or starts)
        v = delivery.judge(readings.get(session_pk, ()), cap_start=acting_from, cap_end=ends,
                           session_start=session_start,
                           phases=plausible_phases(phases, source), restored_at=restored,
                           rule=delivery.Rule(limit_a, r.tolerance_a, r.tolerance_kw, r.grace, r.resume_window),
                           before_a=before, max_current_a=max_a, flat_kw_before=flat_kw.get(session_pk))
        flat_kw[session_pk] = delivery.proven_flat_kw(flat_kw.get(session_pk), v)
        verdicts.append({"pk": pk, "delivery": v.delivery, "resumption": v.resumption, "flat_kw": v.flat_kw})
        per_evse[(party_pk, evse)].append(v)
    with transaction.atomic():
        update_from_values(Curtailment, verdicts, ["delivery", "resumption", "flat_kw"])
        _record(per_evse, now)
    return len(verdicts)


def _record(per_evse: dict, now: datetime) -> None:
    n, m = settings.RESPONSIVENESS_FAILURES_N, settings.RESPONSIVENESS_WINDOW_M
    for (party_pk, evse_uid), verdicts in per_evse.items():
        judged = [v.delivery == delivery.RESPONDED for v in verdicts if v.delivery != delivery.NO_DATA]
        not_resumed = sum(1 for v in verdicts if v.resumption == delivery.NOT_RESUMED)
        if not judged and not not_resumed:
            continue
        record, _ = EvseResponsiveness.objects.select_for_update().get_or_create(
            party_id=party_pk, evse_key=evse_uid.upper(), defaults={"evse_uid": evse_uid})
        record.recent = (list(record.recent) + judged)[-RECENT_KEPT:]
        record.judged += len(judged)
        record.failures += sum(1 for ok in judged if not ok)
        record.not_resumed += not_resumed
        record.flagged = delivery.flag(record.recent, n, m)
        record.updated_at = now
        record.save()


def flagged_evse_keys() -> set[tuple[int, str]]:
    """(party pk, EVSE uid in upper case) of every flagged EVSE: capped, but counted out of the shed."""
    return set(EvseResponsiveness.objects.filter(flagged=True).values_list("party_id", "evse_key"))


REPORT_COLUMNS = ("party", "evse_uid", "flagged", "judged", "failures", "not_resumed", "recent", "updated_at")


def report_rows(party_pk: int | None = None, flagged_only: bool = False) -> list[dict]:
    """The CPO-facing report: one row per EVSE (admin list, CSV download and REST read the same rows)."""
    records = EvseResponsiveness.objects.select_related("party").order_by("party__name", "evse_key")
    if party_pk is not None:
        records = records.filter(party_id=party_pk)
    if flagged_only:
        records = records.filter(flagged=True)
    return [{"party": r.party.name, "evse_uid": r.evse_uid, "flagged": r.flagged, "judged": r.judged,
             "failures": r.failures, "not_resumed": r.not_resumed, "recent": recent_text(r.recent),
             "updated_at": r.updated_at}
            for r in records]


def recent_text(recent: list[bool]) -> str:
    """Newest last: R responded, N did not (letters: a CSV cell must not start like a formula)."""
    return "".join("R" if ok else "N" for ok in recent)


def csv_safe(value: object) -> object:
    """A text cell a spreadsheet would run as a formula is quoted (ids are the CPO's own text)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def drivers_at_risk_count(now: datetime | None = None, within: timedelta = timedelta(hours=24)) -> int:
    """Caps restored in the last `within` after which the EV did not resume charging."""
    now = now or clock.now()
    return Curtailment.objects.filter(resumption=Curtailment.Resumption.NOT_RESUMED,
                                      restored_at__gte=now - within).count()
