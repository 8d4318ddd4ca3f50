"""Sessions: the Receiver interface (PUT / PATCH / GET pushed by the CPO) and the pull from its Sender."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from smatch import clock

from ..client import client_for
from ..errors import OcpiValidationError, UnknownObject
from ..models import Connector, OcpiParty, Session, SessionState
from ..schemas import SessionUpdate, cistring, format_datetime, merge_periods, validate_session
from ..signals import session_started
from . import clocks
from .identity import own_identity
from .readings import CONNECTOR_PHASES, derive_reading

log = logging.getLogger(__name__)
FIRST_PULL_LOOKBACK = timedelta(days=1)
_KEY_FIELDS = ("country_code", "ocpi_party_id", "session_id")


def receive_session(party: OcpiParty, country_code: str, party_id: str, session_id: str, payload: object,
                    *, partial: bool) -> tuple[Session, bool]:
    """Store a pushed Session (PUT, or PATCH when `partial`); returns (session, created).

    Ids are CiStrings: a body naming them in another case is the same object. Older updates (by
    last_updated) never overwrite newer fields, but their state joins the history.
    """
    country_code, party_id = own_identity(party, country_code, party_id)
    cistring(session_id, "session_id (URL)", 36)
    update = validate_session(payload, partial=partial)
    for name, expected in (("country_code", country_code), ("ocpi_party_id", party_id), ("session_id", session_id)):
        given = update.fields.get(name)
        if given is not None and given.upper() != expected.upper():
            label = {"ocpi_party_id": "party_id", "session_id": "id"}.get(name, name)
            raise OcpiValidationError(f"{label}: {given!r} in the body differs from {expected!r} in the URL")
    _check_not_future(update)
    with transaction.atomic():
        session, created, started = _apply(party, country_code, party_id, session_id, update, partial=partial)
    if started:
        # on_commit outside an atomic block runs at once: the rows above are committed already.
        transaction.on_commit(lambda: session_started.send(sender=Session, session_ids=[session.pk]))
    return session, created


def _check_not_future(update: SessionUpdate) -> None:
    """A last_updated ahead of our clock by more than OCPI_MAX_FUTURE_S is refused: it would freeze the session."""
    limit = clock.now() + timedelta(seconds=settings.OCPI_MAX_FUTURE_S)
    if update.last_updated > limit:
        raise OcpiValidationError(f"last_updated: {format_datetime(update.last_updated)} is more than "
                                  f"{settings.OCPI_MAX_FUTURE_S} s ahead of our clock ({format_datetime(clock.now())})")


def _apply(party: OcpiParty, country_code: str, party_id: str, session_id: str, update: SessionUpdate,
           *, partial: bool) -> tuple[Session, bool, bool]:
    session = _locked_session(party, country_code, party_id, session_id)
    created = False
    if session is None:
        if partial:
            raise UnknownObject(f"session {session_id} is unknown: PUT it before PATCHing it")
        key = {"country_code": country_code, "ocpi_party_id": party_id, "session_id": session_id}
        session, created = _create(party, key, update)
    newer = created or update.last_updated >= session.last_updated
    changed: set[str] = {"seen_at"}
    session.seen_at = clock.now()
    if update.charging_periods is not None:
        # The PATCH rule: periods in a PATCH are added; a PUT carries the whole list.
        session.charging_periods = (merge_periods(session.charging_periods or [], update.charging_periods)
                                    if partial else update.charging_periods)
        changed.add("charging_periods")
    if newer:
        for name, value in update.fields.items():
            if name not in _KEY_FIELDS:  # the ids keep the spelling they were stored with
                setattr(session, name, value)
        session.extra = update.extra if not partial else {**session.extra, **update.extra}
        changed |= {*update.fields, "extra"} - set(_KEY_FIELDS)
    kwh, status = _state_energy_and_status(session, update, newer)
    before, started_at = None, None
    if "kwh" in update.fields and update.currents_a is None and update.current_dimension_a is None \
            and update.power_kw is None:
        # Only a kWh-only update needs the state before it (one indexed query). A PATCH without kwh
        # (a status change) says nothing about the draw: no energy-over-time reading from it.
        before = (session.states.filter(timestamp__lt=update.last_updated).order_by("-timestamp")
                  .values_list("timestamp", "kwh").first())
        started_at = session.start_date_time
    reading = derive_reading(update, kwh, session.phases, session.phases_source, before, started_at,
                             session.max_current_a)
    if newer and (reading.current_source or not session.current_source):
        # An update that tells nothing of the draw does not erase what the ones before told.
        session.phases, session.phases_source = reading.phases, reading.phases_source
        session.current_source, session.last_power_kw = reading.current_source, reading.power_kw
        session.last_current_a = reading.max_current_a
        changed |= {"phases", "phases_source", "current_source", "last_power_kw", "last_current_a"}
    currents = reading.currents_a
    SessionState.objects.bulk_create([SessionState(
        session=session, timestamp=update.last_updated, kwh=kwh, current_l1_a=currents[0], current_l2_a=currents[1],
        current_l3_a=currents[2], power_kw=reading.power_kw, phases=reading.phases, status=status,
        current_source=reading.current_source,
    )], ignore_conflicts=True)  # the same update twice is stored once
    started = newer and session.status == Session.Status.ACTIVE and session.first_active_at is None
    if started:
        session.first_active_at = clock.now()
        changed.add("first_active_at")
    session.save(update_fields=sorted(changed))  # a PATCH writes what it carries, not the whole row
    return session, created, started


def _create(party: OcpiParty, key: dict, update: SessionUpdate) -> tuple[Session, bool]:
    fields = {name: value for name, value in update.fields.items() if name not in _KEY_FIELDS}
    fields.update(key)
    fields.update(connector_bounds(party, fields["location_id"], fields["evse_uid"], fields["connector_id"]))
    try:
        with transaction.atomic():  # savepoint: a concurrent PUT of the same new session may win
            return Session.objects.create(party=party, extra=update.extra, **fields), True
    except IntegrityError:
        found = _own_sessions(party, key["country_code"], key["ocpi_party_id"], key["session_id"])
        return found.select_for_update().get(), False


def connector_bounds(party: OcpiParty, location_id: str, evse_uid: str, connector_id: str) -> dict:
    """Session fields from the connector (Locations): its phase count (an upper bound) and maxima."""
    connector = Connector.objects.filter(party=party, location_id__iexact=location_id, evse_uid__iexact=evse_uid,
                                         connector_id__iexact=connector_id).first()
    return bounds_of(connector) if connector is not None else {}


def bounds_of(connector: Connector) -> dict:
    phases = CONNECTOR_PHASES.get(connector.power_type)
    fields: dict = {"max_current_a": connector.max_amperage_a,
                    "max_power_kw": (connector.max_electric_power_w / 1000.0
                                     if connector.max_electric_power_w is not None else None)}
    if phases:
        fields.update(phases=phases, phases_source="connector")
    return fields


def _locked_session(party: OcpiParty, country_code: str, party_id: str, session_id: str) -> Session | None:
    """The party's session with these ids in any case, locked for this transaction (None: not stored).

    Raw SQL on the unique (party, UPPER(ids)) index: this read runs on every push, and the ORM's
    compilation of it cost more CPU than the query (bench/request_costs.py).
    """
    q = connection.ops.quote_name
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    sql = (f"SELECT * FROM {q(Session._meta.db_table)} WHERE {q('party_id')} = %s "
           f"AND UPPER({q('country_code')}) = UPPER(%s) AND UPPER({q('ocpi_party_id')}) = UPPER(%s) "
           f"AND UPPER({q('session_id')}) = UPPER(%s) LIMIT 1{lock}")
    return next(iter(Session.objects.raw(sql, [party.pk, country_code, party_id, session_id])), None)


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
    """The stored Session as an OCPI object (Receiver GET); another party's session is unknown (404)."""
    country_code, party_id = own_identity(party, country_code, party_id)
    try:
        cistring(session_id, "session_id (URL)", 36)
    except OcpiValidationError:
        raise UnknownObject(f"session {session_id!r} is unknown") from None  # no stored id looks like that
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
    if session.charging_periods:
        data["charging_periods"] = session.charging_periods
    return data


