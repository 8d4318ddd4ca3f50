"""Staff can do their job and no more: every admin action x every staff role, credentials minted only
with `ocpi_client.manage_credentials` (superusers), the token we send a CPO never rendered, and the
admin's create forms refused by the same service rules (and codes) as the API and the commands.

Roles: analyst, operator, superuser, and plain staff (a staff login in no group).
"""

from __future__ import annotations

import base64

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.test import RequestFactory

from flexibility.models import Brp
from ocpi.models import OcpiParty, hash_token
from settlement.models import SettlementRun

from .conftest import PENDING_TOKEN, _state, as_caller

ROLES = ["analyst", "operator", "superuser", "staff"]
CREDENTIALS = {"superuser"}  # ocpi_client.manage_credentials: in no group
DECIDE = {"operator", "superuser"}
SUPERUSER = {"superuser"}

# model -> {action: roles it is offered to}. A model or action missing here fails the completeness test.
ADMIN_ACTIONS = {
    "flexibility.Brp": {"rotate_token": CREDENTIALS, "delete_selected": SUPERUSER},
    "flexibility.Signal": {"relay": DECIDE, "veto": DECIDE, "stop_now": DECIDE},
    "flexibility.SteeringRule": {"delete_selected": {"operator", "superuser"}},
    "ocpi_client.OcpiParty": {"issue_token": CREDENTIALS, "register": CREDENTIALS,
                              "update_credentials": CREDENTIALS, "pull_sessions_now": {"operator", "superuser"},
                              "pull_locations_now": {"operator", "superuser"}, "delete_selected": SUPERUSER},
    # Releasing an identity lets another party claim it: operators (change on OCPI parties), not analysts.
    "ocpi_client.OcpiPartyRole": {"release": {"operator", "superuser"}},
    "settlement.SettlementRun": {"delete_selected": SUPERUSER},
    "auth.User": {"delete_selected": SUPERUSER},
    "auth.Group": {"delete_selected": SUPERUSER},
}
CASES = [(label, action) for label, actions in ADMIN_ACTIONS.items() for action in actions]


def _model_admin(label: str):
    return next(ma for model, ma in admin.site._registry.items() if model._meta.label == label)


def _offered(world, role: str, label: str) -> set[str]:
    request = RequestFactory().get("/admin/")
    request.user = world["users"][role]
    return set(_model_admin(label).get_actions(request))


def test_every_admin_action_declares_its_permissions_and_has_a_row(world):
    offered = {}
    for model, model_admin in admin.site._registry.items():
        actions = _offered(world, "superuser", model._meta.label)
        for name in actions:
            func = model_admin.get_action(name)[0]
            assert getattr(func, "allowed_permissions", None), f"{model._meta.label}.{name} declares no permissions"
        if actions:
            offered[model._meta.label] = actions
    assert offered == {label: set(actions) for label, actions in ADMIN_ACTIONS.items()}


@pytest.mark.parametrize(("label", "action"), CASES, ids=[f"{label}.{action}" for label, action in CASES])
def test_admin_action_x_role(world, label, action):
    got = {role for role in ROLES if action in _offered(world, role, label)}
    assert got == ADMIN_ACTIONS[label][action]


# --- credentials: refused roles change nothing, the superuser mints -------------------------------------------

def _pending(world) -> OcpiParty:
    return OcpiParty.objects.get(party_id="PEN")


CREDENTIAL_POSTS = [  # (changelist, action, the selected object)
    ("/admin/flexibility/brp/", "rotate_token", lambda w: w["brp"].pk),
    ("/admin/ocpi_client/ocpiparty/", "issue_token", lambda w: _pending(w).pk),
    ("/admin/ocpi_client/ocpiparty/", "register", lambda w: _pending(w).pk),
]


