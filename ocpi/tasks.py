"""Celery tasks of the OCPI link: the periodic pulls (sessions, a safety net next to the pushes; the
daily Locations refresh), one pull from one party, and the registration handshakes. Their schedule is
settings' CELERY_BEAT_SCHEDULE; the doors queue them through `services.queueing`."""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import shared_task

from . import services
from .errors import OcpiClientError, OcpiError
from .models import OcpiParty
from .services import locations, queueing

log = logging.getLogger(__name__)

# What one pull calls, and the first retry delay and its cap (seconds) for a transient failure.
PULLS: dict[str, tuple[Callable[[OcpiParty], object], int, int]] = {
    queueing.SESSIONS: (services.pull_sessions, 30, 600),
    queueing.LOCATIONS: (locations.pull_locations, 60, 1800),
    queueing.FIRST: (locations.pull_first, 30, 600),
}


@shared_task(name="ocpi_client.pull_sessions", acks_late=True, ignore_result=True)
def pull_sessions(party_pk: int | None = None) -> None:
    """The beat: one sessions pull per registered party that is due (or, given an id, that party's)."""
    queueing.queue_pulls(queueing.SESSIONS, services.pull_due_sessions() if party_pk is None else [party_pk])


@shared_task(name="ocpi_client.pull_locations", acks_late=True, ignore_result=True)
def pull_locations(party_pk: int | None = None) -> None:
    """The beat: one Locations refresh per party that is due (or, given an id, that party's)."""
    queueing.queue_pulls(queueing.LOCATIONS, locations.locations_due() if party_pk is None else [party_pk])


@shared_task(name=queueing.PULL_FROM_PARTY, bind=True, acks_late=True, ignore_result=True, max_retries=5)
def pull_from_party(self, party_pk: int, module: str) -> None:
    """Idempotent: states are unique per (session, timestamp) and connectors upserted by their ids, so a
    re-run stores nothing twice."""
    party = OcpiParty.objects.filter(pk=party_pk, status=OcpiParty.Status.REGISTERED).first()
    if party is None:
        return
    pull, first_retry_s, max_retry_s = PULLS[module]
    try:
        report = pull(party)
    except OcpiClientError as exc:
        if exc.transient:
            raise self.retry(exc=exc, countdown=min(first_retry_s * 2**self.request.retries, max_retry_s)) from None
        log.error("%s pull from %s failed: %s", module, party, exc)
        return
    log.info("%s pull from %s: %s", module, party, report)


@shared_task(name=queueing.REGISTER_PARTY, acks_late=True, ignore_result=True)
def register_party(party_pk: int) -> None:
    """The admin's "register" action: handshake with the versions URL + token A stored on the party.

    Not retried: a half-done handshake needs a human (a fresh token A from the party).
    """
    party = OcpiParty.objects.filter(pk=party_pk).exclude(status=OcpiParty.Status.REGISTERED).first()
    if party is None:
        return
    try:
        services.register_with(party.versions_url, party.token_theirs, party=party)
    except (OcpiClientError, OcpiError) as exc:
        log.error("registration with %s failed: %s", party, exc)


@shared_task(name=queueing.UPDATE_PARTY_CREDENTIALS, acks_late=True, ignore_result=True)
def update_party_credentials(party_pk: int) -> None:
    """The admin's "update credentials" action. Not retried: a rotation half done needs a look first."""
    party = OcpiParty.objects.filter(pk=party_pk, status=OcpiParty.Status.REGISTERED).first()
    if party is None:
        return
    try:
        services.update_credentials(party)
    except (OcpiClientError, OcpiError) as exc:
        log.error("credentials update with %s failed: %s", party, exc)
