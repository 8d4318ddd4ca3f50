"""Async results and pushed profiles of our chargingprofiles calls (the sending is in `sending`)."""

from __future__ import annotations

import uuid

from django.db import connection, transaction

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
    nothing and is answered with StaleResult (its write is rolled back). A call of another party
    is unknown (404).
    """
    parsed = validate_profile_result(payload)
    with transaction.atomic():
        row = _write_result(party.pk, call_id, parsed["result"], payload)
        if row is None:
            if not ChargingProfileCall.objects.filter(id=call_id, session__party=party).exists():
                raise UnknownObject(f"no chargingprofiles call {call_id} of yours")
            return  # the same result again: nothing changes
        kind, purpose_id = row
        verdicts = profile_result_received.send(sender=ChargingProfileCall, call_id=call_id, kind=kind,
                                                purpose_id=purpose_id, result=parsed["result"])
        if any(verdict == STALE for _, verdict in verdicts):
            raise StaleResult("the profile of this call was already cleared: result ignored")


def _write_result(party_pk: int, call_id: uuid.UUID, result: str, payload: object) -> tuple[str, int | None] | None:
    """One statement: the result onto the party's call when it differs; (kind, purpose_id) or None.

    Raw SQL because this runs once per async result (16,000 in a burst): the ORM's compilation of
    a SELECT and an UPDATE cost more CPU than the rest of the request (bench/request_costs.py).
    """
    fields = {f.name: f for f in ChargingProfileCall._meta.concrete_fields}
    q = connection.ops.quote_name
    calls, sessions = q(ChargingProfileCall._meta.db_table), q(Session._meta.db_table)
    sql = (f"UPDATE {calls} SET {q('result')} = %s, {q('result_at')} = %s, {q('result_payload')} = %s "
           f"WHERE {q('id')} = %s AND {q('result')} <> %s AND {q('session_id')} IN "
           f"(SELECT {q('id')} FROM {sessions} WHERE {q('party_id')} = %s) "
           f"RETURNING {q('kind')}, {q('purpose_id')}")
    params = [result, fields["result_at"].get_db_prep_value(clock.now(), connection),
              fields["result_payload"].get_db_prep_value(payload, connection),
              fields["id"].get_db_prep_value(call_id, connection), result, party_pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def record_active_profile(party: OcpiParty, session_id: str, payload: object) -> None:
    """An ActiveChargingProfile the CPO pushed for one of its sessions: kept as an audit record."""
    parsed = validate_active_profile(payload)
    session = Session.objects.filter(party=party, session_id__iexact=session_id).only("id").first()
    if session is None:
        raise UnknownObject(f"session {session_id} is unknown")
    ActiveProfileUpdate.objects.create(session=session, start_date_time=parsed["start_date_time"],
                                       charging_profile=parsed["charging_profile"])
