"""The other party's clock against ours: measured from the envelope `timestamp` of its replies.

Kept per party for the operator (admin warns beyond OCPI_CLOCK_SKEW_WARN_S). Nothing is lengthened
or shortened because of it: a profile's duration still ends at our deadline.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from ..models import OcpiParty


def skew_s(their_timestamp: datetime, our_now: datetime) -> float:
    """Their clock minus ours in seconds (positive: theirs is ahead). Reply latency adds to the error."""
    return (their_timestamp - our_now).total_seconds()


def record_envelope_skew(party: OcpiParty, envelope: tuple[datetime, datetime] | None) -> float | None:
    """Store the skew from one (their envelope timestamp, our clock at receipt); None when not measured."""
    if envelope is None:
        return None
    their, ours = envelope
    skew = skew_s(their, ours)
    OcpiParty.objects.filter(pk=party.pk).update(clock_skew_s=skew, clock_skew_at=ours)
    return skew


def skew_warning(party: OcpiParty) -> str:
    """The admin's warning for a party whose clock is off by more than the setting, else ""."""
    if party.clock_skew_s is None or abs(party.clock_skew_s) <= settings.OCPI_CLOCK_SKEW_WARN_S:
        return ""
    direction = "ahead of" if party.clock_skew_s > 0 else "behind"
    return f"its clock is {abs(party.clock_skew_s):.0f} s {direction} ours"
