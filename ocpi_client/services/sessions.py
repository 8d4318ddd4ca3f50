"""Sessions: the Receiver interface (PUT / PATCH / GET pushed by the CPO) and the pull from its Sender."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction

from smatch import clock

from ..client import client_for
from ..errors import OcpiValidationError, UnknownObject
from ..models import OcpiParty, Session, SessionState
from ..schemas import SessionUpdate, cistring, format_datetime, state_currents, validate_session
from ..signals import session_started

log = logging.getLogger(__name__)
FIRST_PULL_LOOKBACK = timedelta(days=1)


def receive_session(party: OcpiParty, country_code: str, party_id: str, session_id: str, payload: object,
                    *, partial: bool) -> tuple[Session, bool]:
    """Store a pushed Session (PUT, or PATCH when `partial`); returns (session, created).

    Older updates (by last_updated) never overwrite newer fields, but their state joins the history.
    """
    country_code, party_id = _path_ids(party, country_code, party_id)
    cistring(session_id, "session_id (URL)", 36)
    update = validate_session(payload, partial=partial)
    for name, expected in (("country_code", country_code), ("ocpi_party_id", party_id), ("session_id", session_id)):
        given = update.fields.get(name)
        if given is not None and given.upper() != expected.upper():
            label = {"ocpi_party_id": "party_id", "session_id": "id"}.get(name, name)
            raise OcpiValidationError(f"{label}: {given!r} in the body differs from {expected!r} in the URL")
    with transaction.atomic():
        session, created, started = _apply(party, country_code, party_id, session_id, update, partial=partial)
    if started:
        # on_commit outside an atomic block runs at once: the rows above are committed already.
        transaction.on_commit(lambda: session_started.send(sender=Session, session_ids=[session.pk]))
    return session, created


def _path_ids(party: OcpiParty, country_code: str, party_id: str) -> tuple[str, str]:
    """The path must name the authenticated party (transport_and_format: 404 otherwise)."""
    if (country_code.upper(), party_id.upper()) != (party.country_code.upper(), party.party_id.upper()):
        raise UnknownObject(f"{country_code}/{party_id} is not the party of this token")
    return party.country_code.upper(), party.party_id.upper()


def _apply(party: OcpiParty, country_code: str, party_id: str, session_id: str, update: SessionUpdate,
           *, partial: bool) -> tuple[Session, bool, bool]:
    key = {"country_code": country_code, "ocpi_party_id": party_id, "session_id": session_id}
    session = _own_sessions(party, country_code, party_id, session_id).select_for_update().first()
    created = False
    if session is None:
        if partial:
            raise UnknownObject(f"session {session_id} is unknown: PUT it before PATCHing it")
        session, created = _create(party, key, update)
    newer = created or update.last_updated >= session.last_updated
    currents, phases = state_currents(update, session.phases)
    changed: set[str] = set()
    if newer:
        for name, value in update.fields.items():
            setattr(session, name, value)
        session.extra = update.extra if not partial else {**session.extra, **update.extra}
        session.phases = phases
        changed |= {*update.fields, "extra", "phases"}
        if any(c is not None for c in currents):
            session.last_current_a = max(c for c in currents if c is not None)
            changed.add("last_current_a")
    kwh, status = _state_energy_and_status(session, update, newer)
    SessionState.objects.bulk_create([SessionState(
        session=session, timestamp=update.last_updated, kwh=kwh, current_l1_a=currents[0], current_l2_a=currents[1],
        current_l3_a=currents[2], power_kw=update.power_kw, phases=phases, status=status,
    )], ignore_conflicts=True)  # the same update twice is stored once
    started = newer and session.status == Session.Status.ACTIVE and session.first_active_at is None
    if started:
        session.first_active_at = clock.now()
        changed.add("first_active_at")
    if changed:
        session.save(update_fields=sorted(changed))  # a PATCH writes what it carries, not the whole row
    return session, created, started


def _create(party: OcpiParty, key: dict, update: SessionUpdate) -> tuple[Session, bool]:
    try:
        with transaction.atomic():  # savepoint: a concurrent PUT of the same new session may win
            fields = {**update.fields, **key}
            return Session.objects.create(party=party, extra=update.extra, **fields), True
    except IntegrityError:
        found = _own_sessions(party, key["country_code"], key["ocpi_party_id"], key["session_id"])
        return found.select_for_update().get(), False


def _own_sessions(party: OcpiParty, country_code: str, party_id: str, session_id: str):
    """The party's session with these ids in any case (the unique key is on their upper case)."""
    return Session.objects.filter(party=party, country_code__iexact=country_code, ocpi_party_id__iexact=party_id,
                                  session_id__iexact=session_id)


