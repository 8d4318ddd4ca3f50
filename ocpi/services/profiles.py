"""Async results and pushed profiles of our chargingprofiles calls (the sending is in `sending`)."""

from __future__ import annotations

import uuid

from django.db import transaction

from smatch import clock

from ..errors import OcpiError, UnknownObject
from ..models import ActiveProfileUpdate, ChargingProfileCall, OcpiParty, Session
from ..schemas import validate_active_profile, validate_profile_result
from ..signals import profile_result_received

# What a listener of `profile_result_received` answers when the result comes too late to matter.
STALE = "stale"


class StaleResult(OcpiError):
    """A result for a profile we already cleared: nothing changes (a clear status, not an error page)."""

    status_code = 2000
    http_status = 200


def record_profile_result(party: OcpiParty, call_id: uuid.UUID, payload: object) -> None:
    """An async ChargingProfileResult / ClearProfileResult / ActiveChargingProfileResult for our call.

    Idempotent: a repeat of the same result changes nothing; a different later one replaces it.
    Listeners (the dispatcher) move their cap on; a result for a cap already restored changes
    nothing and is answered with StaleResult. A call of another party is unknown (404).
    """
    parsed = validate_profile_result(payload)
    row = (ChargingProfileCall.objects.filter(id=call_id, session__party=party)
           .values_list("kind", "purpose_id", "result").first())
    if row is None:
        raise UnknownObject(f"no chargingprofiles call {call_id} of yours")
    kind, purpose_id, previous = row
    if previous == parsed["result"]:
        return
    with transaction.atomic():
        verdicts = profile_result_received.send(sender=ChargingProfileCall, call_id=call_id, kind=kind,
                                                purpose_id=purpose_id, result=parsed["result"])
        if any(verdict == STALE for _, verdict in verdicts):
            raise StaleResult("the profile of this call was already cleared: result ignored")
        ChargingProfileCall.objects.filter(id=call_id).update(
            result=parsed["result"], result_at=clock.now(), result_payload=payload)


def record_active_profile(party: OcpiParty, session_id: str, payload: object) -> None:
    """An ActiveChargingProfile the CPO pushed for one of its sessions: kept as an audit record."""
    parsed = validate_active_profile(payload)
    session = Session.objects.filter(party=party, session_id__iexact=session_id).only("id").first()
    if session is None:
        raise UnknownObject(f"session {session_id} is unknown")
    ActiveProfileUpdate.objects.create(session=session, start_date_time=parsed["start_date_time"],
                                       charging_profile=parsed["charging_profile"])
