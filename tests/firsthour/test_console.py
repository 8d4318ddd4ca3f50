"""The operator console through Django's test client: what each role sees and may do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from flexibility import console_figures, services
from flexibility.models import Activation, Brp, Curtailment, Decision, Signal
from ocpi.models import OcpiParty, Session, SessionState
from tests.conftest import T0

REDUCE = "reduce_consumption"


@pytest.fixture
def fleet(db, clock):
    """Three charging sessions: 16 A on three phases, 16 A of unknown phase count, 6 A on one phase."""
    party = OcpiParty.objects.create(name="CPO", country_code="NL", party_id="CPO", token_ours_hash="c" * 64,
                                     status=OcpiParty.Status.REGISTERED)
    rows = [("S3", 16.0, 3), ("SU", 16.0, None), ("S1", 6.0, 1)]
    return [Session.objects.create(
        party=party, country_code="NL", ocpi_party_id="CPO", session_id=sid, location_id="L1", evse_uid=f"E-{sid}",
        connector_id="1", status="ACTIVE", start_date_time=T0 - timedelta(minutes=30), kwh=1.0, last_updated=T0,
        phases=phases, last_current_a=current, current_source="measured", seen_at=T0,
        phases_source="reported" if phases else "")
        for sid, current, phases in rows]


@pytest.fixture
def waiting(brp):
    return services.receive_signal(brp, "wait-1", REDUCE).signal


def test_preview_counts_sessions_and_the_shed_range_by_hand(fleet):
    preview = console_figures.preview()
    # 16 A on 3 phases: (16-8) x 3 x 230 V = 5.52 kW; unknown phases as 1: 1.84 kW, as 3: 5.52 kW, and
    # its best estimate by the fleet prior 0.35 / 0.03 / 0.62: 0.644 + 0.110 + 3.422 = 4.18 kW.
    assert preview.eligible == 2
    assert preview.expected_kw == pytest.approx(9.7)  # 5.52 + 4.18 = 9.70
    assert preview.expected_high_kw == pytest.approx(11.0)  # 11.04
    assert preview.skips == [("already at or below 8 A", 1)]


def test_operator_sees_the_waiting_signal_with_countdowns_and_buttons(client, operator, fleet, waiting, clock):
    clock.advance(40)
    client.force_login(operator)
    page = client.get(reverse("console")).content.decode()
    assert "wait-1" in page and "Eneco-like supplier" in page
    assert 'data-s="40"' in page  # waiting for 40 s
    assert 'data-s="620"' in page  # received 17:04:00, expires at 17:15:00: 660 s - 40 s
    assert "no policy: an operator decides" in page
    assert "2</strong> sessions capped at 8 A" in page and "9.7 kW" in page
    assert "1 already at or below 8 A" in page
    assert ">Relay</button>" in page and ">Veto</button>" in page
    assert "{" not in page.split('id="console"')[1].split("<script")[0]  # no raw dict anywhere
    # The decision and the running activation first, the forecast after them: at 1366x768 the
    # activation's figures and chart are not pushed below the fold by the forecast table.
    assert page.index("console-pending") < page.index('id="activation-panel"') < page.index("console-forecast")


def test_relay_from_the_console_goes_through_the_service_and_the_audit(client, operator, waiting):
    client.force_login(operator)
    answer = client.post(reverse("console-relay", args=[waiting.pk]), follow=True)
    assert "wait-1: relayed" in answer.content.decode()
    waiting.refresh_from_db()
    assert waiting.status == Signal.Status.RELAYED
    decision = Decision.objects.get(signal=waiting)
    assert (decision.action, decision.actor, decision.actor_label) == ("relay", operator, "olga-operator")


def test_a_veto_needs_a_reason_and_keeps_it(client, operator, waiting):
    client.force_login(operator)
    refused = client.post(reverse("console-veto", args=[waiting.pk]), {"reason": "  "}, follow=True)
    assert "a veto needs a reason" in refused.content.decode()
    assert Signal.objects.get(pk=waiting.pk).status == Signal.Status.RECEIVED
    client.post(reverse("console-veto", args=[waiting.pk]), {"reason": "grid congestion in Delfshaven"})
    waiting.refresh_from_db()
    assert (waiting.status, waiting.veto_reason) == (Signal.Status.VETOED, "grid congestion in Delfshaven")
    assert Decision.objects.get(signal=waiting, action="veto").reason == "grid congestion in Delfshaven"


def test_stop_now_ends_the_running_activation(client, operator, waiting, clock):
    services.relay_signal(waiting.pk, actor=operator)
    clock.advance(60)
    client.force_login(operator)
    client.post(reverse("console-stop", args=[waiting.pk]))
    activation = Activation.objects.get(signal=waiting)
    assert activation.stopped_early and activation.ends_at == T0 + timedelta(seconds=60)
    assert Decision.objects.filter(signal=waiting, action="stop", actor=operator).exists()


def test_a_decision_on_a_decided_signal_is_refused_in_words(client, operator, waiting):
    services.veto_signal(waiting.pk, operator, "no")
    client.force_login(operator)
    answer = client.post(reverse("console-relay", args=[waiting.pk]), follow=True).content.decode()
    assert "only a received signal can be relayed" in answer


def test_an_analyst_reads_but_cannot_decide(client, analyst, waiting):
    client.force_login(analyst)
    page = client.get(reverse("console")).content.decode()
    assert "wait-1" in page and "need the operator role" in page
    assert ">Relay</button>" not in page and ">Veto</button>" not in page
    for name in ("console-relay", "console-veto", "console-stop"):
        assert client.post(reverse(name, args=[waiting.pk]), {"reason": "x"}).status_code == 403
    assert Signal.objects.get(pk=waiting.pk).status == Signal.Status.RECEIVED


def test_anonymous_goes_to_the_login_and_unknown_signals_are_404(client, operator):
    answer = client.get(reverse("console"))
    assert answer.status_code == 302 and "/admin/login/" in answer["Location"]
    client.force_login(operator)
    assert client.post(reverse("console-relay", args=[999])).status_code == 404
    assert client.get(reverse("console-relay", args=[999])).status_code == 405


def test_caps_by_state_in_words(operator, waiting, fleet):
    activation = services.relay_signal(waiting.pk, actor=operator)
    for session, status in zip(fleet, ["in_force", "sent", "no_result"], strict=True):
        Curtailment.objects.create(activation=activation, session=session, starts_at=T0,
                                   ends_at=T0 + timedelta(minutes=5), limit_a=8, expected_kw=1, status=status)
    states = dict(console_figures.cap_states(activation))
    assert states == {"being sent": 1, "pending at the CSMS": 0, "in force": 1, "refused": 0, "no result": 1,
                      "not sent": 0, "restored": 0}


def test_the_panel_and_the_chart_of_the_running_activation(client, operator, waiting, fleet, clock):
    activation = services.relay_signal(waiting.pk, actor=operator)
    Activation.objects.filter(pk=activation.pk).update(expected_kw=5.52)
    Curtailment.objects.create(activation=activation, session=fleet[0], starts_at=T0,
                               ends_at=T0 + timedelta(minutes=11), limit_a=8, expected_kw=5.52, status="accepted")
    # 16 A on three phases before the relay (11.04 kW), 8 A after (5.52 kW).
    for offset, amps in ((-300, 16.0), (30, 8.0)):
        SessionState.objects.create(session=fleet[0], timestamp=T0 + timedelta(seconds=offset), kwh=1.0,
                                    current_l1_a=amps, current_l2_a=amps, current_l3_a=amps, status="ACTIVE")
    clock.advance(120)
    client.force_login(operator)
    panel = client.get(reverse("console-panel")).content.decode()
    assert "Running activation" in panel and 'data-s="540"' in panel  # ends 17:15:00, now 17:06:00
    assert "Caps in force" in panel and ">Stop now</button>" in panel
    assert panel.index(">Stop now</button>") < panel.index("Sessions eligible")  # in view at 1366x768
    assert "Relayed after the signal" in panel and " s</td>" in panel
    chart = client.get(reverse("console-chart", args=[activation.pk])).json()
    assert chart["sessions"] == 1
    assert chart["power_kw"][0] == pytest.approx(11.04) and chart["power_kw"][-1] == pytest.approx(5.52)
    assert chart["min_8a_kw"] == pytest.approx([5.52] * len(chart["at"]))
    assert chart["target_kw"] == pytest.approx(11.04 - 5.52)


def test_policy_countdown_shows_for_auto_after(client, operator, fleet, clock):
    supplier, _ = services.create_brp("Patient supplier", Brp.Policy.AUTO_AFTER, auto_after_s=90)
    services.receive_signal(supplier, "later-1", REDUCE)
    client.force_login(operator)
    assert 'data-s="90"' in client.get(reverse("console")).content.decode()
