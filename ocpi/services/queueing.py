"""OCPI work the doors ask for but must not wait on: each call to a party runs in a worker.

Each function picks the parties the work applies to, queues one task per party by the task's name
once the transaction commits (`smatch.celery.enqueue_on_commit`: a broker that is down is logged,
and the beat's next pull retries), and returns the ids it queued. The task names are `ocpi/tasks.py`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from smatch.celery import enqueue_on_commit

from ..models import OcpiParty

REGISTER_PARTY = "ocpi_client.register_party"
UPDATE_PARTY_CREDENTIALS = "ocpi_client.update_party_credentials"
PULL_FROM_PARTY = "ocpi_client.pull_from_party"

Module = Literal["sessions", "locations", "first"]
SESSIONS: Module = "sessions"
LOCATIONS: Module = "locations"
FIRST: Module = "first"  # Locations, then sessions, after a handshake (`locations.pull_first`)


def _registered(party_ids: Iterable[int]) -> list[int]:
    return list(OcpiParty.objects.filter(pk__in=list(party_ids), status=OcpiParty.Status.REGISTERED)
                .order_by("pk").values_list("pk", flat=True))


def queue_registration(party_ids: Iterable[int]) -> list[int]:
    """The credentials handshake with each party (its versions URL and token A are on the party)."""
    ids = list(party_ids)
    for pk in ids:
        enqueue_on_commit(REGISTER_PARTY, pk)
    return ids


def queue_credentials_update(party_ids: Iterable[int]) -> list[int]:
    """A new token for each registered party, and our current endpoints."""
    ids = _registered(party_ids)
    for pk in ids:
        enqueue_on_commit(UPDATE_PARTY_CREDENTIALS, pk)
    return ids


def queue_pulls(module: Module, party_ids: Iterable[int]) -> list[int]:
    """One pull of the module's objects (sessions or locations) from each registered party."""
    ids = _registered(party_ids)
    for pk in ids:
        enqueue_on_commit(PULL_FROM_PARTY, pk, module)
    return ids


def queue_pulls_after_handshake(party: OcpiParty, countdown: float | None = None) -> bool:
    """Credentials were just exchanged with the party (a registration, or an update that may bring
    new roles or endpoints): pull its Locations and its ongoing sessions now, not at the beat's next
    tick (up to OCPI_PULL_INTERVAL_S away). Pushes bring only new states, about every five minutes
    per session, so until then the sessions charging at the handshake would be unknown and uncapped.
    `countdown`: when the party called us, its API learns token C from our answer first. False when
    it offers neither module as Sender."""
    if not any(party.endpoint_url(m, "SENDER") for m in (SESSIONS, LOCATIONS)):
        return False
    enqueue_on_commit(PULL_FROM_PARTY, party.pk, FIRST, countdown=countdown)
    return True
