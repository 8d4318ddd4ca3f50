"""Bad input at the REST doors: schemathesis fuzzes the BRP and settlement APIs from /api/schema/.

Every generated request (schema-valid and deliberately invalid: wrong types, absurd numbers, dates in
year 1 or 9999, huge strings, unknown fields, missing credentials) goes through the real Django WSGI app
in process with real credentials: a BRP token for the signals API and settlement results, an analyst
(basic auth) for settlement runs. No answer may be a 5xx; every answer must match the schema, including
its documented refusals; invalid input must be refused.

Excluded check, and why: `positive_data_acceptance` (a schema-valid request must succeed). The steering
rules depend on the clock and on stored state (an end time at most 15 minutes ahead, period_to after
period_from, a repeated id with other content is 409): OpenAPI cannot express them, so a schema-valid
request may rightly get a documented 400 / 409.
"""

from __future__ import annotations

import base64

import pytest
import schemathesis
from django.core import signals
from django.core.cache import cache
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


def basic(user) -> str:
    return "Basic " + base64.b64encode(f"{user.username}:pw-{user.username}".encode()).decode()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_schema_conformance(case, brp, analyst, settled):
    cache.clear()  # the per-BRP throttle would answer 429 after 600 requests: not what is under test
    path = case.operation.path
    caller = basic(analyst) if path.startswith("/api/v1/settlement/runs") else f"Token {brp.api_token}"
    headers = {"Authorization": caller}
    response = case.call(headers=headers)
    tally.record(f"REST {case.operation.method.upper()} {path}", response.status_code)
    case.validate_response(response, headers=headers, excluded_checks=[positive_data_acceptance])
