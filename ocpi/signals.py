"""Signals other apps listen to (so ocpi never imports them)."""

from django.dispatch import Signal

# Sent after commit with `session_ids=[Session pk, ...]` when sessions are first seen ACTIVE.
session_started = Signal()

# Sent inside the transaction that records an async chargingprofiles result, with `call_id`, `kind`
# (SET / CLEAR / GET), `purpose_id` (the caller's id on the call row) and `result`. A listener may
# answer "stale" (ocpi.services.profiles.STALE): the result then changes nothing.
profile_result_received = Signal()