@pytest.mark.parametrize("role", ["analyst", "operator", "staff"])
@pytest.mark.parametrize(("url", "action", "pk"), CREDENTIAL_POSTS, ids=[a for _, a, _ in CREDENTIAL_POSTS])
def test_credential_actions_posted_by_other_roles_change_nothing(client, world, role, url, action, pk,
                                                                  django_capture_on_commit_callbacks):
    before = _state()
    as_caller(client, world, role, "admin")
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(url, {"action": action, "_selected_action": [pk(world)], "index": 0}, follow=True)
    assert response.status_code in (200, 403)
    assert _state() == before and queued == []  # no token changed, no registration queued
    assert not any("token" in str(m).lower() and "=" in str(m) for m in get_messages(response.wsgi_request))
    # The BRP's token still works, the pending party's token A still opens the credentials door.
    assert client.get("/api/v1/signals/", HTTP_AUTHORIZATION=f"Token {world['brp'].api_token}").status_code == 200
    token_a = base64.b64encode(PENDING_TOKEN.encode()).decode()
    assert client.get("/ocpi/versions", HTTP_AUTHORIZATION=f"Token {token_a}").status_code == 200


def _shown_token(response) -> str:
    """The token a message shows once: the last word of the message that shows it."""
    shown = [str(m) for m in get_messages(response.wsgi_request) if "API token" in str(m)]
    assert len(shown) == 1, shown
    return shown[0].split()[-1]


def test_superuser_rotates_a_brp_token_and_the_old_one_stops_working(client, world):
    old = world["brp"].api_token
    as_caller(client, world, "superuser", "admin")
    response = client.post("/admin/flexibility/brp/", {"action": "rotate_token", "_selected_action": [world["brp"].pk],
                                                       "index": 0}, follow=True)
    new = _shown_token(response)
    client.logout()
    assert Brp.objects.get(pk=world["brp"].pk).token_hash == hash_token(new) != hash_token(old)
    assert client.get("/api/v1/signals/", HTTP_AUTHORIZATION=f"Token {old}").status_code == 401
    assert client.get("/api/v1/signals/", HTTP_AUTHORIZATION=f"Token {new}").status_code == 200


def test_superuser_issues_a_token_a(client, world):
    party = _pending(world)
    as_caller(client, world, "superuser", "admin")
    response = client.post("/admin/ocpi_client/ocpiparty/", {"action": "issue_token", "_selected_action": [party.pk],
                                                              "index": 0}, follow=True)
    text = " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert "token A = " in text
    token = text.split("token A = ", 1)[1].split()[0]
    assert OcpiParty.objects.get(pk=party.pk).token_ours_hash == hash_token(token)


def test_a_party_added_by_hand_gets_its_token_a_from_the_issue_token_service(client, world):
    as_caller(client, world, "superuser", "admin")
    form = {"name": "Hand-made CPO", "versions_url": "https://cpo.example/ocpi/versions", "token_theirs": "",
            "country_code": "NL", "party_id": "HND", "role": "CPO", "_save": "Save"}
    response = client.post("/admin/ocpi_client/ocpiparty/add/", form, follow=True)
    text = " ".join(str(m) for m in get_messages(response.wsgi_request))
    token = text.split("token A = ", 1)[1].split()[0]
    party = OcpiParty.objects.get(name="Hand-made CPO")
    assert (party.status, party.party_id, party.token_ours_hash) == ("PENDING", "HND", hash_token(token))


@pytest.mark.parametrize(("action", "task"), [("pull_sessions_now", ("ocpi_client.pull_from_party", "sessions")),
                                              ("pull_locations_now", ("ocpi_client.pull_from_party", "locations")),
                                              ("update_credentials", ("ocpi_client.update_party_credentials",))])
def test_party_actions_queue_one_task_per_registered_party_on_commit(client, world, cpo, action, task,
                                                                      django_capture_on_commit_callbacks,
                                                                      monkeypatch):
    queued = []
    monkeypatch.setattr("smatch.celery.enqueue", lambda sig, *args, **kw: queued.append((sig.name, *args)))
    as_caller(client, world, "superuser", "admin")
    with django_capture_on_commit_callbacks() as callbacks:
        client.post("/admin/ocpi_client/ocpiparty/", {"action": action, "index": 0,
                                                      "_selected_action": [cpo.pk, _pending(world).pk]})
    assert queued == []  # nothing before the commit
    for callback in callbacks:
        callback()
    name, *rest = task
    assert queued == [(name, cpo.pk, *rest)]  # the pending party is not pulled nor updated