def _state_energy_and_status(session: Session, update: SessionUpdate, newer: bool) -> tuple[float, str]:
    """kWh and status of this update's state; a late PATCH without them takes the state just before it."""
    kwh, status = update.fields.get("kwh"), update.fields.get("status")
    if (kwh is None or status is None) and not newer:
        before = session.states.filter(timestamp__lt=update.last_updated).order_by("-timestamp").first()
        kwh = kwh if kwh is not None else (before.kwh if before else 0.0)
        status = status or (before.status if before else session.status)
    return (kwh if kwh is not None else session.kwh), (status or session.status)


def session_object(party: OcpiParty, country_code: str, party_id: str, session_id: str) -> dict:
    """The stored Session as an OCPI object (Receiver GET)."""
    country_code, party_id = _path_ids(party, country_code, party_id)
    session = _own_sessions(party, country_code, party_id, session_id).first()
    if session is None:
        raise UnknownObject(f"session {session_id} is unknown")
    data = {
        **session.extra,
        "country_code": session.country_code, "party_id": session.ocpi_party_id, "id": session.session_id,
        "start_date_time": format_datetime(session.start_date_time), "kwh": session.kwh,
        "location_id": session.location_id, "evse_uid": session.evse_uid, "connector_id": session.connector_id,
        "status": session.status, "last_updated": format_datetime(session.last_updated),
    }
    if session.end_date_time:
        data["end_date_time"] = format_datetime(session.end_date_time)
    return data


@dataclass(frozen=True)
class PullReport:
    received: int
    stored: int
    invalid: int
    date_from: datetime
    date_to: datetime


def pull_sessions(party: OcpiParty, date_from: datetime | None = None, date_to: datetime | None = None,
                  page_limit: int = 100) -> PullReport:
    """GET the party's sessions updated in [date_from, date_to) (all pages) and store them like PUTs.

    Defaults: from where the last pull ended (or a day back) until now. Invalid objects are logged and
    skipped (transport_and_format: process the correct ones).
    """
    date_to = date_to or clock.now()
    date_from = date_from or party.sessions_pulled_until or (date_to - FIRST_PULL_LOOKBACK)
    received = stored = invalid = 0
    started: list[int] = []
    for item in client_for(party).iter_sessions(date_from, date_to, page_limit=page_limit):
        received += 1
        try:
            with transaction.atomic():
                ids = item if isinstance(item, dict) else {}
                country_code, party_id = _path_ids(party, str(ids.get("country_code")), str(ids.get("party_id")))
                update = validate_session(item, partial=False)
                session, _, was_started = _apply(party, country_code, party_id, update.fields["session_id"],
                                                 update, partial=False)
        except (OcpiValidationError, UnknownObject) as exc:
            invalid += 1
            log.warning("pull from %s: skipping invalid session: %s", party, exc.message)
            continue
        stored += 1
        if was_started:
            started.append(session.pk)
    OcpiParty.objects.filter(pk=party.pk).update(sessions_pulled_until=date_to)
    if started:
        transaction.on_commit(lambda: session_started.send(sender=Session, session_ids=started))
    return PullReport(received, stored, invalid, date_from, date_to)


def pull_due_sessions() -> list[int]:
    """Ids of the registered parties that offer a sessions Sender endpoint (the periodic pull's targets)."""
    return [p.pk for p in OcpiParty.objects.filter(status=OcpiParty.Status.REGISTERED)
            if p.endpoint_url("sessions", "SENDER")]
