"""The BRP REST API: tokens, idempotency, refusals, isolation between BRPs, cancel."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from flexibility import lifecycle, summary
from flexibility.error_codes import FlexibilityErrorCode
from flexibility.models import Activation, Curtailment, Signal
from ocpi.models import OcpiParty, Session
from tests.conftest import T0

URL = "/api/v1/signals/"


def api(brp=None, token=None):
    client = APIClient()
    if brp is not None or token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token or brp.api_token}")
    return client


def post(client, **fields):
    body = {"external_id": "sig-1", "direction": "reduce_consumption", **fields}
    return client.post(URL, body, format="json")


def test_no_token_and_a_wrong_token_are_refused(db):
    assert post(api()).status_code == 401
    response = post(api(token="not-a-token"))
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"
    assert not Signal.objects.exists()


def test_post_answers_202_with_a_url_to_poll_and_200_on_repeat(brp):
    first = post(api(brp))
    assert first.status_code == 202
    body = first.json()
    assert body["status"] == "received" and body["url"].endswith(f"{URL}{body['id']}/")
    again = post(api(brp))
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert api(brp).get(body["url"]).json()["external_id"] == "sig-1"


def test_same_id_different_content_is_409(brp):
    post(api(brp))
    response = post(api(brp), end_time=(T0 + timedelta(minutes=3)).isoformat())
    assert response.status_code == 409 and response.json()["code"] == "external_id_reused"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"direction": "increase_consumption"}, "direction_not_actionable"),
        ({"end_time": (T0 - timedelta(minutes=1)).isoformat()}, "end_time_out_of_range"),
        ({"end_time": (T0 + timedelta(minutes=20)).isoformat()}, "end_time_out_of_range"),
        ({"isp_start": T0.isoformat()}, "isp_start_not_a_boundary"),
    ],
)
def test_a_refused_signal_gets_a_400_with_its_code_and_a_message(brp, fields, code):
    response = post(api(brp), **fields)
    assert response.status_code == 400
    assert response.json()["code"] == code and response.json()["detail"]
    assert not Signal.objects.exists()


@pytest.mark.parametrize(("fields", "field"), [({"end_time": "tomorrow-ish"}, "end_time"),
                                               ({"external_id": "x" * 101}, "external_id")])
def test_an_invalid_field_is_named_with_drfs_code(brp, fields, field):
    response = post(api(brp), **fields)
    assert response.status_code == 400
    assert set(response.json()) == {field} and response.json()[field]
    assert not Signal.objects.exists()


def test_missing_fields_are_named(brp):
    response = api(brp).post(URL, {}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"external_id", "direction"}


def test_a_brp_sees_only_its_own_signals(brp, other_brp):
    mine = post(api(brp)).json()
    post(api(other_brp), external_id="theirs")
    listing = api(brp).get(URL).json()
    assert [s["external_id"] for s in listing["results"]] == ["sig-1"]
    assert api(other_brp).get(mine["url"]).status_code == 404
    assert api(other_brp).post(f"{mine['url']}cancel/").status_code == 404


def test_cancel_a_waiting_signal(brp):
    signal = post(api(brp)).json()
    response = api(brp).post(f"{signal['url']}cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = api(brp).post(f"{signal['url']}cancel/")
    assert again.status_code == 409 and again.json()["code"] == "nothing_to_end"


def test_brp_create_prints_a_working_token(db, clock):
    out = StringIO()
    call_command("brp_create", "Command BRP", "--policy", "auto-after=30", stdout=out, stderr=StringIO())
    token = out.getvalue().strip()
    assert post(api(token=token)).status_code == 202


def test_openapi_schema_describes_the_signal_api(db, client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/v1/signals/" in schema["paths"]
    conflict = schema["paths"]["/api/v1/signals/"]["post"]["responses"]["409"]["content"]["application/json"]
    assert conflict["schema"]["properties"]["code"]["enum"] == [code.value for code in FlexibilityErrorCode]
    assert "/api/v1/signals/{id}/cancel/" in schema["paths"]


def test_the_activation_shows_cap_states_and_delivery_separately(brp):
    """A BRP reads how many caps are pending at the CSMS, in force, refused, without a result, and
    how delivery was judged (counts hand-set here: two in force, one restored from pending, one refused)."""
    signal = Signal.objects.create(brp=brp, external_id="sig-9", direction="reduce_consumption", status="restored")
    activation = Activation.objects.create(signal=signal, relayed_at=T0, ends_at=T0 + timedelta(minutes=11),
                                           status="restored", restored_at=T0 + timedelta(minutes=11))
    party = OcpiParty.objects.create(name="cpo", token_ours_hash="h", status="REGISTERED")
    states = [("in_force", "", "responded", "resumed"), ("restored", "in_force", "not_responded", "not_resumed"),
              ("restored", "pending", "no_data", ""), ("refused", "", "", "")]
    for i, (status, restored_from, delivered, resumed) in enumerate(states):
        session = Session.objects.create(
            party=party, country_code="NL", ocpi_party_id="CPO", session_id=f"S{i}", location_id="L",
            evse_uid=f"E{i}", connector_id="1", status="ACTIVE", start_date_time=T0, kwh=1, last_updated=T0)
        Curtailment.objects.create(activation=activation, session=session, starts_at=T0, ends_at=T0, limit_a=8,
                                   expected_kw=1, status=status, restored_from=restored_from, delivery=delivered,
                                   resumption=resumed)
    body = api(brp).get(f"{URL}{signal.pk}/").json()["activation"]
    assert body["caps_by_state"] == {"pending": 1, "in_force": 2, "refused": 1, "no_result": 0, "failed": 0,
                                     "unsent": 0}
    assert body["delivery"] == {"responded": 1, "not_responded": 1, "no_data": 1, "resumed": 1,
                                "drivers_at_risk": 1}
    assert body["sessions_throttled"] == 3 and body["outcome"] == "partial"


def _restored_signal(brp, n: int) -> None:
    signal = Signal.objects.create(brp=brp, external_id=f"done-{n}", direction="reduce_consumption", received_at=T0,
                                   status="restored")
    activation = Activation.objects.create(signal=signal, relayed_at=T0, ends_at=T0 + timedelta(minutes=11))
    lifecycle.activation_restored(activation.pk, T0 + timedelta(minutes=11),
                                  **summary.final_figures(activation))


def test_the_list_reads_restored_figures_from_their_rows_not_per_signal(brp):
    def queries_for_the_list() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api(brp).get(URL).status_code == 200
        return len(queries)

    _restored_signal(brp, 1)
    one = queries_for_the_list()
    for n in range(2, 6):
        _restored_signal(brp, n)
    assert queries_for_the_list() == one  # five restored signals cost what one does
