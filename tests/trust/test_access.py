"""Access: every endpoint x every kind of caller gets exactly what it should.

Endpoints come from the URL resolver: a new URL without a row here fails `test_every_url_has_a_row`.
Callers: nobody, a wrong token, a revoked credential (an inactive BRP, a REVOKED OCPI party), the two
BRPs, another OCPI party, a PENDING OCPI party (token A only), an analyst's password as HTTP Basic
(refused everywhere: the API takes tokens and sessions only), and the staff roles analyst, operator,
superuser and plain staff in no group (logged in to the admin; they hold no API token).
Admin actions x roles, the write-only OCPI token and the admin create forms: test_admin_access.py.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver

from flexibility.models import Activation, Curtailment, Decision

from .conftest import CALLERS, _json, _state, as_caller

# --- the matrix -------------------------------------------------------------------------------------------

U401 = dict.fromkeys(CALLERS, 401)


def row(default: int, **given: int) -> dict:
    return {**dict.fromkeys(CALLERS, default), **given}


BRP_ONLY = row(401, brp=200, other_brp=200)
ANALYSTS = row(401, brp=403, other_brp=403, analyst=200, operator=403, superuser=200, staff=403)
OCPI_ANY_PARTY = row(401, cpo=200, other_cpo=200, pending=200)
# OCPI: the unknown-path answer is the same for everyone (no auth needed to say "no such endpoint").

REST = [  # (url name, method, path(world), body, {caller: HTTP status})
    ("signal-list", "GET", lambda w: "/api/v1/signals/", None, BRP_ONLY),
    ("signal-list", "POST", lambda w: "/api/v1/signals/", {"external_id": "new", "direction": "reduce_consumption"},
     row(401, brp=202, other_brp=202)),
    ("signal-detail", "GET", lambda w: f"/api/v1/signals/{w['signal'].pk}/", None, row(401, brp=200, other_brp=404)),
    ("signal-cancel", "POST", lambda w: f"/api/v1/signals/{w['signal'].pk}/cancel/", None,
     row(401, brp=200, other_brp=404)),
    ("settlement-run-list", "GET", lambda w: "/api/v1/settlement/runs/", None, ANALYSTS),
    ("settlement-run-list", "POST", lambda w: "/api/v1/settlement/runs/",
     {"period_from": "2025-05-05T00:00:00Z", "period_to": "2025-05-06T00:00:00Z"},
     row(401, brp=403, other_brp=403, analyst=201, operator=403, superuser=201, staff=403)),
    ("settlement-run-detail", "GET", lambda w: f"/api/v1/settlement/runs/{w['run'].pk}/", None, ANALYSTS),
    ("settlement-activation-list", "GET", lambda w: "/api/v1/settlement/activations/", None,
     row(401, brp=200, other_brp=200, analyst=200, operator=403, superuser=200, staff=403)),
    ("settlement-activation-detail", "GET", lambda w: f"/api/v1/settlement/activations/{w['result'].pk}/", None,
     row(401, brp=200, other_brp=404, analyst=200, operator=403, superuser=200, staff=403)),
    ("evse-responsiveness-list", "GET", lambda w: "/api/v1/evse-responsiveness/", None,
     row(401, brp=403, other_brp=403, analyst=200, operator=200, superuser=200, staff=403)),
    ("flexibility-forecast", "GET", lambda w: "/api/v1/flexibility/?from=2025-05-06T17:00:00Z&to=2025-05-06T18:00:00Z",
     None, BRP_ONLY),
    ("schema", "GET", lambda w: "/api/schema/", None, row(200)),  # the API description is public
    ("api-docs", "GET", lambda w: "/api/docs/", None, row(200)),
    # First hour (H4): the landing page and Redoc are public; the operator console is admin (login, then roles).
    ("landing", "GET", lambda w: "/", None, row(200)),
    ("api-redoc", "GET", lambda w: "/api/redoc/", None, row(200)),
    ("console", "GET", lambda w: "/admin/console/", None,
     row(302, analyst=200, operator=200, superuser=200, staff=403)),
    ("console-panel", "GET", lambda w: "/admin/console/panel/", None,
     row(302, analyst=200, operator=200, superuser=200, staff=403)),
    # Ids that do not exist: who may knock is the point here (success is in tests/firsthour/test_console.py).
    ("console-chart", "GET", lambda w: "/admin/console/activation/999999/chart.json", None,
     row(302, analyst=404, operator=404, superuser=404, staff=403)),
    *((name, "POST", lambda w, verb=verb: f"/admin/console/signal/999999/{verb}/", {"reason": "x"},
       row(302, analyst=403, operator=404, superuser=404, staff=403))
      for name, verb in (("console-relay", "relay"), ("console-veto", "veto"), ("console-stop", "stop"))),
]
OCPI = [
    ("ocpi-versions", "GET", lambda w: "/ocpi/versions", None, OCPI_ANY_PARTY),
    ("ocpi-version-details", "GET", lambda w: "/ocpi/2.2.1", None, OCPI_ANY_PARTY),
    ("ocpi-credentials", "GET", lambda w: "/ocpi/2.2.1/credentials", None, OCPI_ANY_PARTY),
    ("ocpi-session", "GET", lambda w: "/ocpi/2.2.1/sessions/NL/CPO/S1", None, row(401, cpo=200, other_cpo=404)),
    ("ocpi-session", "PATCH", lambda w: "/ocpi/2.2.1/sessions/NL/CPO/S1",
     {"last_updated": "2025-05-06T17:06:00Z", "kwh": 99.0}, row(401, cpo=200, other_cpo=404)),
    ("ocpi-profile-result", "POST", lambda w: f"/ocpi/2.2.1/chargingprofiles/results/{w['call'].pk}",
     {"result": "ACCEPTED"}, row(401, cpo=200, other_cpo=404)),
    ("ocpi-active-profile", "PUT", lambda w: "/ocpi/2.2.1/chargingprofiles/S1",
     {"start_date_time": "2025-05-06T17:05:00Z",
      "charging_profile": {"charging_rate_unit": "A", "charging_profile_period": [{"start_period": 0, "limit": 8}]}},
     row(401, cpo=200, other_cpo=404)),
    (None, "GET", lambda w: "/ocpi/2.2.1/tariffs", None, row(404)),
]


def ids(rows):
    return [f"{method} {name}" for name, method, *_ in rows]


@pytest.mark.parametrize(("name", "method", "path", "body", "expected"), REST + OCPI, ids=ids(REST + OCPI))
def test_endpoint_x_caller(client_factory, world, name, method, path, body, expected):
    door = "ocpi" if name is None or name.startswith("ocpi") else "rest"
    # Callers that must be refused go first, so that the one allowed change (a cancel, a PATCH) comes last.
    order = sorted(CALLERS, key=lambda c: 200 <= expected[c] < 300)
    got = {}
    for caller in order:
        before = _state()
        client = as_caller(client_factory(), world, caller, door)
        response = client.generic(method, path(world), data=_json(body), content_type="application/json")
        got[caller] = response.status_code
        if not 200 <= response.status_code < 300:
            assert _state() == before, f"{caller} was refused ({response.status_code}) but changed something"
        if door == "ocpi":  # the OCPI envelope on every answer
            assert response.json()["status_code"] == (1000 if response.status_code < 300 else 2000)
    assert got == expected


def test_each_brp_sees_only_its_own(client_factory, world):
    mine, theirs = world["result"], world["run"].activations.exclude(pk=world["result"].pk).get()
    for caller, own in (("brp", mine), ("other_brp", theirs)):
        client = as_caller(client_factory(), world, caller, "rest")
        assert [r["id"] for r in client.get("/api/v1/settlement/activations/").json()["results"]] == [own.pk]
    signals = as_caller(client_factory(), world, "other_brp", "rest").get("/api/v1/signals/").json()["results"]
    assert signals == []
    analyst = as_caller(client_factory(), world, "analyst", "rest")
    assert {r["id"] for r in analyst.get("/api/v1/settlement/activations/").json()["results"]} == {mine.pk, theirs.pk}


# --- admin ------------------------------------------------------------------------------------------------

PRODUCT_VIEW = {"analyst": 200, "operator": 200, "superuser": 200, "staff": 403}
STAFF_ONLY = {"analyst": 403, "operator": 403, "superuser": 200, "staff": 403}
ADMIN_MODELS = {  # model -> changelist status per staff role; audit records are read-only for everyone
    "auth.Group": STAFF_ONLY, "auth.User": STAFF_ONLY,
    **{label: PRODUCT_VIEW for label in [
        "ocpi_client.OcpiParty", "ocpi_client.Session", "ocpi_client.SessionState", "ocpi_client.ChargingProfileCall",
        "ocpi_client.ActiveProfileUpdate", "ocpi_client.OcpiPartyRole", "ocpi_client.Connector",
        "flexibility.Brp", "flexibility.Signal", "flexibility.Activation",
        "flexibility.Curtailment", "flexibility.Decision", "flexibility.SteeringRule",
        "flexibility.EvseResponsiveness", "settlement.SettlementRun",
        "settlement.ActivationResult", "settlement.ImbalancePrice"]},
}
AUDIT = ["ocpi_client.Session", "ocpi_client.SessionState", "ocpi_client.ChargingProfileCall",
         "ocpi_client.ActiveProfileUpdate", "flexibility.Activation", "flexibility.Curtailment", "flexibility.Decision",
         "settlement.ActivationResult"]
ADMIN_SITE = {"index", "login", "logout", "password_change", "password_change_done", "autocomplete", "jsi18n",
              "view_on_site", "app_list", "settlement_download", "auth_user_password_change",
              "flexibility_evseresponsiveness_csv", None}


def _admin_url(label: str, view: str = "changelist") -> str:
    app, model = label.lower().split(".")
    return f"/admin/{app}/{model}/" + ("" if view == "changelist" else f"{view}/")


@pytest.mark.parametrize("label", sorted(ADMIN_MODELS))
def test_admin_pages_by_role(client_factory, world, label):
    for caller in ("none", "brp", "cpo"):  # tokens mean nothing to the admin: off to the login page
        response = as_caller(client_factory(), world, caller, "rest").get(_admin_url(label))
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    for caller, expected in ADMIN_MODELS[label].items():
        assert as_caller(client_factory(), world, caller, "admin").get(_admin_url(label)).status_code == expected


@pytest.mark.parametrize("label", AUDIT)
def test_audit_records_are_read_only_even_for_the_superuser(client_factory, world, label):
    from django.apps import apps

    model = apps.get_model(label)
    obj = model.objects.first() or _audit_object(model, world)
    before = list(model.objects.values())
    superuser = as_caller(client_factory(), world, "superuser", "admin")
    assert superuser.get(_admin_url(label, f"{obj.pk}/change")).status_code == 200  # viewable
    assert superuser.get(_admin_url(label, "add")).status_code == 403
    assert superuser.post(_admin_url(label, f"{obj.pk}/change"), {}).status_code == 403
    assert superuser.post(_admin_url(label, f"{obj.pk}/delete"), {"post": "yes"}).status_code == 403
    assert list(model.objects.values()) == before


def _audit_object(model, world):
    from ocpi.models import ActiveProfileUpdate, SessionState

    session, signal = world["session"], world["signal"]
    activation = Activation.objects.filter(signal=signal).first() or Activation.objects.create(
        signal=signal, relayed_at=signal.received_at, ends_at=signal.received_at)
    make = {
        SessionState: lambda: SessionState.objects.create(session=session, timestamp=session.last_updated, kwh=1.0,
                                                          status="ACTIVE"),
        ActiveProfileUpdate: lambda: ActiveProfileUpdate.objects.create(
            session=session, start_date_time=session.last_updated, charging_profile={}),
        Activation: lambda: activation,
        Curtailment: lambda: Curtailment.objects.create(activation=activation, session=session,
                                                        starts_at=activation.relayed_at, ends_at=activation.ends_at,
                                                        limit_a=8.0, expected_kw=0.0),
        Decision: lambda: Decision.objects.create(signal=signal, action=Decision.Action.VETO, reason="test"),
    }
    return make[model]()


ACTIONS = [("relay", {}), ("veto", {"reason": "grid congestion"}), ("stop_now", {})]


@pytest.mark.parametrize(("action", "extra"), ACTIONS, ids=[a for a, _ in ACTIONS])
def test_decisions_as_analyst_are_refused_and_change_nothing(client_factory, world, action, extra):
    client = as_caller(client_factory(), world, "analyst", "admin")
    before = _state()
    response = client.post("/admin/flexibility/signal/", {"action": action, "_selected_action": [world["signal"].pk],
                                                          "index": 0, **extra})
    assert response.status_code in (200, 302)  # Django admin: "No action selected", nothing run
    assert _state() == before and not Decision.objects.exists()


@pytest.mark.parametrize(("action", "extra", "status"), [("relay", {}, "relayed"),
                                                         ("veto", {"reason": "grid congestion"}, "vetoed")])
def test_decisions_as_operator_are_carried_out_and_recorded(client_factory, world, action, extra, status):
    client = as_caller(client_factory(), world, "operator", "admin")
    client.post("/admin/flexibility/signal/", {"action": action, "_selected_action": [world["signal"].pk],
                                               "index": 0, **extra})
    world["signal"].refresh_from_db()
    assert world["signal"].status == status
    decision = Decision.objects.get(signal=world["signal"])
    assert decision.actor_label and decision.action.lower().startswith(action[:4])


# --- every URL has a row ----------------------------------------------------------------------------------


def _walk(patterns, namespace=None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, pattern.namespace or namespace)
        elif isinstance(pattern, URLPattern):
            yield namespace, pattern.name, str(pattern.pattern)


def test_every_url_has_a_row():
    covered = {name for name, *_ in REST + OCPI}
    model_views = {f"{m._meta.app_label}_{m._meta.model_name}_{v}" for m in admin.site._registry
                   for v in ("changelist", "add", "history", "delete", "change")}
    assert {m._meta.label for m in admin.site._registry} == set(ADMIN_MODELS)
    missing = []
    for namespace, name, pattern in _walk(get_resolver().url_patterns):
        if namespace == "admin":
            if name not in model_views and name not in ADMIN_SITE:
                missing.append(f"admin:{name} {pattern}")
        elif name not in covered:
            missing.append(f"{name} {pattern}")
    assert not missing, f"endpoints without an access-matrix row: {missing}"