# --- token_theirs: write-only -------------------------------------------------------------------------------

def _party_form(party: OcpiParty, **changes) -> dict:
    form = {"name": party.name, "versions_url": party.versions_url, "country_code": party.country_code,
            "party_id": party.party_id, "role": party.role, "_save": "Save"}
    return {**form, **changes}


@pytest.mark.parametrize("role", ROLES)
def test_token_theirs_is_rendered_to_no_one(client, world, cpo, role):
    secret = OcpiParty.objects.get(pk=cpo.pk).token_theirs
    assert secret
    as_caller(client, world, role, "admin")
    pages = [f"/admin/ocpi_client/ocpiparty/{cpo.pk}/change/", "/admin/ocpi_client/ocpiparty/",
             f"/admin/ocpi_client/ocpiparty/{cpo.pk}/history/"]
    for page in pages:
        response = client.get(page)
        assert response.status_code in (200, 403), page
        assert secret.encode() not in response.content, f"{role} sees token_theirs on {page}"
    search = client.get(f"/admin/ocpi_client/ocpiparty/?q={secret}")  # nor can it be guessed by searching
    assert search.status_code == 403 or search.context["cl"].result_count == 0
    change = client.get(pages[0])
    has_field = b'name="token_theirs"' in change.content
    assert has_field == (role == "superuser")
    if has_field:
        assert b'type="password"' in change.content


def test_the_superuser_sets_token_theirs_and_an_empty_field_keeps_it(client, world, cpo):
    url = f"/admin/ocpi_client/ocpiparty/{cpo.pk}/change/"
    as_caller(client, world, "superuser", "admin")
    assert client.post(url, _party_form(cpo, token_theirs="new-token-we-send")).status_code == 302
    assert OcpiParty.objects.get(pk=cpo.pk).token_theirs == "new-token-we-send"
    assert client.post(url, _party_form(cpo, name="Renamed CPO", token_theirs="")).status_code == 302
    party = OcpiParty.objects.get(pk=cpo.pk)
    assert (party.name, party.token_theirs) == ("Renamed CPO", "new-token-we-send")
    for page in (url, f"/admin/ocpi_client/ocpiparty/{cpo.pk}/history/", "/admin/"):  # recent actions too
        assert b"new-token-we-send" not in client.get(page).content


def test_an_operator_cannot_set_token_theirs(client, world, cpo):
    """Operators may edit a party (change permission) but not the token: a posted value is ignored."""
    url = f"/admin/ocpi_client/ocpiparty/{cpo.pk}/change/"
    as_caller(client, world, "operator", "admin")
    assert client.post(url, _party_form(cpo, name="Edited", token_theirs="attacker-token")).status_code == 302
    party = OcpiParty.objects.get(pk=cpo.pk)
    assert (party.name, party.token_theirs) == ("Edited", cpo.token_theirs)


# --- create forms go through the services --------------------------------------------------------------------

def _form_error_codes(response) -> set[str]:
    form = response.context["adminform"].form
    return {error.code for errors in form.errors.as_data().values() for error in errors}


@pytest.mark.parametrize("add_page", ["/admin/flexibility/brp/add/", "/admin/ocpi_client/ocpiparty/add/"])
@pytest.mark.parametrize(("role", "status"), [("analyst", 403), ("operator", 403), ("staff", 403),
                                              ("superuser", 200)])
def test_only_the_superuser_may_create_what_mints_a_token(client, world, role, status, add_page):
    """A BRP's API token, an OCPI party's token A: both need the credentials permission."""
    assert as_caller(client, world, role, "admin").get(add_page).status_code == status


