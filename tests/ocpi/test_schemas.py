"""The payload validators: hand-computed fallbacks, and no exception but ours for any JSON."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpi_client.errors import OcpiValidationError
from ocpi_client.schemas import (
    state_currents,
    validate_active_profile,
    validate_credentials,
    validate_profile_result,
    validate_session,
)

from .conftest import session_payload

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
    # 11.04 kW / (3 * 230 V) = 16 A per phase
    assert currents == pytest.approx([16.0, 16.0, 16.0]) and phases is None


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
