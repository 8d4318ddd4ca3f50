"""A standard CPO platform, end to end on real services: a hub with two CPO identities that wants raw
tokens, lower-cases CiStrings in bodies, serves Sessions (kWh only) and Locations as Sender; we
register with it, a real Celery worker pulls both, and planning caps from that data alone.

Actors: "Hub" (HUB NL*HUB, CPO NL*CPA, CPO DE*CPB) on a loopback HTTP server; us on live_server;
a Celery worker process on Redis; PostgreSQL.
"""

from __future__ import annotations

import base64
import io
from datetime import timedelta

import pytest
from django.core.management import call_command

from flexibility.services import activations
from ocpi import tasks
from ocpi.models import Connector, OcpiParty, OcpiPartyRole, Session
from smatch import clock
from tests.ocpi.loopback import LoopbackServer, ok

from .conftest import wait_for

pytestmark = pytest.mark.services

TOKEN_A, TOKEN_C = "hub-gave-us-token-a", "hub-token-c-for-us"


def stamp(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def connector(power_type: str) -> dict:
    return {"id": "1", "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": power_type, "max_voltage": 230,
            "max_amperage": 32, "last_updated": "2025-05-06T12:00:00Z"}


def location(cc: str, pid: str, lid: str, evse: str, power_type: str) -> dict:
    return {"country_code": cc.lower(), "party_id": pid.lower(), "id": lid.lower(), "publish": True,
            "address": "Dam 1", "city": "Amsterdam", "country": "NLD", "time_zone": "Europe/Amsterdam",
            "coordinates": {"latitude": "52.37", "longitude": "4.89"}, "last_updated": "2025-05-06T12:00:00Z",
            "evses": [{"uid": evse.lower(), "status": "CHARGING", "connectors": [connector(power_type)],
                       "last_updated": "2025-05-06T12:00:00Z"}]}


def session(cc: str, pid: str, sid: str, lid: str, evse: str, kwh: float, updated) -> dict:
    """Standard data only: kwh and a closed ENERGY/TIME period; no x_ fields, lower-cased ids."""
    start = updated - timedelta(minutes=5)
    return {"country_code": cc.lower(), "party_id": pid.lower(), "id": sid.lower(),
            "start_date_time": stamp(updated - timedelta(minutes=30)), "kwh": kwh,
            "cdr_token": {"country_code": cc, "party_id": pid, "uid": "t1", "type": "RFID", "contract_id": "c1"},
            "auth_method": "WHITELIST", "location_id": lid.lower(), "evse_uid": evse.lower(), "connector_id": "1",
            "currency": "EUR", "status": "ACTIVE", "last_updated": stamp(updated),
            "charging_periods": [{"start_date_time": stamp(start), "dimensions": [
                {"type": "ENERGY", "volume": 0.46}, {"type": "TIME", "volume": 5 / 60}]}]}


class HubPlatform:
    """The hub's OCPI side: raw tokens only, pages of one object, two CPO identities."""

    def __init__(self, server: LoopbackServer, ours: str) -> None:
        self.server, self.ours = server, ours
        now = clock.now().replace(microsecond=0)
        self.sessions = [session("NL", "CPA", "S1", "L1", "E1", 2.76, now - timedelta(minutes=1)),
                         session("DE", "CPB", "S2", "L2", "E2", 2.76, now - timedelta(minutes=1))]
        self.locations = [location("NL", "CPA", "L1", "E1", "AC_1_PHASE"),
                          location("DE", "CPB", "L2", "E2", "AC_3_PHASE")]
        url = server.url
        endpoints = [{"identifier": i, "role": r, "url": f"{url}/2.2.1/{i}/"} for i, r in (
            ("credentials", "RECEIVER"), ("sessions", "SENDER"), ("locations", "SENDER"),
            ("chargingprofiles", "RECEIVER"))]
        server.route("GET", "/versions", self.guard(lambda c: ok([{"version": "2.2.1", "url": f"{url}/2.2.1"}])))
        server.route("GET", "/2.2.1/sessions/", self.guard(lambda c: self.page(c, self.sessions)))
        server.route("GET", "/2.2.1/locations/", self.guard(lambda c: self.page(c, self.locations)))
        server.route("POST", "/2.2.1/credentials/", self.guard(lambda c: ok({
            "token": TOKEN_C, "url": f"{url}/versions", "roles": [
                {"role": "HUB", "business_details": {"name": "Hub"}, "party_id": "HUB", "country_code": "NL"},
                {"role": "CPO", "business_details": {"name": "A"}, "party_id": "CPA", "country_code": "NL"},
                {"role": "CPO", "business_details": {"name": "B"}, "party_id": "CPB", "country_code": "DE"}]})))
        server.route("GET", "/2.2.1", self.guard(lambda c: ok({"version": "2.2.1", "endpoints": endpoints})))

    def guard(self, handler):
        def guarded(call):
            token = call.headers.get("Authorization", "")
            # Token A for registration, then token C; only ever raw (base64 is 401 here).
            return handler(call) if token in (f"Token {TOKEN_A}", f"Token {TOKEN_C}") else ok(None, 2000, 401)
        return guarded

    def page(self, call, items: list):
        offset = int(call.query.get("offset", 0))
        headers = {"X-Total-Count": str(len(items)), "X-Limit": "1"}
        if offset + 1 < len(items):
            headers["Link"] = f'<{self.server.url}{call.path}?offset={offset + 1}&limit=1>; rel="next"'
        return ok(items[offset:offset + 1], headers=headers)


def test_a_standard_hub_is_registered_pulled_and_steered(celery_worker_process, live_server, settings):
    settings.OCPI_BASE_URL = f"{live_server.url}/ocpi"
    with LoopbackServer() as server:
        HubPlatform(server, settings.OCPI_BASE_URL)
        call_command("ocpi_register", f"{server.url}/versions", TOKEN_A, "--name", "Hub", stdout=io.StringIO())
        party = OcpiParty.objects.get()
        assert (party.status, party.token_encoding) == ("REGISTERED", "raw")
        assert sorted(OcpiPartyRole.objects.values_list("country_code", "ocpi_party_id")) == [
            ("DE", "CPB"), ("NL", "CPA"), ("NL", "HUB")]

        tasks.pull_locations.delay()
        wait_for(lambda: Connector.objects.count() == 2, 30, "the Locations pull on the worker")
        tasks.pull_sessions.delay()
        wait_for(lambda: Session.objects.count() == 2, 30, "the sessions pull on the worker")
        assert not [c for c in server.calls if c.headers.get("Authorization", "").startswith(
            "Token " + base64.b64encode(TOKEN_C.encode()).decode())]  # never base64 after registration

    s1, s2 = Session.objects.get(country_code="NL"), Session.objects.get(country_code="DE")
    # A first state, standard data: 0.46 kWh over 5 min = 5.52 kW from the period's ENERGY / TIME.
    assert s1.last_power_kw == pytest.approx(5.52) and s2.last_power_kw == pytest.approx(5.52)
    assert (s1.phases, s1.phases_source, s1.current_source) == (1, "connector", "kwh")  # AC_1_PHASE: 24 A
    assert (s2.phases, s2.phases_source, s2.current_source) == (3, "connector", "assumed")  # at most 3 phases

    plan = activations.preview()
    caps = {c.session_pk: c for c in plan.caps}
    # S1: 24 A on its one phase -> shed 5.52 - 1.84 = 3.68 kW, a point.
    assert (caps[s1.pk].expected_kw, caps[s1.pk].expected_kw_high) == (pytest.approx(3.68), pytest.approx(3.68))
    # S2: 24 A on 1 phase, 12 A on 2, 8 A on 3 -> capped (it could be above 8 A), shed 0 .. 3.68 kW.
    # The range is 0 .. 3.68; the best estimate weighs the phase counts (planning.phase_weights), so it
    # lies strictly inside.
    s2_cap = caps[s2.pk]
    assert (s2_cap.expected_kw_low, s2_cap.expected_kw_high) == (pytest.approx(0.0), pytest.approx(3.68))
    assert 0.0 < s2_cap.expected_kw < 3.68
    assert plan.by_source == {"kwh": 1, "assumed": 1}
