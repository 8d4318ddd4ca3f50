"""The CPO's Locations (Sender GET, paginated): per connector, what bounds a session's draw there.

Pulled daily from parties that offer the module. Kept per connector: `power_type` (AC_1_PHASE /
AC_3_PHASE / DC / ...; anything else is stored as sent and treated as unknown), `max_amperage`,
`max_voltage`, `max_electric_power`. Sessions on a connector take its phase count as an upper bound
(a one-phase car on a three-phase connector draws on one phase) and its maxima.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from smatch import clock

from ..client import client_for
from ..errors import OcpiValidationError, UnknownObject
from ..models import PHASES_POWER, Connector, OcpiParty, Session
from ..schemas import cistring, number, obj, ocpi_datetime
from . import clocks
from .identity import own_identity
from .sessions import PullReport, bounds_of, pull_sessions

log = logging.getLogger(__name__)
KNOWN_POWER_TYPES = frozenset(Connector.PowerType.values) - {""}
ConnectorKey = tuple[str, str, str]


@dataclass(frozen=True)
class LocationsReport:
    offered: bool
    locations: int = 0
    connectors: int = 0
    invalid: int = 0
    refused: int = 0
    unknown_power_types: int = 0
    sessions_updated: int = 0


def parse_location(item: Any) -> list[dict]:
    """The connectors of one Location object as plain rows; OcpiValidationError when malformed."""
    location = obj(item, "location")
    location_id = cistring(location.get("id"), "location.id", 36)
    evses = location.get("evses") or []
    if not isinstance(evses, list):
        raise OcpiValidationError("location.evses: expected a list")
    rows = []
    for i, evse in enumerate(evses):
        evse = obj(evse, f"evses[{i}]")
        uid = cistring(evse.get("uid"), f"evses[{i}].uid", 36)
        connectors = evse.get("connectors") or []
        if not isinstance(connectors, list):
            raise OcpiValidationError(f"evses[{i}].connectors: expected a list")
        for j, connector in enumerate(connectors):
            where = f"evses[{i}].connectors[{j}]"
            connector = obj(connector, where)
            power_type = connector.get("power_type")
            power_type = power_type if isinstance(power_type, str) else ""
            rows.append({
                "location_id": location_id, "evse_uid": uid,
                "connector_id": cistring(connector.get("id"), f"{where}.id", 36),
                "power_type": power_type if power_type in KNOWN_POWER_TYPES else "",
                "power_type_raw": "" if power_type in KNOWN_POWER_TYPES else power_type[:32],
                "max_voltage_v": _optional_number(connector.get("max_voltage"), f"{where}.max_voltage"),
                "max_amperage_a": _optional_number(connector.get("max_amperage"), f"{where}.max_amperage"),
                "max_electric_power_w": _optional_number(connector.get("max_electric_power"),
                                                         f"{where}.max_electric_power"),
                "last_updated": ocpi_datetime(connector.get("last_updated") or location.get("last_updated"),
                                              f"{where}.last_updated"),
            })
    return rows


def _optional_number(value: Any, field: str) -> float | None:
    return None if value is None else number(value, field, minimum=0.0)


def pull_locations(party: OcpiParty, page_limit: int = 100) -> LocationsReport:
    """GET every page of the party's Locations and keep its connectors; then bound its active sessions."""
    url = party.endpoint_url("locations", "SENDER")
    if not url:
        return LocationsReport(offered=False)
    rows: dict[ConnectorKey, dict] = {}
    locations = invalid = refused = 0
    client = client_for(party)
    for item in client.iter_pages(url, {"offset": 0, "limit": page_limit}, what="GET locations"):
        locations += 1
        try:
            ids = obj(item, "location")
            cc, pid = own_identity(party, str(ids.get("country_code", "")), str(ids.get("party_id", "")))
            for row in parse_location(item):
                row.update(country_code=cc, ocpi_party_id=pid)
                rows[_key(row["location_id"], row["evse_uid"], row["connector_id"])] = row
        except UnknownObject as exc:
            refused += 1
            log.error("locations of %s: refusing a location: %s", party, exc.message)
        except OcpiValidationError as exc:
            invalid += 1
            log.warning("locations of %s: refusing an invalid location: %s", party, exc.message)
    with transaction.atomic():
        stored = _store(party, rows)
        updated = bound_sessions(party, stored)
        OcpiParty.objects.filter(pk=party.pk).update(locations_pulled_at=clock.now())
    clocks.record_envelope_skew(party, getattr(client, "last_envelope", None))
    unknown = sum(1 for row in rows.values() if not row["power_type"])
    return LocationsReport(True, locations, len(rows), invalid, refused, unknown, updated)


