"""Realism profiles over real HTTP: what session data the CPO platform sends (mod_sessions, mod_cdrs
ChargingPeriod / CdrDimension), judged by the strict fake SCSP.

Hand-made fleet (helpers.HAND, no jitter): session A on point 0, a 3-phase 32 A EV alone at its
station, draws the station's 16 A per phase = 16 x 3 x 230 W = 11.04 kW; session B on point 2, a
1-phase 16 A EV alone at its station, draws 16 A = 3.68 kW. States fall at 0 and 300 s, so the
closed period [0, 300 s) holds A: 11.04 kW x 300 s = 0.92 kWh, B: 3.68 x 300 / 3600 = 0.306667 kWh,
TIME 300 s = 0.0833 h.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import ocpi
from simulator.config import PROFILES
from tests.simulator.conftest import START, population
from tests.simulator.fake_scsp import FakeScsp
from tests.simulator.helpers import HAND, as_scsp, behave, start

A, B = "S7-0000000", "S7-0000001"


@pytest.fixture
def scsp():
    fake = FakeScsp()
    fake.start()
    yield fake
    fake.stop()


def hand_fleet():
    return population({"point": 0, "phases": 3, "max_da": 320}, {"point": 2, "phases": 1, "max_da": 160})


def run_two_states(scsp: FakeScsp, profile: str, **behaviour):
    server, clock = start(scsp, behave(HAND, profile=profile, **behaviour), hand_fleet())
    clock.advance(301)
    server.sync()
    assert server.wait_for(lambda: sum(m == "PATCH" for m, _, _ in scsp.pushes) >= 2)
    return server


def dims(period: dict) -> dict[str, float]:
    return {d["type"]: d["volume"] for d in period["dimensions"]}


def stored(scsp: FakeScsp, sid: str) -> dict:
    return scsp.sessions[("NL", "SIM", sid.upper())]


@pytest.mark.parametrize("profile", ["standard", "power-only", "current-average"])
def test_standard_profiles_send_no_x_fields_and_closed_periods_added_by_patch(scsp, profile):
    server = run_two_states(scsp, profile)
    try:
        assert not scsp.violations
        assert "x_" not in json.dumps([body for _, _, body in scsp.pushes])
        first_put = next(body for m, sid, body in scsp.pushes if m == "PUT" and sid == A)
        assert first_put["charging_periods"] == []  # one state: no period has closed yet
        patch = next(body for m, sid, body in scsp.pushes if m == "PATCH" and sid == A)
        assert [p["start_date_time"] for p in patch["charging_periods"]] == [ocpi.fmt_dt(START)]
        periods = stored(scsp, A)["charging_periods"]
        assert len(periods) == 1 and stored(scsp, A)["kwh"] == 0.92
        expected = {"ENERGY": 0.92, "TIME": 0.0833}
        if profile == "power-only":
            expected["POWER"] = 11.04  # the meter's sample when the period closed
        if profile == "current-average":
            expected.update(CURRENT=16.0, POWER=11.04)
        assert dims(periods[0]) == expected
        b = dims(stored(scsp, B)["charging_periods"][0])
        assert b["ENERGY"] == 0.3067
        if profile == "current-average":  # P / (230 V x I) gives the phases: 3680 / (230 x 16) = 1
            assert (b["CURRENT"], b["POWER"]) == (16.0, 3.68)
    finally:
        server.stop()


def test_extension_profile_keeps_todays_dialect(scsp):
    server = run_two_states(scsp, "extension")
    try:
        assert not scsp.violations
        patch = next(body for m, sid, body in scsp.pushes if m == "PATCH" and sid == A)
        assert patch["x_phase_currents_a"] == [16.0, 16.0, 16.0]
        assert len(patch["charging_periods"]) == 2  # the closed one and the new open one
        assert dims(patch["charging_periods"][1]) == {"CURRENT": 16.0, "POWER": 11.04, "ENERGY": 0.0}
        put = next(body for m, sid, body in scsp.pushes if m == "PUT" and sid == B)
        assert put["x_phases"] == 1 and put["x_phase_currents_a"] == [16.0, 0.0, 0.0]
    finally:
        server.stop()


@pytest.mark.parametrize("profile", PROFILES)
def test_pull_returns_the_same_periods_as_the_pushes_built(scsp, profile):
    server = run_two_states(scsp, profile)
    try:
        r = requests.get(f"{server.base_url}/2.2.1/sessions", params={"date_from": ocpi.fmt_dt(START)},
                         headers=as_scsp(scsp), timeout=5)
        pulled = {s["id"]: s for s in r.json()["data"]}
        assert set(pulled) == {A, B}
        if profile != "extension":
            assert pulled[A]["charging_periods"] == stored(scsp, A)["charging_periods"]
            assert all(not k.startswith("x_") for k in pulled[A])
    finally:
        server.stop()


def test_lowercase_ids_in_bodies_while_urls_keep_the_cpos_case(scsp):
    server = run_two_states(scsp, "standard", lowercase_ids=True)
    try:
        assert not scsp.violations  # the fake compares CiStrings without case, as the spec says
        _, sid, body = scsp.pushes[0]
        assert sid == sid.upper() and body["id"] == sid.lower()
        assert (body["country_code"], body["party_id"], body["location_id"]) == ("nl", "sim", "loc00000")
        # The platform itself reads CiStrings without case: a profile for the lower-cased id lands.
        sid_lower = A.lower()
        r = requests.put(f"{server.base_url}/2.2.1/chargingprofiles/{sid_lower}", headers=as_scsp(scsp), timeout=5,
                         json={"response_url": f"{scsp.base_url}/2.2.1/chargingprofiles/results/x",
                               "charging_profile": {"charging_rate_unit": "A",
                                                    "charging_profile_period": [{"start_period": 0, "limit": 8}]}})
        assert r.json()["data"]["result"] == "ACCEPTED"
    finally:
        server.stop()


@settings(max_examples=60, deadline=None)
@given(profile=st.sampled_from(["standard", "power-only", "current-average"]),
       steps=st.lists(st.tuples(st.integers(1, 900), st.floats(0, 5), st.integers(0, 320)), min_size=1, max_size=12))
def test_periods_conserve_energy_and_time(profile, steps):
    """Invariant: the periods' ENERGY adds up to the kWh charged since the first state and their TIME
    to the hours elapsed, whatever the states (rounding: 0.0001 per period)."""
    rec = ocpi.SessionRecord(0, "X", 0, START, 3, True)
    when, kwh = START, 1.5
    rec.add_state(when, kwh, 100, False)
    for dt_s, d_kwh, current_da in steps:
        when, kwh = when + timedelta(seconds=dt_s), kwh + d_kwh
        rec.add_state(when, kwh, current_da, False)
    periods = ocpi.session_object(rec, "NL", "SIM", "L", "E", profile=profile)["charging_periods"]
    assert len(periods) == len(steps)
    energy = sum(dims(p)["ENERGY"] for p in periods)
    hours = sum(dims(p)["TIME"] for p in periods)
    assert abs(energy - (kwh - 1.5)) <= 0.0001 * len(steps) + 1e-9
    assert abs(hours - (when - START).total_seconds() / 3600) <= 0.0001 * len(steps) + 1e-9
    assert all(len(p["start_date_time"]) <= 25 for p in periods)


def test_a_pull_does_not_change_what_the_next_patch_adds(scsp):
    """The state at 600 s is not pushed (pushes off); a GET returns every period; the PATCH at 900 s
    still adds both periods not pushed before, so the pushed list stays complete."""
    server = run_two_states(scsp, "standard")
    try:
        server.push_enabled = False
        server.clock.advance(300)
        server.sync()
        r = requests.get(f"{server.base_url}/2.2.1/sessions", params={"date_from": ocpi.fmt_dt(START)},
                         headers=as_scsp(scsp), timeout=5)
        assert len(next(s for s in r.json()["data"] if s["id"] == A)["charging_periods"]) == 2
        server.push_enabled = True
        server.clock.advance(300)
        server.sync()
        assert server.wait_for(lambda: len(stored(scsp, A)["charging_periods"]) >= 3)
        assert [p["start_date_time"] for p in stored(scsp, A)["charging_periods"]] == [
            ocpi.fmt_dt(START + timedelta(seconds=s)) for s in (0, 300, 600)]
        assert not scsp.violations
    finally:
        server.stop()
