"""The CPO's clock against ours: measured from reply envelopes, kept per party, warned about, used for nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ocpi.models import OcpiParty
from ocpi.services import clocks
from tests.conftest import T0


@pytest.mark.parametrize(("their_offset_s", "warning"), [
    (12.0, ""),  # within 30 s: no warning
    (-45.0, "its clock is 45 s behind ours"),
    (31.0, "its clock is 31 s ahead of ours"),
])
def test_skew_is_kept_per_party_and_warned_beyond_30_s(party, their_offset_s, warning):
    skew = clocks.record_envelope_skew(party, (T0 + timedelta(seconds=their_offset_s), T0))
    assert skew == their_offset_s
    party.refresh_from_db()
    assert (party.clock_skew_s, party.clock_skew_at) == (their_offset_s, T0)
    assert clocks.skew_warning(party) == warning


def test_no_envelope_measures_nothing(party):
    assert clocks.record_envelope_skew(party, None) is None
    assert OcpiParty.objects.get(pk=party.pk).clock_skew_s is None
    assert clocks.skew_warning(party) == ""


def test_the_threshold_is_a_setting(party, settings):
    settings.OCPI_CLOCK_SKEW_WARN_S = 5.0
    clocks.record_envelope_skew(party, (T0 + timedelta(seconds=6), T0))
    party.refresh_from_db()
    assert clocks.skew_warning(party) == "its clock is 6 s ahead of ours"


@pytest.mark.parametrize("skew_s", [-600.0, 600.0])
def test_a_skewed_clock_lengthens_no_profile(party, cpo_server, settings, skew_s):
    """Issue #11: the skew is kept and warned about, never applied. A CPO 10 min behind (or ahead)
    gets the same PUT as a punctual one: our start time, a duration ending at our deadline."""
    from ocpi import services
    from ocpi.services import ProfileTarget
    from tests.ocpi.loopback import ok

    settings.OCPI_BASE_URL = "http://127.0.0.1:1/ocpi"  # only written into the response_url, never called
    cpo_server.route("PUT", "/ocpi/2.2.1/cp/", lambda call: ok({"result": "ACCEPTED", "timeout": 30}))
    clocks.record_envelope_skew(party, (T0 + timedelta(seconds=skew_s), T0))
    party.refresh_from_db()
    assert party.clock_skew_s == skew_s and clocks.skew_warning(party)
    session = party.sessions.create(
        country_code="NL", ocpi_party_id="CPO", session_id="S1", location_id="L", evse_uid="E1", connector_id="1",
        status="ACTIVE", start_date_time=T0 - timedelta(hours=1), kwh=1.0, last_updated=T0)
    target = ProfileTarget(purpose_id=1, session_pk=session.pk, session_id="S1", party_pk=party.pk,
                           country_code="NL", ocpi_party_id="CPO", ends_at=T0 + timedelta(seconds=660), limit_a=8)
    [put] = services.send_profiles([target], "SET", T0)
    assert put.disposition == "accepted"
    profile = cpo_server.calls[-1].body["charging_profile"]
    assert (profile["start_date_time"], profile["duration"]) == ("2025-05-06T17:04:00Z", 660)
