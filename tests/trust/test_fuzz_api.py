"""Bad input at the REST doors: schemathesis fuzzes the BRP and settlement APIs from /api/schema/.

Every generated request (schema-valid and deliberately invalid: wrong types, absurd numbers, dates in
year 1 or 9999, huge strings, unknown fields, missing credentials) goes through the real Django WSGI app
in process with real credentials: a BRP token for the signals API and settlement results, an analyst's
session (cookies and CSRF header, as a browser sends them; no HTTP Basic) for settlement runs. No
answer may be a 5xx; every answer must match the schema, including its documented refusals; invalid
input must be refused.

Excluded check, and why: `positive_data_acceptance` (a schema-valid request must succeed). The steering
rules depend on the clock and on stored state (an end time at most 15 minutes ahead, period_to after
period_from, a repeated id with other content is 409): OpenAPI cannot express them, so a schema-valid
request may rightly get a documented 400 / 409.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from . import tally

MAX_EXAMPLES = 60  # per operation and phase; the whole file stays well under a minute on one core

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", WSGIHandler())
# Unknown query parameters are ignored, as REST clients expect; everything declared is checked strictly.
schema.config.generation.update(allow_extra_parameters=False)


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """The WSGI handler closes "old" connections around each request; inside the test's transaction
    PostgreSQL's would be closed (Django's test client does the same as this)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def _no_rate_limit(settings):
    """Hundreds of cases per operation: the throttles (and their documented 429) are tested elsewhere."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        scope: "1000000/min" for scope in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]}}


CSRF = "fuzz" * 8  # a well-formed CSRF secret (32 letters), sent as cookie and header like a browser


@pytest.fixture
def analyst_session(analyst) -> dict:
    """The analyst's cookies: a logged-in session and the CSRF cookie matching CSRF."""
    from django.test import Client

    client = Client()
    client.force_login(analyst)
    return {"sessionid": client.cookies["sessionid"].value, "csrftoken": CSRF}


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_schema_conformance(case, brp, analyst_session, settled):
    path = case.operation.path
    if path.startswith("/api/v1/settlement/runs"):
        # Sent as cookies (the WSGI client replaces a Cookie header); named in `headers` too, so that the
        # auth check knows they are real credentials and probes the operation without and with bad ones.
        case.cookies = {**(case.cookies or {}), **analyst_session}
        if case.headers:  # a generated token is for the other scheme: the analyst sends only the session
            case.headers.pop("Authorization", None)
        headers = {"X-CSRFToken": CSRF, "Cookie": "; ".join(f"{k}={v}" for k, v in analyst_session.items())}
    else:
        headers = {"Authorization": f"Token {brp.api_token}"}
    response = case.call(headers=headers)
    tally.record(f"REST {case.operation.method.upper()} {path}", response.status_code)
    case.validate_response(response, headers=headers, excluded_checks=[positive_data_acceptance])
