"""Signals other apps listen to (so ocpi never imports them)."""

import uuid
from typing import NamedTuple

from django.dispatch import Signal

# Sent after commit with `session_ids=[Session pk, ...]` when sessions are first seen ACTIVE.
session_started = Signal()



class ProfileResult(NamedTuple):
    """One async chargingprofiles result that changes its call: `kind` SET / CLEAR / GET, `purpose_id`
    the caller's id on the call row."""

    call_id: uuid.UUID
    kind: str
    purpose_id: int | None
    result: str


# Sent inside the transaction that records a batch of async chargingprofiles results (the results
# that arrived together), with `results=[ProfileResult, ...]`. A listener answers the call ids whose
# result came too late to matter ("stale"): those change nothing and are answered as stale.
profile_results_received = Signal()
