"""The operator's and the analyst's flow in a real headless Chromium, against the real product.

live_server serves the product; a Celery worker process on Redis/PostgreSQL dispatches; the CPO
simulator receives the OCPI PUTs. A manual-policy BRP posts a signal over the REST API; the operator
sees it pending with its preview, relays it with the admin action and watches the activation fill in;
the analyst starts a settlement run of an earlier day and downloads the XLSX workbook.
Screenshots of every step land in test-artifacts/browser/.
"""

from __future__ import annotations

import re
from datetime import timedelta

import openpyxl
import pandas as pd
import pytest
import requests

from flexibility import services
from flexibility.models import Activation, Brp, Curtailment, Signal
from ocpi.models import OcpiParty, Session, SessionState
from settlement.models import ImbalancePrice
from smatch import clock
from tests.integration.conftest import registered_simulator, wait_for
from tests.settlement.helpers import at, sampled_session
from tests.settlement.test_settle import CLEAR, SIGNAL, throttled

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.usefixtures("chromium_available")]

WORKBOOK_SHEETS = {"activations", "isp", "sessions", "non_responders", "erasable_by_time_of_day"}


@pytest.fixture
def settlement_output(monkeypatch, settings, tmp_path):
    """Settlement files in tmp; set before the worker starts, since the worker writes them."""
    folder = tmp_path / "settlement"
    monkeypatch.setenv("SETTLEMENT_OUTPUT_DIR", str(folder))
    settings.SETTLEMENT_OUTPUT_DIR = folder
    return folder


@pytest.fixture
def worker(settlement_output, celery_worker_process):
    return celery_worker_process


@pytest.fixture
def simulator(worker, live_server, settings):
    with registered_simulator(live_server.url, settings) as sim:
        yield sim


@pytest.fixture
def last_year(transactional_db):
    """An earlier, finished activation (2025-05-06 23:04-23:15) of four sessions at 16 A capped to 8 A,
    with 5-minute states and an imbalance price of 300 EUR/MWh: what the analyst settles."""
    party = OcpiParty.objects.create(name="old CPO", country_code="NL", party_id="OLD", token_ours_hash="e" * 64)
    for i in range(4):
        start = at("22:30:00") + pd.Timedelta(seconds=13 * i)
        session = Session.objects.create(
            party=party, country_code="NL", ocpi_party_id="OLD", session_id=f"OLD{i}", location_id="L-OLD",
            evse_uid=f"OLD-EVSE{i}", connector_id="1", status="COMPLETED", start_date_time=start, kwh=0.0,
            last_updated=at("23:50:00"))
        SessionState.objects.bulk_create([
            SessionState(session=session, timestamp=r["timestamp"], kwh=r["kwh"], current_l1_a=r["current_l1_a"],
                         current_l2_a=r["current_l2_a"], current_l3_a=r["current_l3_a"], status="ACTIVE")
            for r in sampled_session(f"OLD{i}", f"OLD-EVSE{i}", start, at("23:50:00"), throttled)])
    old_brp, _ = services.create_brp("last year's BRP")
    signal = Signal.objects.create(brp=old_brp, external_id="old-1", direction="reduce_consumption",
                                   status=Signal.Status.RESTORED)
    Signal.objects.filter(pk=signal.pk).update(received_at=SIGNAL - pd.Timedelta(seconds=2))
    ImbalancePrice.objects.create(isp_start=at("23:00:00"), price_eur_per_mwh=300.0)
    return Activation.objects.create(signal=signal, relayed_at=SIGNAL, ends_at=CLEAR, restored_at=CLEAR,
                                     status=Activation.Status.RESTORED)


def label(choices: str) -> re.Pattern:
    """A status as the admin shows it: the choice's label, capitalised."""
    return re.compile(f"^({choices})$", re.IGNORECASE)


def figure(page, name: str) -> str:
    """A value of the activation page's 'summary and latency' table."""
    return page.locator(".field-figures tr").filter(has=page.locator("th", has_text=re.compile(f"^{name}$"))) \
        .locator("td").inner_text().strip()


def capped(sim) -> set[str]:
    return {s for s in sim.ongoing_session_ids() if sim.limit_in_force_a(s) == 8.0}


