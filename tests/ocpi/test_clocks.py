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
