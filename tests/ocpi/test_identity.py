"""Identity: CiStrings without case, one party per (country_code, party_id), a token reaches only its own.

Actors: "Alpha" (NL*CPO, the `party` fixture), "Beta" (another CPO, NL*CPB) and "Hub" (a hub holding
two CPO identities, NL*HBA and DE*HBB).
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import IntegrityError, transaction

from ocpi.models import OcpiParty, OcpiPartyRole, Session, SessionState, hash_token
from ocpi.services import identity, unregister

from .conftest import holding, session_payload

BETA_TOKEN = "beta-token-c-0123456789"
HUB_TOKEN = "hub-token-c-0123456789"


def other_party(name: str, token: str, *identities: tuple[str, str]) -> OcpiParty:
    party = OcpiParty.objects.create(name=name, country_code=identities[0][0], party_id=identities[0][1],
                                     status=OcpiParty.Status.REGISTERED, token_ours_hash=hash_token(token))
    return holding(party, *identities)


@pytest.fixture
def beta(db) -> OcpiParty:
    return other_party("Beta", BETA_TOKEN, ("NL", "CPB"))


@pytest.fixture
def hub(db) -> OcpiParty:
    return other_party("Hub", HUB_TOKEN, ("NL", "HBA"), ("DE", "HBB"))


def test_a_lower_casing_cpo_updates_the_same_session(ocpi, party):
    """The third-party CPO of issue 10: its URL keeps its case, its bodies are lower-cased."""
    body = session_payload(country_code="nl", party_id="cpo", id="s1", kwh=1.0)
    assert ocpi("PUT", "2.2.1/sessions/NL/CPO/S1", body).status_code == 201
    patch = {"kwh": 2.0, "last_updated": "2025-05-06T17:06:00Z", "country_code": "nl", "id": "s1"}
    response = ocpi("PATCH", "2.2.1/sessions/nl/cpo/s1", patch)
    assert (response.status_code, response.envelope["status_code"]) == (200, 1000)
    again = session_payload(country_code="nl", party_id="cpo", id="s1", kwh=3.0, last_updated="2025-05-06T17:07:00Z")
    assert ocpi("PUT", "2.2.1/sessions/nl/Cpo/s1", again).status_code == 200
    session = Session.objects.get()
    # The ids keep the spelling they were first stored with (the CPO's own, for display and its URLs).
    assert (session.country_code, session.ocpi_party_id, session.session_id, session.kwh) == ("NL", "CPO", "S1", 3.0)
    assert SessionState.objects.count() == 3
    got = ocpi("GET", "2.2.1/sessions/nl/cpo/S1")
    assert got.envelope["data"]["id"] == "S1" and got.envelope["data"]["kwh"] == 3.0


def test_body_ids_that_differ_beyond_case_are_2001(ocpi, party):
    response = ocpi("PUT", "2.2.1/sessions/NL/CPO/S1", session_payload(id="S2"))
    assert response.envelope["status_code"] == 2001 and "differs" in response.envelope["status_message"]
    assert not Session.objects.exists()


def test_a_token_reaches_only_its_own_sessions(ocpi, party, beta):
    assert ocpi("PUT", "2.2.1/sessions/NL/CPO/S1", session_payload()).status_code == 201
    # Beta names Alpha's identity in the path: unknown to it, whatever it tries; nothing changes.
    for method, body in (("GET", None), ("PUT", session_payload(status="COMPLETED")),
                         ("PATCH", {"status": "COMPLETED", "last_updated": "2025-05-06T17:09:00Z"})):
        response = ocpi(method, "2.2.1/sessions/NL/CPO/S1", body, token=BETA_TOKEN)
        assert (response.status_code, response.envelope["status_code"]) == (404, 2000), method
    assert Session.objects.get().status == "ACTIVE"
    # Its own session with the same id is its own object.
    own = session_payload(party_id="CPB")
    assert ocpi("PUT", "2.2.1/sessions/NL/CPB/S1", own, token=BETA_TOKEN).status_code == 201
    assert ocpi("GET", "2.2.1/sessions/NL/CPB/S1").status_code == 404  # and Alpha cannot read it
    assert sorted(Session.objects.values_list("party__name", "ocpi_party_id")) == [("Beta", "CPB"), ("Test CPO", "CPO")]


def test_a_second_party_cannot_claim_a_held_identity(db, party):
    with pytest.raises(identity.IdentityTaken) as info:
        identity.check_identities_free(
            OcpiParty.objects.create(name="Mallory", token_ours_hash=hash_token("m")),
            [{"role": "CPO", "country_code": "nl", "party_id": "cpo", "name": "x"}])
    assert info.value.status_code == 3001 and "NL/CPO is held by another registered party" in info.value.message


def test_released_or_revoked_identities_can_be_claimed_again(db, party):
    newcomer = OcpiParty.objects.create(name="Alpha, new registration", token_ours_hash=hash_token("n"))
    role = OcpiPartyRole.objects.get(party=party)
    identity.release_identity(role.pk)
    identity.claim_roles(newcomer, [{"role": "CPO", "country_code": "NL", "party_id": "cpo", "name": "Alpha"}])
    assert OcpiPartyRole.objects.get(active=True).party == newcomer
    # Revoking the holder frees it as well.
    newcomer.status = OcpiParty.Status.REGISTERED
    newcomer.save()
    unregister(newcomer)
    assert not OcpiPartyRole.objects.filter(active=True).exists()


def test_the_database_keeps_one_active_holder_per_identity(db, party):
    other = OcpiParty.objects.create(name="Mallory", token_ours_hash=hash_token("m"))
    with pytest.raises(IntegrityError), transaction.atomic():
        OcpiPartyRole.objects.create(party=other, country_code="nl", ocpi_party_id="Cpo", role="CPO")


def test_a_hub_pushes_for_each_cpo_it_holds(ocpi, hub):
    for cc, pid in (("NL", "HBA"), ("DE", "HBB")):
        body = session_payload(country_code=cc, party_id=pid, id="S1")
        response = ocpi("PUT", f"2.2.1/sessions/{cc}/{pid}/S1", body, token=HUB_TOKEN,
                        headers={"OCPI-from-country-code": cc, "OCPI-from-party-id": pid})
        assert response.status_code == 201
        # The reply is routed to the CPO the hub spoke for.
        assert (response["OCPI-to-country-code"], response["OCPI-to-party-id"]) == (cc, pid)
    assert sorted(Session.objects.values_list("country_code", "ocpi_party_id")) == [("DE", "HBB"), ("NL", "HBA")]
    # A CPO the hub does not hold is refused, with the routing headers on the error too.
    response = ocpi("PUT", "2.2.1/sessions/BE/XYZ/S1", session_payload(country_code="BE", party_id="XYZ"),
                    token=HUB_TOKEN)
    assert (response.status_code, response.envelope["status_code"]) == (404, 2000)
    assert response["OCPI-to-party-id"] == "HBA" and Session.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_push_arriving_while_the_registration_stores_the_roles_waits_for_them():
    """A CPO may push as soon as it answered our credentials POST; the roles of its answer are stored
    a moment later by the registering thread: the push waits for them instead of a 404."""
    fresh = OcpiParty.objects.create(name="Fresh", country_code="NL", party_id="FRS",
                                     status=OcpiParty.Status.REGISTERED, token_ours_hash=hash_token("fresh-token"))

    def registration_completes() -> None:
        time.sleep(0.3)
        holding(OcpiParty.objects.get(pk=fresh.pk), ("NL", "FRS"))

    threading.Thread(target=registration_completes).start()
    started = time.monotonic()
    assert identity.own_identity(fresh, "nl", "frs") == ("NL", "FRS")
    assert 0.25 <= time.monotonic() - started < identity.ROLES_SETTLE_S


def test_a_party_holding_roles_is_refused_at_once_for_another_identity(db, party):
    started = time.monotonic()
    with pytest.raises(identity.UnknownObject):
        identity.own_identity(party, "DE", "XYZ")
    assert time.monotonic() - started < 0.2