def test_operator_relays_in_the_browser_and_analyst_downloads_the_workbook(
        simulator, last_year, live_server, operator_login, analyst_login, browse, artifacts):
    from playwright.sync_api import expect

    # A BRP whose signals an operator decides on posts one over the REST API.
    _, token = services.create_brp("Manual supplier", Brp.Policy.MANUAL)
    end = clock.now() + timedelta(seconds=90)
    posted = requests.post(f"{live_server.url}/api/v1/signals/", headers={"Authorization": f"Token {token}"},
                           json={"external_id": "browser-1", "direction": "reduce_consumption",
                                 "end_time": end.isoformat()}, timeout=10)
    assert posted.status_code == 202, posted.text
    signal_id = posted.json()["id"]

    # --- the operator -----------------------------------------------------------------------------
    op = browse("1-operator")
    op.log_in(*operator_login)
    page = op.page
    page.goto("/admin/flexibility/signal/")
    row = page.locator("#result_list tbody tr", has_text="browser-1")
    expect(row.locator(".field-status")).to_have_text(label("received"))
    expect(row.locator(".field-brp")).to_have_text("Manual supplier")
    op.shot("signal-pending")

    row.locator("th a").click()
    preview = page.locator(".field-preview .readonly").inner_text()
    found = re.search(r"(\d+) sessions eligible, expected shed ([\d.]+)(?:-[\d.]+)? kW", preview)
    assert found, preview
    eligible, expected_kw = int(found[1]), float(found[2])
    assert eligible > 0 and expected_kw > 0, preview
    expect(page.locator(".field-activation_link .readonly")).to_have_text("-")
    op.shot("signal-preview")

    page.goto("/admin/flexibility/signal/")
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "relay")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("Manual supplier #browser-1: relayed")
    expect(row.locator(".field-status")).to_have_text(label("active|relayed"))
    op.shot("relayed")
    assert Signal.objects.get(pk=signal_id).decisions.filter(action="relay", actor_label__contains="olga").exists()

    page.goto(f"/admin/flexibility/signal/{signal_id}/change/")
    page.locator(".field-activation_link a").click()
    throttled_now = op.reload_until(lambda p: int(figure(p, "sessions_throttled") or 0), 30,
                                    "accepted sessions on the activation page")
    expect(page.locator(".field-status .readonly")).to_have_text(label("active|dispatching"))
    assert int(figure(page, "sessions_eligible")) >= throttled_now > 0
    assert "pending" in figure(page, "sessions_by_outcome") or "in_force" in figure(page, "sessions_by_outcome")
    assert int(figure(page, "first_put")) >= int(figure(page, "relayed")) > 0  # ms after the signal arrived
    op.shot("activation")

    page.get_by_role("link", name="per-session outcomes").click()
    outcomes = page.locator("#result_list tbody tr")
    expect(outcomes.first).to_be_visible()
    accepted_rows = outcomes.filter(has=page.locator(".field-status", has_text=label("pending at the CSMS|in force")))
    assert accepted_rows.count() >= throttled_now
    expect(accepted_rows.first.locator(".field-response")).to_have_text("ACCEPTED")
    op.shot("per-session-outcomes")
    # What the page shows is what the CPO platform applies: those sessions draw 8 A.
    accepted = set(Curtailment.objects.filter(activation__signal_id=signal_id, status__in=("pending", "in_force"))
                   .values_list("session__session_id", flat=True))
    assert len(accepted) >= throttled_now
    wait_for(lambda: accepted <= capped(simulator), 10, "the simulator to apply the 8 A profiles")

    # --- the analyst --------------------------------------------------------------------------------
    an = browse("2-analyst")
    an.log_in(*analyst_login)
    page = an.page
    page.goto("/admin/flexibility/signal/")
    expect(page.locator("#result_list")).to_contain_text("browser-1")
    expect(page.locator("select[name=action]")).to_have_count(0)  # analysts read, they do not decide

    page.goto("/admin/settlement/settlementrun/add/")
    page.fill("#id_period_from_0", "2025-05-06")
    page.fill("#id_period_from_1", "00:00:00")
    page.fill("#id_period_to_0", "2025-05-07")
    page.fill("#id_period_to_1", "00:00:00")
    an.shot("new-settlement-run")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    page.locator("#result_list tbody tr th a").first.click()
    an.reload_until(lambda p: p.locator(".field-status .readonly").inner_text().lower() in ("done", "failed"), 60,
                    "the worker to settle the run")
    expect(page.locator(".field-status .readonly")).to_have_text(label("done"))
    expect(page.locator(".field-summary .readonly")).to_contain_text('"activations": 1')
    an.shot("settlement-run-done")

    with page.expect_download() as download:
        page.locator(".field-downloads a", has_text=re.compile(r"^settlement\.xlsx$")).click()
    workbook_path = artifacts / "settlement.xlsx"
    download.value.save_as(workbook_path)
    assert download.value.suggested_filename == "settlement.xlsx"
    workbook = openpyxl.load_workbook(workbook_path, read_only=True)
    assert WORKBOOK_SHEETS <= set(workbook.sheetnames), workbook.sheetnames
    rows = list(workbook["activations"].values)
    table = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert [str(r["activation_id"]) for r in table] == [str(last_year.pk)]
    assert table[0]["shed_kwh"] > 0 and table[0]["value_eur"] == pytest.approx(
        table[0]["shed_kwh"] / 1000 * 300, abs=0.005)  # EUR rounded to cents
    isp = list(workbook["isp"].values)
    assert dict(zip(isp[0], isp[1], strict=True))["price_eur_per_mwh"] == 300
