"""The payload validators: hand-computed fallbacks, and no exception but ours for any JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpi.errors import OcpiValidationError
from ocpi.schemas import (
    format_datetime,
    merge_periods,
    ocpi_datetime,
    validate_active_profile,
    validate_credentials,
    validate_profile_result,
    validate_session,
)
from ocpi.services.readings import derive_reading

from .conftest import session_payload


def state_currents(update, session_phases, source="", previous=None):
    reading = derive_reading(update, update.fields.get("kwh", 0.0), session_phases,
                             source or ("reported" if session_phases else ""), previous)
    return list(reading.currents_a), reading.phases

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=20,
)
# Valid sessions with some fields replaced by arbitrary JSON: reaches deeper than random dicts.
FIELDS = [*sorted(session_payload()), "end_date_time", "x_phases", "charging_periods"]
mutated_sessions = st.builds(lambda changes: {**session_payload(), **changes},
                             st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4))


@settings(max_examples=300, deadline=None)
@given(payload=json_values | mutated_sessions, partial=st.booleans())
def test_session_validator_raises_only_its_own_error(payload, partial):
    try:
        update = validate_session(payload, partial=partial)
    except OcpiValidationError as exc:
        assert exc.status_code == 2001 and exc.message
        return
    assert update.last_updated.tzinfo is not None
    currents, phases = state_currents(update, None)
    assert len(currents) == 3 and all(c is None or c >= 0 for c in currents)
    assert phases is None or 0 < phases <= 3


@settings(max_examples=200, deadline=None)
@given(payload=json_values)
def test_other_validators_raise_only_their_own_error(payload):
    for validator in (validate_credentials, validate_profile_result, validate_active_profile):
        try:
            validator(payload)
        except OcpiValidationError:
            pass


@settings(max_examples=100, deadline=None)
@given(power_kw=st.floats(min_value=0, max_value=50), phases=st.integers(1, 3))
def test_power_fallback_conserves_power(power_kw, phases):
    update = validate_session(session_payload(
        x_phase_currents_a=None, x_phases=phases,
        charging_periods=[{"start_date_time": "2025-05-06T17:00:00Z",
                           "dimensions": [{"type": "POWER", "volume": power_kw}]}]), partial=False)
    currents, _ = state_currents(update, None)
    assert sum(c for c in currents if c) * 230 / 1000 == pytest.approx(power_kw)


def test_current_dimension_applies_to_known_phases_else_l1():
    periods = [{"start_date_time": "2025-05-06T17:00:00Z", "dimensions": [{"type": "CURRENT", "volume": 12}]}]
    update = validate_session(session_payload(x_phase_currents_a=None, charging_periods=periods), partial=False)
    assert state_currents(update, None) == ([12.0, None, None], None)
    assert state_currents(update, 3) == ([12.0, 12.0, 12.0], 3)


def test_power_with_unknown_phases_assumes_three():
    periods = [{"start_date_time": "2025-05-06T17:00:00Z", "dimensions": [{"type": "POWER", "volume": 11.04}]}]
    update = validate_session(session_payload(x_phase_currents_a=None, charging_periods=periods), partial=False)
    currents, phases = state_currents(update, None)
    # 11.04 kW / (3 * 230 V) = 16 A per phase; more than one phase carries at 32 A (8.1 kW): at least 2.
    assert currents == pytest.approx([16.0, 16.0, 16.0]) and phases == 2


def test_phases_counted_from_nonzero_extension_currents_else_x_phases():
    assert validate_session(session_payload(x_phase_currents_a=[16, 0, None]), partial=False).phases == 1
    assert validate_session(session_payload(x_phase_currents_a=[0, 0, 0], x_phases=3), partial=False).phases == 3
    assert validate_session(session_payload(x_phase_currents_a=None), partial=False).phases is None


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ({}, "cdr_token.country_code"),
        ({"country_code": "NL", "party_id": "EMS", "uid": "T1", "type": "BADGE", "contract_id": "C1"},
         "cdr_token.type"),
        ({"country_code": "NL", "party_id": "EMS", "uid": "T" * 37, "type": "RFID", "contract_id": "C1"},
         "cdr_token.uid"),
        ({"country_code": "NL", "party_id": "EMS", "uid": "T1", "type": "RFID"}, "cdr_token.contract_id"),
    ],
)
def test_cdr_token_needs_every_field_of_the_spec(token, message):
    with pytest.raises(OcpiValidationError, match=message):
        validate_session(session_payload(cdr_token=token), partial=False)


# --- charging periods, DateTimes, readings from standard data ---------------------------------------


def period(minute: int, **dims) -> dict:
    return {"start_date_time": f"2025-05-06T17:{minute:02d}:00Z",
            "dimensions": [{"type": k, "volume": v} for k, v in (dims or {"ENERGY": 1.0}).items()]}


def test_patch_rule_adds_periods_and_stores_a_repeat_once():
    stored = [period(0), period(5)]
    merged = merge_periods(stored, [period(5), period(10)])
    assert [p["start_date_time"] for p in merged] == ["2025-05-06T17:00:00Z", "2025-05-06T17:05:00Z",
                                                      "2025-05-06T17:10:00Z"]


def test_patch_period_overlapping_a_closed_one_is_refused():
    with pytest.raises(OcpiValidationError, match="overlaps a closed stored period") as info:
        merge_periods([period(0, ENERGY=1.0), period(5, ENERGY=2.0)], [period(0, ENERGY=3.0)])
    assert info.value.status_code == 2001


def test_the_open_period_may_come_again_with_its_final_values():
    # What CSMSs do: each PATCH carries the period just closed (final averages) and the new open one.
    merged = merge_periods([period(0), period(5, ENERGY=0.1)], [period(5, ENERGY=0.9), period(10, ENERGY=0.0)])
    assert [p["dimensions"][0]["volume"] for p in merged] == [1.0, 0.9, 0.0]


def test_two_periods_with_one_start_in_a_body_are_refused():
    with pytest.raises(OcpiValidationError, match="a second period starting at 2025-05-06T17:05:00Z"):
        validate_session(session_payload(charging_periods=[period(5), period(5, ENERGY=2.0)]), partial=False)


@settings(max_examples=100, deadline=None)
@given(stored=st.sets(st.integers(0, 59), max_size=8), added=st.sets(st.integers(0, 59), max_size=8))
def test_merge_keeps_every_start_once_and_sorted(stored, added):
    merged = merge_periods([period(m) for m in sorted(stored)], [period(m) for m in sorted(added)])
    starts = [ocpi_datetime(p["start_date_time"], "x") for p in merged]
    assert starts == sorted(starts) and len(starts) == len(stored | added)
    assert merge_periods(merged, merged) == merged  # a PATCH sent twice changes nothing


@pytest.mark.parametrize(("us", "text"), [(0, "2025-05-06T17:00:01Z"), (123456, "2025-05-06T17:00:01.123Z"),
                                          (999, "2025-05-06T17:00:01Z")])
def test_datetimes_we_send_have_seconds_or_milliseconds(us, text):
    assert format_datetime(datetime(2025, 5, 6, 17, 0, 1, us, tzinfo=UTC)) == text


def test_current_and_power_pair_names_three_phases():
    # 11.04 kW / (230 V x 16 A) = 3.0: three phases, each at the measured 16 A.
    periods = [period(0, CURRENT=16.0, POWER=11.04)]
    update = validate_session(session_payload(x_phase_currents_a=None, charging_periods=periods), partial=False)
    reading = derive_reading(update, 1.5, None, "", None)
    assert (reading.phases, reading.phases_source, reading.current_source) == (3, "power_current", "measured")
    assert reading.currents_a == (16.0, 16.0, 16.0)


def test_kwh_difference_gives_the_average_power_between_two_states():
    # 1.5 kWh at 17:05, 0.58 kWh at 17:00: 0.92 kWh in 5 min = 11.04 kW = 16 A on three known phases.
    update = validate_session(session_payload(x_phase_currents_a=None, x_phases=3), partial=False)
    reading = derive_reading(update, 1.5, None, "", (datetime(2025, 5, 6, 17, 0, tzinfo=UTC), 0.58))
    assert reading.power_kw == pytest.approx(11.04)
    assert reading.current_source == "kwh"
    assert reading.currents_a == pytest.approx((16.0, 16.0, 16.0))
    # Phases unknown: converted on the one assumption (3) and marked so.
    update = validate_session(session_payload(x_phase_currents_a=None), partial=False)
    reading = derive_reading(update, 1.5, None, "", (datetime(2025, 5, 6, 17, 0, tzinfo=UTC), 0.58))
    # 11.04 kW is more than one phase carries at 32 A (+10 %: 8.1 kW): at least two phases.
    assert reading.current_source == "assumed" and (reading.phases, reading.phases_source) == (2, "power")
    assert reading.currents_a == pytest.approx((16.0, 16.0, 16.0))
    # One state only: the draw is unknown, not zero.
    reading = derive_reading(update, 1.5, None, "", None)
    assert reading.current_source == "" and reading.currents_a == (None, None, None)


def test_a_first_state_takes_the_latest_periods_energy_over_its_time():
    # A standard CSMS: a closed period of 0.5 kWh over 0.0833 h (5 min) = 6.0 kW, phases unknown:
    # 6000 / (3 x 230) = 8.70 A on the one assumption.
    periods = [{"start_date_time": "2025-05-06T17:00:00Z",
                "dimensions": [{"type": "ENERGY", "volume": 0.5}, {"type": "TIME", "volume": 0.5 / 6.0}]}]
    update = validate_session(session_payload(x_phase_currents_a=None, charging_periods=periods), partial=False)
    reading = derive_reading(update, 1.5, None, "", None)
    assert reading.power_kw == pytest.approx(6.0) and reading.current_source == "assumed"
    assert reading.currents_a[0] == pytest.approx(6000 / 690)
    # Without TIME, the period runs from its start to last_updated (17:00 -> 17:05): the same 6.0 kW.
    periods[0]["dimensions"] = [{"type": "ENERGY", "volume": 0.5}]
    update = validate_session(session_payload(x_phase_currents_a=None, charging_periods=periods), partial=False)
    assert update.period_power_kw == pytest.approx(6.0)


def test_a_first_state_without_periods_takes_the_average_since_the_start():
    # 1.5 kWh between 17:00 (start, 0 kWh) and 17:05 = 18 kW; on three known phases 18000 / 690 = 26.1 A.
    update = validate_session(session_payload(x_phase_currents_a=None, x_phases=3), partial=False)
    reading = derive_reading(update, 1.5, None, "", None, datetime(2025, 5, 6, 17, 0, tzinfo=UTC))
    assert (reading.power_kw, reading.current_source) == (pytest.approx(18.0), "kwh")
    assert reading.currents_a == pytest.approx((18000 / 690,) * 3)


@settings(max_examples=200, deadline=None)
@given(kwh0=st.floats(0, 100), delta_kwh=st.floats(0, 20), minutes=st.integers(1, 120), phases=st.integers(1, 3))
def test_energy_derived_readings_conserve_energy(kwh0, delta_kwh, minutes, phases):
    update = validate_session(session_payload(x_phase_currents_a=None, x_phases=phases,
                                              last_updated="2025-05-06T19:00:00Z"), partial=False)
    before = datetime(2025, 5, 6, 19, 0, tzinfo=UTC) - timedelta(minutes=minutes)
    reading = derive_reading(update, kwh0 + delta_kwh, None, "", (before, kwh0))
    # power x time = the energy between the states; per-phase currents x phases x 230 V = the power.
    assert reading.power_kw * minutes / 60 == pytest.approx(delta_kwh, abs=1e-9)
    known = [c for c in reading.currents_a if c is not None]
    assert len(known) == phases and sum(known) * 230 / 1000 == pytest.approx(reading.power_kw, abs=1e-9)


def test_a_power_more_than_fewer_phases_carry_proves_the_phase_count():
    """A three-phase car tapering to 5 A later is not a one-phase car at 15 A: its earlier 11 kW said so."""
    at = datetime(2025, 5, 6, 17, 5, tzinfo=UTC)
    update = validate_session(session_payload(x_phase_currents_a=None, last_updated="2025-05-06T17:05:00Z"),
                              partial=False)
    before = (datetime(2025, 5, 6, 17, 0, tzinfo=UTC), 0.58)
    # 0.92 kWh in 5 min = 11.04 kW on a 16 A three-phase connector: two phases carry 2 x 16 A x 230 V
    # (+10 %) = 8.1 kW at most, so three, for sure: converted on them ("kwh", not "assumed").
    reading = derive_reading(update, 1.5, 3, "connector", before, max_current_a=16.0)
    assert (reading.phases, reading.phases_source, reading.current_source) == (3, "power", "kwh")
    # Later, 5 A per phase (3.45 kW): still three phases, the count does not change within a session.
    later = derive_reading(update, 1.5, 3, "power", (at - timedelta(minutes=5), 1.5 - 0.2875), max_current_a=16.0)
    assert (later.phases, later.phases_source) == (3, "power") and later.currents_a == pytest.approx((5.0,) * 3)
    # 3.68 kW fits one phase at 16 A: nothing learned, the connector's bound stays.
    low = derive_reading(update, 1.5, 3, "connector", (at - timedelta(minutes=5), 1.5 - 0.3067), max_current_a=16.0)
    assert (low.phases, low.phases_source, low.current_source) == (3, "connector", "assumed")
    # Two states 3 s apart: 0.009 kWh is too little energy to prove anything (Wh rounding), whatever it says.
    quick = derive_reading(update, 1.5, 3, "connector", (at - timedelta(seconds=3), 1.491), max_current_a=16.0)
    assert quick.power_kw == pytest.approx(10.8) and quick.phases_source == "connector"
    # A one-phase connector is certain: a power above it proves nothing more.
    assert derive_reading(update, 1.5, 1, "connector", before, max_current_a=16.0).phases == 1