@dataclass(frozen=True)
class PullReport:
    received: int
    stored: int
    invalid: int
    date_from: datetime
    date_to: datetime
    refused: int = 0  # sessions of an identity the party does not hold


def pull_sessions(party: OcpiParty, date_from: datetime | None = None, date_to: datetime | None = None,
                  page_limit: int = 100) -> PullReport:
    """GET the party's sessions updated in [date_from, date_to) (all pages) and store them like PUTs.

    Defaults: from OCPI_PULL_OVERLAP_S before where the last pull ended (the CPO's clock may lag ours;
    storing is idempotent) or a day back, until now. Invalid objects and objects of an identity the
    party does not hold are refused one by one and logged (transport_and_format: process the
    correct ones); they are counted in the report, never stored.
    """
    date_to = date_to or clock.now()
    if date_from is None:
        overlap = timedelta(seconds=settings.OCPI_PULL_OVERLAP_S)
        last = party.sessions_pulled_until
        date_from = last - overlap if last else date_to - FIRST_PULL_LOOKBACK
    received = stored = invalid = refused = 0
    started: list[int] = []
    client = client_for(party)
    for item in client.iter_sessions(date_from, date_to, page_limit=page_limit):
        received += 1
        try:
            with transaction.atomic():
                session, was_started = _store_pulled(party, item)
        except UnknownObject as exc:
            refused += 1
            log.error("pull from %s: refusing a session (2001): %s", party, exc.message)
            continue
        except OcpiValidationError as exc:
            invalid += 1
            log.warning("pull from %s: refusing an invalid session (2001): %s", party, exc.message)
            continue
        stored += 1
        if was_started:
            started.append(session.pk)
    OcpiParty.objects.filter(pk=party.pk).update(sessions_pulled_until=date_to)
    clocks.record_envelope_skew(party, getattr(client, "last_envelope", None))
    if started:
        transaction.on_commit(lambda: session_started.send(sender=Session, session_ids=started))
    return PullReport(received, stored, invalid, date_from, date_to, refused)


def _store_pulled(party: OcpiParty, item: object) -> tuple[Session, bool]:
    ids = item if isinstance(item, dict) else {}
    cc, pid = cistring(ids.get("country_code"), "country_code", 2), cistring(ids.get("party_id"), "party_id", 3)
    country_code, party_id = own_identity(party, cc, pid)
    update = validate_session(item, partial=False)
    _check_not_future(update)
    session, _, was_started = _apply(party, country_code, party_id, update.fields["session_id"], update,
                                     partial=False)
    return session, was_started


def pull_due_sessions() -> list[int]:
    """Ids of the registered parties that offer a sessions Sender endpoint (the periodic pull's targets)."""
    return [p.pk for p in OcpiParty.objects.filter(status=OcpiParty.Status.REGISTERED)
            if p.endpoint_url("sessions", "SENDER")]
