"""ChargingProfile calls: creating them, recording their synchronous outcomes and async results."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from smatch import clock
from smatch.db import update_from_values

from ..client import CallOutcome
from ..errors import UnknownObject
from ..models import ActiveProfileUpdate, ChargingProfileCall, OcpiParty, Session
from ..schemas import validate_active_profile, validate_profile_result

_OUTCOME_FIELDS = ["sent_at", "answered_at", "http_status", "response_result", "response_timeout_s", "error"]


def create_profile_calls(sessions: Iterable[Session], kind: str, purpose_id: int | None = None
                         ) -> list[ChargingProfileCall]:
    """One new call row per session (bulk), each with its own UUID (= the response_url's last segment)."""
    rows = [ChargingProfileCall(id=uuid.uuid4(), session=s, kind=kind, purpose_id=purpose_id) for s in sessions]
    return ChargingProfileCall.objects.bulk_create(rows, batch_size=1000)


def record_outcomes(outcomes: Sequence[CallOutcome]) -> int:
    """Write synchronous outcomes onto their call rows in one join per 2,000 (not one query per row).

    Unknown call ids are ignored. Returns the number of rows updated.
    """
    rows = [
        {"pk": o.call_id, "sent_at": o.sent_at, "answered_at": o.answered_at, "http_status": o.http_status,
         "response_result": o.result, "response_timeout_s": o.timeout_s, "error": o.error[:2000]}
        for o in outcomes
    ]
    return update_from_values(ChargingProfileCall, rows, _OUTCOME_FIELDS, increment=["attempts"])


def record_profile_result(party: OcpiParty, call_id: uuid.UUID, payload: object) -> None:
    """An async ChargingProfileResult / ClearProfileResult / ActiveChargingProfileResult for our call.

    Idempotent: a repeat of the same result changes nothing; a different later one replaces it.
    """
    parsed = validate_profile_result(payload)
    # One conditional UPDATE on the hot path (thousands of results follow a dispatch); the lookup
    # only runs when nothing changed, to tell a repeat from a call that is not theirs.
    ours = ChargingProfileCall.objects.filter(id=call_id, session__party=party)
    if ours.exclude(result=parsed["result"]).update(
        result=parsed["result"], result_at=clock.now(), result_payload=payload,
    ):
        return
    if not ours.exists():
        raise UnknownObject(f"no chargingprofiles call {call_id} of yours")


def record_active_profile(party: OcpiParty, session_id: str, payload: object) -> None:
    """An ActiveChargingProfile the CPO pushed for one of its sessions: kept as an audit record."""
    parsed = validate_active_profile(payload)
    session = Session.objects.filter(party=party, session_id=session_id).only("id").first()
    if session is None:
        raise UnknownObject(f"session {session_id} is unknown")
    ActiveProfileUpdate.objects.create(session=session, start_date_time=parsed["start_date_time"],
                                       charging_profile=parsed["charging_profile"])
