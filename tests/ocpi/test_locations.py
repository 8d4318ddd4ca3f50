"""Locations pull (Sender GET, paginated) from a real loopback CPO: connectors and the sessions they bound."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpi import tasks
from ocpi.errors import OcpiValidationError
from ocpi.models import Connector, OcpiParty, Session
from ocpi.services.locations import locations_due, parse_location, pull_locations
from smatch.celery import app

from .conftest import session_payload
from .loopback import ok


def connector(cid: str, power_type: str, amps: float | None = 32.0, watts: float | None = 22080.0) -> dict:
    return {"id": cid, "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": power_type, "max_voltage": 230,
            "max_amperage": amps, "max_electric_power": watts, "last_updated": "2025-05-06T12:00:00Z"}


def location(lid: str, *evses: tuple[str, list], party_id: str = "CPO") -> dict:
    return {"country_code": "NL", "party_id": party_id, "id": lid, "publish": True, "address": "Dam 1",
            "city": "Amsterdam", "country": "NLD", "time_zone": "Europe/Amsterdam",
            "coordinates": {"latitude": "52.37", "longitude": "4.89"}, "last_updated": "2025-05-06T12:00:00Z",
            "evses": [{"uid": uid, "status": "AVAILABLE", "connectors": conns, "last_updated": "2025-05-06T12:00:00Z"}
                      for uid, conns in evses]}


LOCATIONS = [
    location("L1", ("E1", [connector("1", "AC_3_PHASE")]), ("E2", [connector("1", "AC_1_PHASE", 16.0, 3680.0)])),
    location("L2", ("E3", [connector("1", "AC_4_PHASE_FROM_THE_FUTURE", None, None)])),  # unknown: stored as such
    location("L3", ("E4", [connector("1", "DC", 125.0, 50000.0)])),
    location("L4", ("E5", [connector("1", "AC_3_PHASE")]), party_id="XYZ"),  # not this party's identity
    {"id": "L5", "evses": "not a list", "country_code": "NL", "party_id": "CPO"},  # invalid
]


def serve_locations(server, items: list, page: int = 2) -> None:
    def handler(call):
        offset = int(call.query.get("offset", 0))
        headers = {"X-Total-Count": str(len(items)), "X-Limit": str(page)}
        if offset + page < len(items):
            headers["Link"] = f'<{server.url}{call.path}?offset={offset + page}&limit={page}>; rel="next"'
        return ok(items[offset:offset + page], headers=headers)

    server.route("GET", "/ocpi/2.2.1/locations/", handler)


@pytest.fixture
def offering(party, cpo_server):
    party.endpoints = [*party.endpoints, {"identifier": "locations", "role": "SENDER",
                                          "url": f"{cpo_server.url}/ocpi/2.2.1/locations/"}]
    party.save()
    return party


def test_locations_are_pulled_page_by_page_and_bound_active_sessions(ocpi, offering, cpo_server):
    ocpi("PUT", "2.2.1/sessions/NL/CPO/S1", session_payload(x_phase_currents_a=..., location_id="l1", evse_uid="e2"))
    serve_locations(cpo_server, LOCATIONS)
    report = pull_locations(offering)
    assert (report.locations, report.connectors, report.invalid, report.refused) == (5, 4, 1, 1)
    assert report.unknown_power_types == 1 and report.sessions_updated == 1
    assert len([c for c in cpo_server.calls if c.method == "GET"]) == 3  # pages of 2: 2 + 2 + 1
    assert all(c.path == "/ocpi/2.2.1/locations/" for c in cpo_server.calls)  # the URL as advertised
    stored = {c.evse_uid: (c.power_type, c.power_type_raw, c.max_amperage_a) for c in Connector.objects.all()}
    assert stored == {"E1": ("AC_3_PHASE", "", 32.0), "E2": ("AC_1_PHASE", "", 16.0),
                      "E3": ("", "AC_4_PHASE_FROM_THE_FUTURE", None), "E4": ("DC", "", 125.0)}
    session = Session.objects.get()  # matched without case: l1/e2 against L1/E2
    assert (session.phases, session.phases_source, session.max_current_a, session.max_power_kw) == (
        1, "connector", 16.0, 3.68)
    pull_locations(offering)  # a second pull updates in place
    assert Connector.objects.count() == 4


def test_a_party_without_the_module_is_not_asked(party, cpo_server):
    assert pull_locations(party).offered is False
    assert cpo_server.calls == []


def test_the_daily_refresh_is_on_the_beat():
    assert tasks.pull_locations.name == "ocpi_client.pull_locations"  # the beat (settings) names this task
    entry = app.conf.beat_schedule["ocpi-pull-locations"]
    assert entry["task"] == "ocpi_client.pull_locations" and entry["schedule"] == 300.0


def test_a_new_party_is_due_at_once_and_then_daily(offering, clock):
    assert locations_due() == [offering.pk]  # never pulled
    OcpiParty.objects.filter(pk=offering.pk).update(locations_pulled_at=clock.now() - timedelta(hours=23))
    assert locations_due() == []
    OcpiParty.objects.filter(pk=offering.pk).update(locations_pulled_at=clock.now() - timedelta(hours=24))
    assert locations_due() == [offering.pk]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=25,
)
mutated = st.builds(
    lambda evse, conn: location("L1", ("E1", [{**connector("1", "AC_3_PHASE"), **conn}]))
    | ({"evses": evse} if evse is not ... else {}),
    st.just(...) | json_values,
    st.dictionaries(st.sampled_from(["id", "power_type", "max_amperage", "max_electric_power", "last_updated"]),
                    json_values, max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(item=json_values | mutated)
def test_any_location_json_is_parsed_or_refused_with_2001(item):
    try:
        rows = parse_location(item)
    except OcpiValidationError as exc:
        assert exc.status_code == 2001
        return
    for row in rows:
        assert row["power_type"] in {"", "AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC"}
        assert row["max_amperage_a"] is None or row["max_amperage_a"] >= 0
