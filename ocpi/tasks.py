"""Celery tasks of the OCPI link: the periodic sessions pull (a safety net next to the pushes) and the
daily Locations refresh."""

from __future__ import annotations

import logging

from celery import shared_task

from . import services
from .errors import OcpiClientError, OcpiError
from .models import OcpiParty
from .services import locations

log = logging.getLogger(__name__)


@shared_task(name="ocpi_client.pull_sessions", acks_late=True, ignore_result=True)
def pull_sessions(party_pk: int | None = None) -> None:
    """Pull one party's sessions, or (no id: the beat) queue one pull per registered party."""
    if party_pk is None:
        for pk in services.pull_due_sessions():
            pull_party_sessions.delay(pk)
        return
    pull_party_sessions(party_pk)


@shared_task(name="ocpi_client.pull_party_sessions", bind=True, acks_late=True, ignore_result=True,
             max_retries=5)
def pull_party_sessions(self, party_pk: int) -> None:
    """Idempotent: states are unique per (session, timestamp), so a re-run stores nothing twice."""
    party = OcpiParty.objects.filter(pk=party_pk, status=OcpiParty.Status.REGISTERED).first()
    if party is None:
        return
    try:
        report = services.pull_sessions(party)
    except OcpiClientError as exc:
        if exc.transient:
            raise self.retry(exc=exc, countdown=min(30 * 2**self.request.retries, 600)) from None
        log.error("sessions pull from %s failed: %s", party, exc)
        return
    log.info("pulled %s sessions from %s (%s stored, %s invalid)", report.received, party, report.stored,
             report.invalid)


@shared_task(name="ocpi_client.pull_locations", acks_late=True, ignore_result=True)
def pull_locations(party_pk: int | None = None) -> None:
    """Refresh one party's Locations, or (no id: the beat) queue one refresh per party that is due."""
    if party_pk is None:
        for pk in locations.locations_due():
            pull_party_locations.delay(pk)
        return
    pull_party_locations(party_pk)


@shared_task(name="ocpi_client.pull_party_locations", bind=True, acks_late=True, ignore_result=True,
             max_retries=5)
def pull_party_locations(self, party_pk: int) -> None:
    """Idempotent: connectors are upserted by their ids, sessions bounded again from them."""
    party = OcpiParty.objects.filter(pk=party_pk, status=OcpiParty.Status.REGISTERED).first()
    if party is None:
        return
    try:
        report = locations.pull_locations(party)
    except OcpiClientError as exc:
        if exc.transient:
            raise self.retry(exc=exc, countdown=min(60 * 2**self.request.retries, 1800)) from None
        log.error("locations pull from %s failed: %s", party, exc)
        return
    log.info("locations of %s: %s", party, report)


@shared_task(name="ocpi_client.register_party", acks_late=True, ignore_result=True)
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


@shared_task(name="ocpi_client.update_party_credentials", acks_late=True, ignore_result=True)
def update_party_credentials(party_pk: int) -> None:
    """The admin's "update credentials" action. Not retried: a rotation half done needs a look first."""
    party = OcpiParty.objects.filter(pk=party_pk, status=OcpiParty.Status.REGISTERED).first()
    if party is None:
        return
    try:
        services.update_credentials(party)
    except (OcpiClientError, OcpiError) as exc:
        log.error("credentials update with %s failed: %s", party, exc)
