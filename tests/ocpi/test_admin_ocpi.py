"""OCPI admin actions call the same services as the other doors (superuser; role limits are tests/trust's)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from ocpi.models import OcpiParty, OcpiPartyRole, Session

from .conftest import session_payload


@pytest.fixture
def superuser_client(client, db):
    client.force_login(User.objects.create_superuser("root", "root@example.org", "pw"))
    return client


def test_release_action_frees_an_identity(superuser_client, party):
    role = OcpiPartyRole.objects.get(party=party)
    response = superuser_client.post("/admin/ocpi_client/ocpipartyrole/",
                                     {"action": "release", "_selected_action": [role.pk]})
    assert response.status_code == 302
    assert not OcpiPartyRole.objects.filter(active=True).exists()


def test_party_list_shows_the_clock_warning(superuser_client, party):
    OcpiParty.objects.filter(pk=party.pk).update(clock_skew_s=-90.0)
    page = superuser_client.get("/admin/ocpi_client/ocpiparty/").content.decode()
    assert "its clock is 90 s behind ours" in page


def test_session_list_shows_where_the_current_came_from(superuser_client, ocpi, party):
    ocpi("PUT", "2.2.1/sessions/NL/CPO/S1", session_payload())
    assert Session.objects.get().current_source == "measured"
    page = superuser_client.get("/admin/ocpi_client/session/").content.decode()
    assert "measured" in page


def staff(name: str, group: str) -> User:
    from django.contrib.auth.models import Group

    user = User.objects.create_user(name, f"{name}@example.org", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.mark.parametrize(("group", "released"), [("operators", True), ("analysts", False)])
def test_only_operators_release_identities(client, party, group, released):
    client.force_login(staff(f"a-{group}", group))
    role = OcpiPartyRole.objects.get(party=party)
    client.post("/admin/ocpi_client/ocpipartyrole/", {"action": "release", "_selected_action": [role.pk]})
    assert OcpiPartyRole.objects.filter(active=True).exists() is not released


def test_rotating_credentials_is_not_offered_to_operators(client, party):
    client.force_login(staff("op", "operators"))
    page = client.get("/admin/ocpi_client/ocpiparty/").content.decode()
    assert "pull_locations_now" in page and "update_credentials" not in page
