"""The published OpenAPI schema tells clients (and the fuzzers in this folder) how to authenticate."""

import pytest
from rest_framework.test import APIClient

from settlement.models import SettlementRun


@pytest.mark.parametrize(("path", "method"), [("/api/v1/signals/", "post"), ("/api/v1/settlement/runs/", "get")])
def test_schema_declares_the_brp_token(client, db, path, method):
    schema = client.get("/api/schema/?format=json").json()
    scheme = schema["components"]["securitySchemes"]["brpToken"]
    assert scheme == {"type": "apiKey", "in": "header", "name": "Authorization",
                      "description": 'Token-based authentication with required prefix "Token"'}
    assert {"brpToken": []} in schema["paths"][path][method]["security"]


def test_schema_documents_the_refusals(client, db):
    paths = client.get("/api/schema/?format=json").json()["paths"]
    assert {"400", "401", "403", "409", "429"} <= set(paths["/api/v1/signals/"]["post"]["responses"])
    assert {"401", "403", "404", "409"} <= set(paths["/api/v1/signals/{id}/cancel/"]["post"]["responses"])
    assert {"400", "401", "403"} <= set(paths["/api/v1/settlement/runs/"]["get"]["responses"])
    limit = next(p for p in paths["/api/v1/signals/"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000}


@pytest.mark.parametrize("query", ["offset=null", "offset=-1", "limit=0", "limit=100000", "offset=1&offset=2",
                                   f"offset={10**30}"])
def test_paging_parameters_out_of_range_are_400_not_page_one(brp, query):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {brp.api_token}")
    response = client.get(f"/api/v1/signals/?{query}")
    assert response.status_code == 400
    assert set(response.json()) <= {"limit", "offset"}


@pytest.mark.parametrize("path", ["/api/v1/signals/0.5/", "/api/v1/signals/x.y/cancel/",
                                  "/api/v1/settlement/activations/1.0/"])
def test_malformed_ids_get_a_json_404(brp, path):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {brp.api_token}")
    response = client.post(path) if path.endswith("cancel/") else client.get(path)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"


@pytest.mark.parametrize(("fields", "bad"), [({"grid_s": 1e-9}, "grid_s"), ({"grid_s": 1e9}, "grid_s"),
                                             ({"baseline": "made-up"}, "baseline")])
def test_settlement_run_parameters_are_bounded(client, analyst, fields, bad):
    client.force_login(analyst)
    body = {"period_from": "2025-05-06T00:00:00Z", "period_to": "2025-05-07T00:00:00Z", **fields}
    response = client.post("/api/v1/settlement/runs/", body, content_type="application/json")
    assert response.status_code == 400 and set(response.json()) == {bad}
    assert not SettlementRun.objects.exists()


@pytest.mark.parametrize("fields", [{"external_id": 0}, {"external_id": True}, {"direction": 1.5}])
def test_signal_strings_must_be_strings(brp, fields):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {brp.api_token}")
    body = {"external_id": "sig-1", "direction": "reduce_consumption", **fields}
    response = client.post("/api/v1/signals/", body, format="json")
    assert response.status_code == 400 and response.json() == {k: ["Not a valid string."] for k in fields}


def test_schema_documents_target_kw_and_the_forecast_endpoint_with_examples(client, db):
    """Issue 16, "Done means": target_kw (request and reply), the target figures and the forecast endpoint."""
    schema = client.get("/api/schema/?format=json").json()
    components, paths = schema["components"]["schemas"], schema["paths"]
    assert "positive" in components["SignalCreate"]["properties"]["target_kw"]["description"]
    assert components["Signal"]["properties"]["target_kw"]["type"] == "number"
    target = components["Signal"]["properties"]["activation"]["properties"]["target"]["properties"]
    assert {"target_kw", "expected_kw", "shortfall_kw", "measured_kw"} <= set(target)
    post = paths["/api/v1/signals/"]["post"]
    requests = post["requestBody"]["content"]["application/json"]["examples"].values()
    assert any(e["value"].get("target_kw") for e in requests)
    refused = post["responses"]["400"]["content"]["application/json"]
    assert {"target_not_positive", "target_above_fleet_max", "direction_not_actionable"} <= \
        set(refused["schema"]["anyOf"][0]["properties"]["code"]["enum"])
    assert [e["value"]["code"] for e in refused["examples"].values()] == ["target_above_fleet_max"]
    replies = post["responses"]["200"]["content"]["application/json"]["examples"].values()
    assert any(e["value"]["activation"]["target"]["target_kw"] for e in replies)

    forecast = paths["/api/v1/flexibility/"]["get"]
    assert {p["name"] for p in forecast["parameters"] if p["required"]} == {"from", "to"}
    assert {"brpToken": []} in forecast["security"]
    rows = forecast["responses"]["200"]["content"]["application/json"]["examples"].values()
    assert all({"p10_kw", "p50_kw", "p90_kw", "sheddable_now_kw"} <= set(e["value"][0]) for e in rows)
    window = forecast["responses"]["400"]["content"]["application/json"]
    assert window["schema"] == {"$ref": "#/components/schemas/WindowRefused"}
    for code in ("window_unreadable", "window_not_on_isp_boundary", "window_backwards", "window_too_long"):
        assert code in forecast["responses"]["400"]["description"]
    assert [e["value"]["code"] for e in window["examples"].values()] == ["window_backwards"]
