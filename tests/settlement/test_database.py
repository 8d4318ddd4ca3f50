"""The database door: SessionState + Activation rows -> a settlement run, its rows, files, admin and REST."""

from __future__ import annotations

import pandas as pd
import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from flexibility.models import Activation, Signal
from ocpi.models import OcpiParty, Session, SessionState
from settlement import services
from settlement.error_codes import SettlementErrorCode
from settlement.models import ActivationResult, IspResult, SettlementRun
from tests.settlement.helpers import at, sampled_session, truth_energy_kwh
from tests.settlement.test_settle import CLEAR, SIGNAL, throttled


@pytest.fixture
def output_dir(settings, tmp_path):
    settings.SETTLEMENT_OUTPUT_DIR = tmp_path / "runs"
    return settings.SETTLEMENT_OUTPUT_DIR


@pytest.fixture
def charged(db, brp, output_dir):
    """Four three-phase sessions throttled 23:04:30-23:15 in an activation of `brp`, with a price."""
    party = OcpiParty.objects.create(name="CPO", country_code="NL", party_id="CPO", token_ours_hash="f" * 64)
    for i in range(4):
        start = at("22:30:00") + pd.Timedelta(seconds=13 * i)
        session = Session.objects.create(
            party=party, country_code="NL", ocpi_party_id="CPO", session_id=f"S{i}", location_id="L",
            evse_uid=f"EVSE{i}", connector_id="1", status="ACTIVE", start_date_time=start, kwh=0.0,
            last_updated=start)
        SessionState.objects.bulk_create([
            SessionState(session=session, timestamp=r["timestamp"], kwh=r["kwh"], current_l1_a=r["current_l1_a"],
                         current_l2_a=r["current_l2_a"], current_l3_a=r["current_l3_a"], status="ACTIVE")
            for r in sampled_session(f"S{i}", f"EVSE{i}", start, at("23:50:00"), throttled)])
    signal = Signal.objects.create(brp=brp, external_id="x1", direction="reduce_consumption",
                                   status=Signal.Status.RESTORED)
    activation = Activation.objects.create(signal=signal, relayed_at=SIGNAL, ends_at=CLEAR,
                                           status=Activation.Status.RESTORED)
    services_prices = pd.DataFrame({"isp_start": [at("23:00:00")], "price_eur_per_mwh": [300.0]})
    from settlement.models import ImbalancePrice

    ImbalancePrice.objects.create(isp_start=services_prices["isp_start"][0], price_eur_per_mwh=300.0)
    return activation


def settle_now() -> SettlementRun:
    return services.start_run(at("00:00:00"), at("23:59:00"), run_async=False)


def test_a_run_settles_the_database(charged, output_dir):
    run = settle_now()
    assert run.status == SettlementRun.Status.DONE, run.error
    result = ActivationResult.objects.get(run=run)
    assert result.activation_id == charged.pk and result.brp_id == charged.signal.brp_id
    # 4 sessions x (11.04 kW x 30 s + 5.52 kW x 630 s) / 3600 = 4 x 1.058 = 4.232 kWh delivered.
    assert result.delivered_kwh == pytest.approx(4 * truth_energy_kwh(throttled, SIGNAL, CLEAR), rel=2e-3)
    # Baseline 4 x 11.04 = 44.16 kW over 11 min = 8.096 kWh.
    assert result.baseline_kwh == pytest.approx(8.096, rel=1e-6)
    isp = IspResult.objects.get(activation_result=result)
    assert isp.price_eur_per_mwh == 300.0
    assert isp.value_eur == pytest.approx(isp.shed_kwh / 1000 * 300.0)
    assert (output_dir / f"run_{run.pk}" / "activations.csv").exists()
    assert run.summary["kpis"]["throttled_sessions"] == 0.0  # no Curtailment rows were recorded


def test_a_done_run_is_not_settled_twice(charged):
    run = settle_now()
    services.run_settlement(run.pk)
    assert ActivationResult.objects.filter(run=run).count() == 1


def test_a_period_without_activations_fails_clearly(db, output_dir):
    run = services.start_run(at("00:00:00"), at("01:00:00"), run_async=False)
    assert run.status == SettlementRun.Status.FAILED and run.error == "no activations in the period"


def test_settle_command_database_door(charged, capsys):
    call_command("settle", "--from", "2025-05-06T00:00:00Z", "--to", "2025-05-07T00:00:00Z")
    assert "1 activation(s)" in capsys.readouterr().out


def test_rest_analyst_sees_all_and_brp_only_its_own(charged, analyst, brp, other_brp):
    settle_now()
    client = APIClient()
    assert client.get("/api/v1/settlement/activations/").status_code in (401, 403)
    client.force_authenticate(analyst)
    assert client.get("/api/v1/settlement/activations/").json()["count"] == 1
    assert client.get("/api/v1/settlement/runs/").json()["count"] == 1
    own = APIClient(HTTP_AUTHORIZATION=f"Token {brp.api_token}")
    body = own.get("/api/v1/settlement/activations/").json()["results"]
    assert len(body) == 1 and body[0]["isps"][0]["price_eur_per_mwh"] == 300.0
    assert own.get("/api/v1/settlement/runs/").status_code == 403  # runs are for analysts
    other = APIClient(HTTP_AUTHORIZATION=f"Token {other_brp.api_token}")
    assert other.get("/api/v1/settlement/activations/").json()["count"] == 0


def test_rest_analyst_starts_a_run(charged, analyst, django_capture_on_commit_callbacks):
    client = APIClient()
    client.force_authenticate(analyst)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/settlement/runs/", {"period_from": "2025-05-06T00:00:00Z",
                                                            "period_to": "2025-05-07T00:00:00Z"}, format="json")
    assert response.status_code == 201, response.content
    run = SettlementRun.objects.get(pk=response.json()["id"])
    assert run.status == SettlementRun.Status.DONE and run.created_by == analyst
    bad = client.post("/api/v1/settlement/runs/", {"period_from": "2025-05-07T00:00:00Z",
                                                   "period_to": "2025-05-06T00:00:00Z"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == SettlementErrorCode.EMPTY_PERIOD
    assert bad.json() == {"code": "empty_period", "detail": "period_to must be after period_from"}  # as documented


def test_admin_download(charged, analyst, client):
    run = settle_now()
    client.force_login(analyst)
    response = client.get(f"/admin/settlement/settlementrun/{run.pk}/download/isp.csv/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"isp_start,activation_id")
    # Only names listed in the run's folder are served (a "/" never reaches the view).
    assert client.get(f"/admin/settlement/settlementrun/{run.pk}/download/secret.txt/").status_code == 404
    assert client.get(f"/admin/settlement/settlementrun/{run.pk}/change/").status_code == 200


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_run_on_postgresql(real_services, charged):
    run = settle_now()
    assert run.status == SettlementRun.Status.DONE, run.error
    assert ActivationResult.objects.get(run=run).baseline_kwh == pytest.approx(8.096, rel=1e-6)
