"""Behaviour knobs over real HTTP against the strict fake SCSP, and the ground truth they leave.

Hand-made fleet as in test_profiles: A (point 0, 3-phase 32 A EV, alone) draws 16 A = 11.04 kW,
B (point 2, 1-phase 16 A EV, alone) draws 16 A = 3.68 kW. An 8 A cap on A is 8 x 3 x 230 W = 5.52 kW.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from simulator import ocpi
from simulator.__main__ import _config, build_parser
from simulator.config import Faults, SimConfig, with_knobs
from simulator.population import single_phase_stations
from tests.simulator.conftest import START, population
from tests.simulator.fake_scsp import FakeScsp
from tests.simulator.helpers import HAND, as_scsp, behave, profile_body, start

A, B, C = "S7-0000000", "S7-0000001", "S7-0000002"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def scsp():
    fake = FakeScsp()
    fake.start()
    yield fake
    fake.stop()


def hand_fleet(*extra: dict):
    return population({"point": 0, "phases": 3, "max_da": 320}, {"point": 2, "phases": 1, "max_da": 160}, *extra)


def put(server, scsp, sid, call_id="c", to=("NL", "SIM")) -> str:
    """An 8 A SetChargingProfile for 600 s; returns the synchronous ChargingProfileResponse result."""
    r = requests.put(f"{server.base_url}/2.2.1/chargingprofiles/{sid}", headers=as_scsp(scsp, to=to), timeout=5,
                     json=profile_body(scsp, call_id))
    return r.json()["data"]["result"]


def step(server, clock, seconds: int) -> None:
    clock.advance(seconds)
    server.sync()


def amps(server, sid: str) -> float:
    def inner():
        return server.fleet.current_a(int(server.fleet.pop.point[server.fleet.session_index(sid)]))
    return server.call(inner)


def test_sessions_pull_requires_date_from(scsp):
    server, _ = start(scsp, HAND, hand_fleet())
    try:
        r = requests.get(f"{server.base_url}/2.2.1/sessions", headers=as_scsp(scsp), timeout=5)
        assert r.json()["status_code"] == 2001 and "data" not in r.json()
    finally:
        server.stop()


# --- the simulator owes the product nothing --------------------------------------------------------
def test_simulator_imports_nothing_of_the_product():
    product = {"smatch", "ocpi", "flexibility", "settlement", "django"}
    for path in sorted((ROOT / "simulator").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in product, f"{path.name} imports {name}"


# --- knobs as written in the CLI, the config and the test environment -----------------------------
def test_cli_flags_reach_the_config():
    args = build_parser().parse_args(
        ["serve", "--profile", "standard", "--hub", "--raw-token", "--lowercase-ids", "--check-routing",
         "--active-profile-push", "--no-locations", "--result-attempts", "3", "--too-often-first-n", "2",
         "--too-often-min-interval-s", "1.5", "--no-resume", "0.1", "--non-responding", "0.05",
         "--no-async-result", "1", "--share-single-phase-stations", "0.2"])
    cfg = _config(args)
    b = cfg.behaviour
    assert (b.profile, b.hub, b.token_encoding, b.lowercase_ids, b.check_routing, b.active_profile_push) == (
        "standard", True, "raw", True, True, True)
    assert (b.locations, b.result_attempts, b.too_often_first_n, b.too_often_min_interval_s) == (False, 3, 2, 1.5)
    assert (cfg.faults.no_resume_share, cfg.faults.non_responding_share, cfg.faults.no_async_result_share) == (
        0.1, 0.05, 1.0)
    assert cfg.share_single_phase_stations == 0.2
    default = _config(build_parser().parse_args(["serve"]))
    assert default.behaviour.profile == "extension" and default.behaviour.result_attempts == 1


def test_with_knobs_reads_the_env_spelling_and_refuses_typos():
    cfg = with_knobs(HAND, "power-only", "hub, raw-token,result-attempts=3,non-responding=0.05,no-async-result")
    assert cfg.behaviour.profile == "power-only" and cfg.behaviour.hub and cfg.behaviour.token_encoding == "raw"
    assert cfg.behaviour.result_attempts == 3
    assert cfg.faults.non_responding_share == 0.05 and cfg.faults.no_async_result_share == 1.0
    assert with_knobs(HAND, None, "").behaviour == HAND.behaviour
    with pytest.raises(ValueError, match="unknown simulator knob"):
        with_knobs(HAND, None, "lowercase")
    with pytest.raises(ValueError, match="profile"):
        with_knobs(HAND, "kwh-only")


# --- tokens -----------------------------------------------------------------------------------------
def test_raw_token_platform_registers_raw_and_refuses_base64():
    fake = FakeScsp(raw_token=True)  # reads only raw tokens: a base64 registration would be a 401
    fake.start()
    server, clock = start(fake, behave(HAND, token_encoding="raw"), hand_fleet())
    try:
        assert server.peer.token_theirs == fake.token_c
        step(server, clock, 1)
        assert server.wait_for(lambda: len(fake.pushes) >= 2)
        url = f"{server.base_url}/2.2.1/sessions?date_from={ocpi.fmt_dt(START)}"
        assert requests.get(url, headers=as_scsp(fake, encoding="base64"), timeout=5).status_code == 401
        assert requests.get(url, headers=as_scsp(fake, encoding="raw"), timeout=5).status_code == 200
        assert not fake.violations
    finally:
        server.stop()
        fake.stop()


# --- async results -----------------------------------------------------------------------------------
def test_results_are_posted_once_by_default_and_retried_only_when_asked(scsp):
    scsp.result_http_status = 503
    for attempts in (1, 3):
        scsp.result_attempts = 0
        server, clock = start(scsp, behave(HAND, result_attempts=attempts), hand_fleet())
        try:
            step(server, clock, 1)
            assert put(server, scsp, A) == "ACCEPTED"
            # Retries back off 0.5 s then 1 s: 3 attempts need ~1.6 s; a 4th would come after 2 s more.
            assert server.wait_for(lambda a=attempts: scsp.result_attempts >= a, timeout=5)
            assert not server.wait_for(lambda a=attempts: scsp.result_attempts > a, timeout=2.5)
            assert server.stats.results_failed == 1
        finally:
            server.stop()


def test_no_async_results(scsp):
    server, clock = start(scsp, with_knobs(HAND, None, "no-async-result"), hand_fleet())
    try:
        step(server, clock, 1)
        assert put(server, scsp, A) == "ACCEPTED"
        assert not server.wait_for(lambda: scsp.result_attempts > 0, timeout=1)
        step(server, clock, 5)
        assert server.limit_in_force_a(A) == 8.0  # the EVSE applied it all the same
    finally:
        server.stop()


# --- EVSEs that ignore limits, EVs that do not resume --------------------------------------------
def test_evse_that_ignores_the_limit_accepts_and_keeps_full_power(scsp):
    server, clock = start(scsp, replace(HAND, faults=Faults(non_responding_share=1.0)), hand_fleet())
    try:
        step(server, clock, 10)
        assert put(server, scsp, A) == "ACCEPTED"
        assert server.wait_for(lambda: ("c", {"result": "ACCEPTED"}) in scsp.results)
        step(server, clock, 10)
        assert amps(server, A) == 16.0
        assert server.session_truth(A).evse_ignored_limit and not server.session_truth(B).evse_ignored_limit
        assert server.drew_above_a(A, clock.now()) and A in server.sessions_above_a(clock.now())
        assert server.limit_in_force_a(A) is None
    finally:
        server.stop()


@pytest.mark.parametrize(("share", "after_a", "not_resumed_s"), [(1.0, 0.0, 70), (0.0, 16.0, None)])
def test_ev_that_does_not_resume_after_the_limit_ends(scsp, share, after_a, not_resumed_s):
    """Profile from t=10 s for 60 s; the EVSE applies it at 10 + 2 s (apply delay); it ends at 70 s."""
    server, clock = start(scsp, replace(HAND, faults=Faults(no_resume_share=share)), hand_fleet())
    try:
        step(server, clock, 10)
        r = requests.put(f"{server.base_url}/2.2.1/chargingprofiles/{A}", headers=as_scsp(scsp), timeout=5,
                         json=profile_body(scsp, "n", duration_s=60, start=clock.now()))
        assert r.json()["data"]["result"] == "ACCEPTED"
        step(server, clock, 20)
        assert amps(server, A) == 8.0
        step(server, clock, 50)
        assert amps(server, A) == after_a
        assert server.session_truth(A).not_resumed_s == not_resumed_s
        assert amps(server, B) == 16.0 and server.session_truth(B).not_resumed_s is None
    finally:
        server.stop()


# --- TOO_OFTEN bursts ---------------------------------------------------------------------------------
def test_too_often_for_the_first_requests_of_each_session(scsp):
    server, clock = start(scsp, behave(HAND, too_often_first_n=2), hand_fleet())
    try:
        step(server, clock, 1)
        assert [put(server, scsp, A) for _ in range(3)] == ["TOO_OFTEN", "TOO_OFTEN", "ACCEPTED"]
        assert put(server, scsp, B) == "TOO_OFTEN"
        assert [(sid, result) for sid, _, _, result in server.stats.profile_log] == [
            (A, "TOO_OFTEN"), (A, "TOO_OFTEN"), (A, "ACCEPTED"), (B, "TOO_OFTEN")]
    finally:
        server.stop()


def test_too_often_when_a_session_is_asked_again_too_soon(scsp):
    server, clock = start(scsp, behave(HAND, too_often_min_interval_s=30.0), hand_fleet())
    try:
        step(server, clock, 1)
        assert [put(server, scsp, A), put(server, scsp, A), put(server, scsp, B)] == [
            "ACCEPTED", "TOO_OFTEN", "ACCEPTED"]
    finally:
        server.stop()


# --- routing headers and the Hub ------------------------------------------------------------------
def test_routing_headers_are_checked_and_answered(scsp):
    server, clock = start(scsp, behave(HAND, check_routing=True), hand_fleet())
    try:
        step(server, clock, 1)
        url = f"{server.base_url}/2.2.1/sessions?date_from={ocpi.fmt_dt(START)}"
        good = as_scsp(scsp)
        r = requests.get(url, headers=good, timeout=5)
        assert r.status_code == 200
        assert (r.headers["OCPI-to-party-id"], r.headers["OCPI-from-party-id"]) == ("SCS", "SIM")
        for wrong in ({"OCPI-to-party-id": "XXX"}, {"OCPI-from-party-id": "ABC"}):
            r = requests.get(url, headers={**good, **wrong}, timeout=5)
            assert (r.status_code, r.json()["status_code"]) == (400, 2001)
        bare = {k: v for k, v in good.items() if not k.startswith("OCPI-")}
        assert requests.get(url, headers=bare, timeout=5).status_code == 400
        lower = {**good, "OCPI-to-party-id": "sim", "OCPI-from-party-id": "scs"}  # CiStrings
        assert requests.get(url, headers=lower, timeout=5).status_code == 200
        assert server.stats.routing_refused == 3
        assert server.wait_for(lambda: len(scsp.pushes) >= 2) and not scsp.violations  # its own requests are right
    finally:
        server.stop()


def test_hub_with_two_cpo_roles(scsp):
    server, clock = start(scsp, behave(HAND, hub=True, check_routing=True), hand_fleet())
    try:
        assert [(r["role"], r["party_id"]) for r in scsp.cpo_roles] == [("CPO", "SIM"), ("CPO", "SI2"), ("HUB", "HUB")]
        step(server, clock, 1)
        assert server.wait_for(lambda: len(scsp.pushes) >= 2)
        assert not scsp.violations
        assert set(scsp.sessions) == {("NL", "SIM", A), ("NL", "SI2", B)}  # B's station is the second CPO's
        froms = {h["OCPI-from-party-id"] for h in scsp.push_headers}
        assert froms == {"SIM", "SI2"}
        url = f"{server.base_url}/2.2.1/sessions?date_from={ocpi.fmt_dt(START)}"
        assert [s["id"] for s in requests.get(url, headers=as_scsp(scsp, to=("NL", "SI2")), timeout=5).json()["data"]
                ] == [B]
        assert {s["party_id"] for s in requests.get(url, headers=as_scsp(scsp, to=("NL", "HUB")), timeout=5).json()[
            "data"]} == {"SIM", "SI2"}
        assert put(server, scsp, A, to=("NL", "SI2")) == "UNKNOWN_SESSION"  # routed to the CPO that lacks it
        assert put(server, scsp, A, to=("NL", "SIM")) == "ACCEPTED"
        r = requests.get(url, headers=as_scsp(scsp, to=("NL", "XYZ")), timeout=5)
        assert (r.status_code, r.json()["status_code"]) == (404, 4001)
    finally:
        server.stop()


# --- ActiveChargingProfile PUT to the Sender ----------------------------------------------------
@pytest.mark.parametrize("slash", [True, False])
def test_active_profile_is_put_to_url_plus_session_id(slash):
    fake = FakeScsp(sender_url_slash=slash)
    fake.start()
    server, clock = start(fake, behave(HAND, active_profile_push=True), hand_fleet())
    try:
        step(server, clock, 1)
        assert put(server, fake, A) == "ACCEPTED"
        if slash:
            assert server.wait_for(lambda: len(fake.active_profiles) == 1)
            tail, body = fake.active_profiles[0]
            assert tail == A and body["charging_profile"]["charging_profile_period"][0]["limit"] == 8.0
        else:  # `{url}{session_id}` without a slash: the spec's concatenation, whatever the URL looks like
            assert server.wait_for(lambda: ("PUT", f"/ocpi/2.2.1/chargingprofiles{A}") in fake.unmatched)
            assert not fake.active_profiles
    finally:
        server.stop()
        fake.stop()


def test_no_active_profile_push_by_default(scsp):
    server, clock = start(scsp, HAND, hand_fleet())
    try:
        step(server, clock, 1)
        assert put(server, scsp, A) == "ACCEPTED"
        assert server.wait_for(lambda: scsp.results) and not scsp.active_profiles
    finally:
        server.stop()


# --- Locations -------------------------------------------------------------------------------------
def test_locations_are_paginated_and_match_the_stations(scsp):
    cfg = SimConfig(points=40, seed=4, start=START, duration_s=4 * 3600, share_single_phase_stations=0.5)
    server, clock = start(scsp, cfg)
    try:
        step(server, clock, 60)
        url, locations = f"{server.base_url}/2.2.1/locations?limit=7", []
        while url:
            r = requests.get(url, headers=as_scsp(scsp), timeout=5)
            assert r.headers["X-Total-Count"] == "20" and r.headers["X-Limit"] == "100"
            locations += r.json()["data"]
            url = r.links.get("next", {}).get("url")
        assert [loc["id"] for loc in locations] == [f"LOC{i:05d}" for i in range(20)]
        single = single_phase_stations(cfg)
        assert 0 < single.sum() < 20
        connectors = {}
        for i, loc in enumerate(locations):
            for evse in loc["evses"]:
                conn = evse["connectors"][0]
                phases = 1 if single[i] else 3
                assert conn["power_type"] == ("AC_1_PHASE" if single[i] else "AC_3_PHASE")
                assert (conn["max_amperage"], conn["max_electric_power"]) == (16, 230 * 16 * phases)
                connectors[(loc["id"], evse["uid"])] = phases
        pop = server.fleet.pop
        for rec in server.sessions.values():
            body = server.session_object(rec)
            assert (body["location_id"], body["evse_uid"]) in connectors
            if connectors[(body["location_id"], body["evse_uid"])] == 1:
                assert pop.phases[rec.index] == 1  # a 1-phase socket charges every EV on one phase
        r = requests.get(f"{server.base_url}/2.2.1/locations/loc00003", headers=as_scsp(scsp), timeout=5)
        assert r.json()["data"]["id"] == "LOC00003"
        r = requests.get(f"{server.base_url}/2.2.1/locations/NOPE", headers=as_scsp(scsp), timeout=5)
        assert (r.status_code, r.json()["status_code"]) == (404, 2003)
    finally:
        server.stop()


def test_no_locations_module_when_not_offered(scsp):
    server, _ = start(scsp, behave(HAND, locations=False), hand_fleet())
    try:
        details = requests.get(f"{server.base_url}/2.2.1", headers=as_scsp(scsp), timeout=5).json()["data"]
        assert "locations" not in {e["identifier"] for e in details["endpoints"]}
        assert requests.get(f"{server.base_url}/2.2.1/locations", headers=as_scsp(scsp), timeout=5).status_code == 404
    finally:
        server.stop()


# --- ground truth ----------------------------------------------------------------------------------
def test_truth_above_8_a_power_per_second_and_counterfactual(scsp):
    """C (point 3, an 8 A EV) shares B's station: each is offered 12.5 A, so B draws 12.5 A and C 8 A
    (not above 8 A). A is capped at 8 A from t = 10 s (no apply delay) until the end."""
    fleet = hand_fleet({"point": 3, "phases": 3, "max_da": 80})
    server, clock = start(scsp, HAND, fleet, apply_delay_s=0)
    try:
        step(server, clock, 10)
        assert sorted(server.sessions_above_a(clock.now())) == [A, B]
        r = requests.put(f"{server.base_url}/2.2.1/chargingprofiles/{A}", headers=as_scsp(scsp), timeout=5,
                         json=profile_body(scsp, "t", duration_s=None, start=clock.now()))
        assert r.json()["data"]["result"] == "ACCEPTED"
        step(server, clock, 300)
        assert sorted(server.sessions_above_a(clock.now())) == [B]
        assert server.drew_above_a(A, START) and not server.drew_above_a(A, clock.now())
        power = server.session_power_kw(A, START, START.replace(second=20))
        assert list(power[:10]) == pytest.approx([11.04] * 10) and list(power[10:]) == pytest.approx([5.52] * 10)
        actual = server.truth().energy_kwh(0, 310, points=[0])
        baseline = server.counterfactual_truth().energy_kwh(0, 310, points=[0])
        assert baseline - actual == pytest.approx(5.52 * 300 / 3600, abs=1e-9)  # 0.46 kWh shed
    finally:
        server.stop()


def test_session_ids_are_cistrings_on_the_profiles_interface(scsp):
    server, clock = start(scsp, HAND, hand_fleet())
    try:
        step(server, clock, 1)
        assert put(server, scsp, A.lower()) == "ACCEPTED"
        assert put(server, scsp, "S7-00000x1") == "UNKNOWN_SESSION"
        assert ocpi.fmt_dt(START).endswith("Z") and len(ocpi.fmt_dt(START)) == 20
    finally:
        server.stop()