def test_brp_admin_form_refuses_what_the_service_refuses(client, world):
    as_caller(client, world, "superuser", "admin")
    response = client.post("/admin/flexibility/brp/add/", {"name": "Late supplier", "policy": "auto_after",
                                                           "auto_after_s": ""})
    assert response.status_code == 200 and _form_error_codes(response) == {"auto_after_needs_seconds"}
    assert not Brp.objects.filter(name="Late supplier").exists()


def test_brp_admin_form_creates_through_the_service_with_a_working_token(client, world):
    as_caller(client, world, "superuser", "admin")
    response = client.post("/admin/flexibility/brp/add/", {"name": "New supplier", "policy": "auto_after",
                                                           "auto_after_s": "90"}, follow=True)
    token = _shown_token(response)
    brp = Brp.objects.get(name="New supplier")
    assert (brp.policy, brp.auto_after_s, brp.is_active) == ("auto_after", 90, True)
    assert brp.token_hash == hash_token(token) and brp.token_prefix == token[:8]
    client.logout()
    assert client.get("/api/v1/signals/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200


RUN = {"period_from_0": "2025-05-05", "period_from_1": "00:00:00", "period_to_0": "2025-05-06",
       "period_to_1": "00:00:00", "baseline": "trapezoid"}


@pytest.mark.parametrize(("grid_s", "code"), [("1e-9", "grid_s_out_of_range"), ("0.5", "grid_s_out_of_range"),
                                              ("901", "grid_s_out_of_range"), ("-60", "grid_s_out_of_range")])
def test_settlement_run_admin_form_refuses_what_the_api_refuses(client, world, grid_s, code):
    as_caller(client, world, "analyst", "admin")
    before = SettlementRun.objects.count()
    response = client.post("/admin/settlement/settlementrun/add/", {**RUN, "grid_s": grid_s})
    assert response.status_code == 200 and _form_error_codes(response) == {code}
    assert SettlementRun.objects.count() == before


def test_settlement_run_admin_form_refuses_an_empty_period(client, world):
    as_caller(client, world, "analyst", "admin")
    response = client.post("/admin/settlement/settlementrun/add/", {**RUN, "period_to_0": "2025-05-05",
                                                                     "grid_s": "60"})
    assert response.status_code == 200 and _form_error_codes(response) == {"empty_period"}


def test_settlement_run_admin_form_starts_the_run_through_the_service(client, world,
                                                                      django_capture_on_commit_callbacks):
    as_caller(client, world, "analyst", "admin")
    before = set(SettlementRun.objects.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks() as queued:
        response = client.post("/admin/settlement/settlementrun/add/", {**RUN, "grid_s": "30"})
    assert response.status_code == 302
    run = SettlementRun.objects.exclude(pk__in=before).get()
    assert (run.grid_s, run.baseline, run.created_by, run.status) == (30.0, "trapezoid", world["users"]["analyst"],
                                                                      "pending")
    assert len(queued) == 1  # queued once, after the commit (the service's queue_run)


def test_start_run_itself_refuses_a_tiny_grid_with_its_code(db):
    from datetime import UTC, datetime

    from settlement import services

    with pytest.raises(services.SettlementError) as refused:
        services.start_run(datetime(2025, 5, 5, tzinfo=UTC), datetime(2025, 5, 6, tzinfo=UTC), grid_s=1e-9)
    assert refused.value.code == "grid_s_out_of_range"
    assert not SettlementRun.objects.exists()


def test_no_group_holds_the_credentials_permission_even_after_a_rebuild(world):
    """The groups are rebuilt after every migrate: the permission exists and stays out of both."""
    from django.contrib.auth.models import Group, Permission

    from smatch.roles import CREDENTIALS, CREDENTIALS_PERM, ensure_groups

    ensure_groups()
    ensure_groups()  # idempotent: one permission, still in no group
    assert Permission.objects.filter(codename=CREDENTIALS).count() == 1
    assert not Group.objects.filter(permissions__codename=CREDENTIALS).exists()
    assert {role: world["users"][role].has_perm(CREDENTIALS_PERM) for role in ROLES} == {
        "analyst": False, "operator": False, "superuser": True, "staff": False}