def _key(location_id: str, evse_uid: str, connector_id: str) -> ConnectorKey:
    return location_id.upper(), evse_uid.upper(), connector_id.upper()


def _store(party: OcpiParty, rows: dict[ConnectorKey, dict]) -> dict[ConnectorKey, Connector]:
    existing = {_key(c.location_id, c.evse_uid, c.connector_id): c for c in Connector.objects.filter(party=party)}
    now, fields = clock.now(), ("power_type", "power_type_raw", "max_voltage_v", "max_amperage_a",
                                "max_electric_power_w", "last_updated", "country_code", "ocpi_party_id")
    new, changed = [], []
    for key, row in rows.items():
        connector = existing.get(key)
        if connector is None:
            new.append(Connector(party=party, pulled_at=now, **row))
            continue
        for name in fields:
            setattr(connector, name, row[name])
        connector.pulled_at = now
        changed.append(connector)
    Connector.objects.bulk_create(new, batch_size=1000)
    Connector.objects.bulk_update(changed, [*fields, "pulled_at"], batch_size=1000)
    return {**existing, **{_key(c.location_id, c.evse_uid, c.connector_id): c for c in new}}


def bound_sessions(party: OcpiParty, connectors: dict[ConnectorKey, Connector]) -> int:
    """Give the party's active sessions whose phases nobody reported their connector's bounds."""
    sessions = Session.objects.filter(party=party, status=Session.Status.ACTIVE).filter(
        Q(phases_source="") | Q(phases_source="connector") | Q(phases_source=PHASES_POWER))
    touched = []
    for session in sessions.only("pk", "location_id", "evse_uid", "connector_id", "phases", "phases_source"):
        connector = connectors.get(_key(session.location_id, session.evse_uid, session.connector_id))
        if connector is None:
            continue
        bounds = bounds_of(connector)
        if session.phases_source == PHASES_POWER and (bounds.get("phases") or 3) >= (session.phases or 1):
            # A count the session's own power proved stays: the connector's only bounds it from above
            # (a connector with fewer phases than that wins: the estimate assumed 32 A without it).
            bounds.pop("phases", None), bounds.pop("phases_source", None)
        for name, value in bounds.items():
            setattr(session, name, value)
        touched.append(session)
    Session.objects.bulk_update(touched, ["phases", "phases_source", "max_current_a", "max_power_kw"],
                                batch_size=1000)
    return len(touched)


def locations_due(now: datetime | None = None) -> list[int]:
    """Registered parties offering a Locations Sender whose Locations were never pulled or not for
    OCPI_LOCATIONS_INTERVAL_S: a new party gets its connectors at the next beat, the others daily."""
    now = now or clock.now()
    stale = now - timedelta(seconds=settings.OCPI_LOCATIONS_INTERVAL_S)
    parties = OcpiParty.objects.filter(status=OcpiParty.Status.REGISTERED).filter(
        Q(locations_pulled_at__isnull=True) | Q(locations_pulled_at__lte=stale))
    return [p.pk for p in parties if p.endpoint_url("locations", "SENDER")]


def pull_first(party: OcpiParty) -> tuple[LocationsReport, PullReport | None]:
    """A party just registered: its Locations, then its sessions, one after the other. A session
    takes its connector's bounds when created; pulled beside the Locations, it could be created
    before its connector is stored and after the Locations pull bounded the sessions it saw,
    and stay without them until the next daily refresh."""
    places = pull_locations(party)
    sessions = pull_sessions(party) if party.endpoint_url("sessions", "SENDER") else None
    return places, sessions

