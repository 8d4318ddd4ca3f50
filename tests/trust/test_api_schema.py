"""The published OpenAPI schema tells clients (and the fuzzers in this folder) how to authenticate."""

import pytest


@pytest.mark.parametrize(("path", "method"), [("/api/v1/signals/", "post"), ("/api/v1/settlement/runs/", "get")])
def test_schema_declares_the_brp_token(client, db, path, method):
    schema = client.get("/api/schema/?format=json").json()
    scheme = schema["components"]["securitySchemes"]["brpToken"]
    assert scheme == {"type": "apiKey", "in": "header", "name": "Authorization",
                      "description": 'Token-based authentication with required prefix "Token"'}
    assert {"brpToken": []} in schema["paths"][path][method]["security"]
