"""The live CPO over loopback: registration both ways, profile round trip, pagination, faults."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
import requests

from simulator import ocpi
from simulator.config import Faults, SimConfig
from simulator.server import SimulatorServer
from smatch.clock import FrozenClock
from tests.simulator.conftest import START
from tests.simulator.fake_scsp import FakeScsp

CFG = SimConfig(points=40, seed=4, start=START, duration_s=4 * 3600)


@pytest.fixture
def scsp():
    fake = FakeScsp()
    fake.start()
    yield fake
    fake.stop()


def _start(config=CFG):
    clock = FrozenClock(config.start)
    server = SimulatorServer(config, clock, token_a="cpo-token-a", result_delay_s=0.05)
    server.start_in_thread(0)
    return server, clock


@pytest.fixture
def sim(scsp):
    server, clock = _start()
    server.register_with(f"{scsp.base_url}/versions", scsp.token_a)
    clock.advance(60)
    server.sync()
    yield server, clock, scsp
    server.stop()


def _headers(scsp: FakeScsp) -> dict[str, str]:
    return {"Authorization": ocpi.auth_header(scsp.token_from_cpo)}


def _profile_body(scsp: FakeScsp, call_id: str, limit_a: float = 8.0, duration_s: int = 600, start=None) -> dict:
    cp = {"charging_rate_unit": "A", "duration": duration_s,
          "charging_profile_period": [{"start_period": 0, "limit": limit_a}]}
    if start is not None:
        cp["start_date_time"] = ocpi.fmt_dt(start)
    return {"response_url": f"{scsp.base_url}/2.2.1/chargingprofiles/results/{call_id}", "charging_profile": cp}


def test_simulator_registers_with_the_scsp_and_pushes_put_then_patch(sim):
    server, clock, scsp = sim
    assert server.peer.token_theirs == scsp.token_c and scsp.cpo_versions_url.endswith("/ocpi/versions")
    clock.advance(400)
    server.sync()
    assert server.wait_for(lambda: any(m == "PATCH" for m, _, _ in scsp.pushes))
    first = {}
    for method, sid, body in scsp.pushes:
        first.setdefault(sid, (method, body))
    method, body = next(iter(first.values()))
    assert method == "PUT"
    for key in ("country_code", "party_id", "id", "start_date_time", "kwh", "cdr_token", "auth_method",
                "location_id", "evse_uid", "connector_id", "currency", "charging_periods", "status", "last_updated"):
        assert key in body
    patch = next(b for m, _, b in scsp.pushes if m == "PATCH")
    assert set(patch) >= {"kwh", "status", "last_updated", "charging_periods"}
    assert len(patch["x_phase_currents_a"]) == 3


def test_scsp_registers_with_the_simulator_using_token_a(scsp):
    server, _ = _start()
    try:
        token_b = "scsp-token-b"
        scsp.token_c = token_b  # the fake answers the simulator's calls with this token
        hdr = {"Authorization": ocpi.auth_header("cpo-token-a")}
        versions = requests.get(f"{server.base_url}/versions", headers=hdr, timeout=5).json()["data"]
        assert versions == [{"version": "2.2.1", "url": f"{server.base_url}/2.2.1"}]
        # Token A does not open other modules.
        assert requests.get(f"{server.base_url}/2.2.1/sessions", headers=hdr, timeout=5).status_code == 401
        body = {"token": token_b, "url": f"{scsp.base_url}/versions", "roles": [
            {"role": "OTHER", "business_details": {"name": "x"}, "party_id": "SCS", "country_code": "NL"}]}
        reply = requests.post(f"{server.base_url}/2.2.1/credentials", json=body, headers=hdr, timeout=5).json()
        assert reply["status_code"] == 1000
        token_c = reply["data"]["token"]
        assert reply["data"]["roles"][0]["role"] == "CPO"
        scsp.cpo_roles = reply["data"]["roles"]
        ok = {"Authorization": ocpi.auth_header(token_c)}
        pull = f"{server.base_url}/2.2.1/sessions?date_from={ocpi.fmt_dt(START)}"
        assert requests.get(pull, headers=ok, timeout=5).json()["status_code"] == 1000
        # Registering twice is refused with 405; token A is spent.
        assert requests.post(f"{server.base_url}/2.2.1/credentials", json=body, headers=ok,
                             timeout=5).status_code == 405
        assert requests.get(f"{server.base_url}/versions", headers=hdr, timeout=5).status_code == 401
    finally:
        server.stop()


def test_put_profile_sync_response_async_result_and_8_a_in_force_until_duration_ends(sim):
    server, clock, scsp = sim
    fleet = server.fleet

    def current_a(sid: str) -> float:
        return server.call(lambda: fleet.current_a(int(fleet.pop.point[fleet.session_index(sid)])))
    sid = next(s for s in server.ongoing_session_ids() if current_a(s) > 8)
    r = requests.put(f"{server.base_url}/2.2.1/chargingprofiles/{sid}", headers=_headers(scsp), timeout=5,
                     json=_profile_body(scsp, "call-1", start=clock.now()))
    assert r.status_code == 200
    assert r.json()["status_code"] == 1000 and r.json()["data"] == {"result": "ACCEPTED", "timeout": 30}
    assert server.wait_for(lambda: ("call-1", {"result": "ACCEPTED"}) in scsp.results)
    clock.advance(5)  # the EVSE applies it after apply_delay_s (2 s)
    server.sync()
    assert server.limit_in_force_a(sid) == 8.0
    point = server.call(lambda: int(server.fleet.pop.point[server.fleet.session_index(sid)]))
    assert server.call(lambda: server.fleet.current_a(point)) <= 8.0
    clock.advance(600)  # duration elapsed: back to normal
    server.sync()
    assert server.limit_in_force_a(sid) is None


def test_delete_and_get_active_profile_post_their_results(sim):
    server, clock, scsp = sim
    sid = server.ongoing_session_ids()[0]
    base = f"{server.base_url}/2.2.1/chargingprofiles/{sid}"
    requests.put(base, headers=_headers(scsp), json=_profile_body(scsp, "p", start=clock.now()), timeout=5)
    clock.advance(3)
    server.sync()
    results = f"{scsp.base_url}/2.2.1/chargingprofiles/results"
    r = requests.get(base, params={"duration": 900, "response_url": f"{results}/g"}, headers=_headers(scsp), timeout=5)
    assert r.json()["data"]["result"] == "ACCEPTED"
    assert server.wait_for(lambda: any(c == "g" for c, _ in scsp.results))
    got = next(b for c, b in scsp.results if c == "g")
    assert got["profile"]["charging_profile"]["charging_profile_period"][0]["limit"] == 8.0
    r = requests.delete(base, params={"response_url": f"{scsp.base_url}/2.2.1/chargingprofiles/results/d"},
                        headers=_headers(scsp), timeout=5)
    assert r.json()["data"]["result"] == "ACCEPTED"
    assert server.wait_for(lambda: ("d", {"result": "ACCEPTED"}) in scsp.results)
    clock.advance(3)
    server.sync()
    assert server.limit_in_force_a(sid) is None


def test_unknown_session_and_bad_body(sim):
    server, _, scsp = sim
    url = f"{server.base_url}/2.2.1/chargingprofiles/NOPE"
    r = requests.put(url, headers=_headers(scsp), json=_profile_body(scsp, "x"), timeout=5)
    assert r.json()["data"]["result"] == "UNKNOWN_SESSION"
    r = requests.put(url, headers=_headers(scsp), data=b"{not json", timeout=5)
    assert r.status_code == 400
    sid = server.ongoing_session_ids()[0]
    r = requests.put(f"{server.base_url}/2.2.1/chargingprofiles/{sid}", headers=_headers(scsp),
                     json={"response_url": "http://x"}, timeout=5)
    assert r.json()["status_code"] == 2001
    assert requests.get(f"{server.base_url}/2.2.1/sessions", timeout=5).status_code == 401


def test_a_base64_platform_refuses_the_raw_token(sim):
    """OCPI 2.2.1 (transport_and_format, Authorization header): the token travels base64-encoded;
    this platform reads only that form, so a raw token is a 401 like an unknown one."""
    server, _, scsp = sim
    raw = {"Authorization": f"Token {scsp.token_from_cpo}"}
    assert requests.get(f"{server.base_url}/2.2.1/sessions", headers=raw, timeout=5).status_code == 401
    assert requests.get(f"{server.base_url}/2.2.1/sessions", headers=_headers(scsp), timeout=5).status_code == 200
    assert base64.b64decode(ocpi.auth_header("abc")[6:]) == b"abc"
    assert not scsp.violations


def test_sessions_pagination_follows_link_headers(sim):
    server, _, scsp = sim
    total = len(server.sessions)
    assert total > 5
    url, seen, pages = f"{server.base_url}/2.2.1/sessions?date_from={ocpi.fmt_dt(START)}&limit=4", [], 0
    while url:
        r = requests.get(url, headers=_headers(scsp), timeout=5)
        assert r.headers["X-Total-Count"] == str(total) and r.headers["X-Limit"] == "100"
        seen += [s["id"] for s in r.json()["data"]]
        url = r.links.get("next", {}).get("url")
        pages += 1
        if url:
            assert "date_from=" in url
    assert pages == -(-total // 4)
    assert len(seen) == len(set(seen)) == total
    # date_to is exclusive: nothing updated before the run start
    r = requests.get(f"{server.base_url}/2.2.1/sessions", headers=_headers(scsp), timeout=5,
                     params={"date_from": "2025-01-01T00:00:00Z", "date_to": ocpi.fmt_dt(START)})
    assert r.json()["data"] == [] and r.headers["X-Total-Count"] == "0"


@pytest.mark.parametrize("knob,result", [("rejected_share", "REJECTED"), ("too_often_share", "TOO_OFTEN"),
                                         ("not_supported_share", "NOT_SUPPORTED")])
def test_response_fault_knobs(scsp, knob, result):
    server, clock = _start(replace(CFG, faults=Faults(**{knob: 1.0})))
    try:
        server.register_with(f"{scsp.base_url}/versions", scsp.token_a)
        clock.advance(10)
        server.sync()
        sid = server.ongoing_session_ids()[0]
        r = requests.put(f"{server.base_url}/2.2.1/chargingprofiles/{sid}", headers=_headers(scsp),
                         json=_profile_body(scsp, "f"), timeout=5)
        assert r.json()["data"]["result"] == result
        assert server.limit_in_force_a(sid) is None
    finally:
        server.stop()


def test_http_5xx_and_missing_async_result_knobs(scsp):
    server, clock = _start(replace(CFG, faults=Faults(http_5xx_share=1.0)))
    try:
        server.register_with(f"{scsp.base_url}/versions", scsp.token_a)
        clock.advance(10)
        server.sync()
        sid = server.ongoing_session_ids()[0]
        r = requests.put(f"{server.base_url}/2.2.1/chargingprofiles/{sid}", headers=_headers(scsp),
                         json=_profile_body(scsp, "e"), timeout=5)
        assert r.status_code == 503 and r.json()["status_code"] == 3000
    finally:
        server.stop()
