"""Delivery judged from the states after each cap, the per-EVSE record and its CPO-facing report."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from flexibility import responsiveness, services
from flexibility.models import Activation, Curtailment, EvseResponsiveness, Signal
from ocpi.models import ChargingProfileCall, OcpiParty, Session, SessionState, hash_token
from tests.conftest import T0

S = Curtailment.Status
END = T0 + timedelta(minutes=11)


@pytest.fixture
def party(db) -> OcpiParty:
    return OcpiParty.objects.create(name="Alice CPO", country_code="NL", party_id="ALI", status="REGISTERED",
                                    token_ours_hash=hash_token("alice"), token_theirs="x")


def _cap(brp, party, n: int, evse: str, currents_during: float, current_after: float | None,
         current_before: float = 16.0) -> Curtailment:
    """A restored cap of activation `n` on EVSE `evse`: a state at its start with the draw it could
    lower (`current_before`), states every 60 s during and after it."""
    signal = services.receive_signal(brp, f"sig-{n}", "reduce_consumption").signal
    Signal.objects.filter(pk=signal.pk).update(status=Signal.Status.RESTORED)
    activation = Activation.objects.create(signal=signal, relayed_at=T0, ends_at=END, status="restored",
                                           restored_at=END)
    session = Session.objects.create(
        party=party, country_code="NL", ocpi_party_id="ALI", session_id=f"S{n}", location_id="L",
        evse_uid=evse, connector_id="1", status="ACTIVE", start_date_time=T0 - timedelta(hours=1), kwh=5,
        last_updated=T0, phases=3)
    for minute in range(0, 11):
        SessionState.objects.create(session=session, timestamp=T0 + timedelta(minutes=minute), kwh=5 + minute / 10,
                                    current_l1_a=current_before if minute == 0 else currents_during,
                                    status="ACTIVE", current_source="measured")
    if current_after is not None:
        for minute in range(12, 18):
            SessionState.objects.create(session=session, timestamp=T0 + timedelta(minutes=minute), kwh=7 + minute,
                                        current_l1_a=current_after, status="ACTIVE", current_source="measured")
    return Curtailment.objects.create(activation=activation, session=session, starts_at=T0, ends_at=END,
                                      restored_at=END, limit_a=8, expected_kw=5.5, status=S.RESTORED,
                                      restored_from=S.IN_FORCE)


def test_caps_are_judged_once_their_resumption_window_passed(brp, party, clock, settings):
    settings.DELIVERY_GRACE_S, settings.DELIVERY_RESUME_WINDOW_S = 120, 300
    good = _cap(brp, party, 1, "E-good", 8.0, 16.0)
    stuck = _cap(brp, party, 2, "E-stuck", 8.0, 7.5)
    ignored = _cap(brp, party, 3, "E-ignores", 16.0, 16.0)
    silent = _cap(brp, party, 4, "E-silent", 8.0, None)
    clock.advance((END - T0).total_seconds() + 419)
    assert responsiveness.assess_due() == 0  # restore + grace + window = 420 s later, not yet
    clock.advance(1)
    assert responsiveness.assess_due() == 4
    verdicts = {c.session.evse_uid: (c.delivery, c.resumption)
                for c in Curtailment.objects.select_related("session")}
    assert verdicts == {"E-good": ("responded", "resumed"), "E-stuck": ("responded", "not_resumed"),
                        "E-ignores": ("not_responded", "resumed"), "E-silent": ("responded", "no_data")}
    assert responsiveness.assess_due() == 0  # judged once
    assert {good.pk, stuck.pk, ignored.pk, silent.pk} == set(Curtailment.objects.values_list("pk", flat=True))


def test_a_cap_is_judged_from_when_the_csms_accepted_it(brp, party, clock, settings):
    """Planned at T0 but accepted only at T0 + 7 min (retries after TOO_OFTEN): the draw stays at 16 A
    until then and is 8 A after. Judged from the plan (+ 120 s grace), 5 of 9 states say "did not
    respond"; from the accepted PUT (+ 120 s), the states at 9 and 10 min say it responded."""
    settings.DELIVERY_GRACE_S, settings.DELIVERY_RESUME_WINDOW_S = 120, 300
    cap = _cap(brp, party, 1, "E-late", 8.0, 16.0)
    SessionState.objects.filter(session=cap.session, timestamp__lt=T0 + timedelta(minutes=7)).update(
        current_l1_a=16.0)
    ChargingProfileCall.objects.create(session=cap.session, kind="SET", purpose_id=cap.pk, response_result="REJECTED",
                                       answered_at=T0 + timedelta(seconds=10))  # refused: not when it acts
    ChargingProfileCall.objects.create(session=cap.session, kind="SET", purpose_id=cap.pk, response_result="ACCEPTED",
                                       answered_at=T0 + timedelta(minutes=7))
    clock.advance((END - T0).total_seconds() + 420)
    assert responsiveness.assess_due() == 1
    cap.refresh_from_db()
    assert cap.delivery == "responded"


def test_an_evse_failing_n_of_its_last_m_is_flagged(brp, party, clock, settings):
    settings.RESPONSIVENESS_FAILURES_N, settings.RESPONSIVENESS_WINDOW_M = 2, 3
    clock.advance(3600)
    _cap(brp, party, 1, "e-1", 16.0, 16.0)
    responsiveness.assess_due()
    record = EvseResponsiveness.objects.get()
    assert (record.recent, record.flagged) == ([False], False)
    _cap(brp, party, 2, "E-1", 16.0, 16.0)  # the same EVSE in another case: one record
    responsiveness.assess_due()
    record.refresh_from_db()
    assert (record.recent, record.failures, record.flagged) == ([False, False], 2, True)
    assert responsiveness.flagged_evse_keys() == {(party.pk, "E-1")}


@pytest.fixture
def flagged(party) -> EvseResponsiveness:
    return EvseResponsiveness.objects.create(party=party, evse_uid="=HYPERLINK(1)", recent=[False, False, True],
                                             judged=3, failures=2, flagged=True)


def test_the_report_as_csv_for_staff(client, analyst, flagged, party):
    EvseResponsiveness.objects.create(party=party, evse_uid="E-ok", recent=[True], judged=1)
    client.force_login(analyst)
    response = client.get("/admin/flexibility/evseresponsiveness/report.csv?flagged=1")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["evse_uid"], r["recent"], r["flagged"]) for r in rows] == [("'=HYPERLINK(1)", "NNR", "True")]
    assert client.get("/admin/flexibility/evseresponsiveness/").status_code == 200


def test_the_report_over_rest_is_for_staff_only(client, analyst, flagged, brp):
    assert client.get("/api/v1/evse-responsiveness/").status_code == 401  # anonymous: challenged
    response = client.get("/api/v1/evse-responsiveness/", HTTP_AUTHORIZATION=f"Token {brp.api_token}")
    assert response.status_code in (401, 403)
    client.force_login(analyst)
    body = client.get("/api/v1/evse-responsiveness/?flagged=1").json()
    assert body["count"] == 1 and body["results"][0]["evse_uid"] == "=HYPERLINK(1)"
    assert body["results"][0]["recent"] == "NNR"


def test_drivers_at_risk_are_shown_to_the_operator_at_once(client, operator, brp, party, clock):
    stuck = _cap(brp, party, 1, "E-stuck", 8.0, 7.5)
    clock.advance(3600)
    responsiveness.assess_due()
    assert Curtailment.objects.get(pk=stuck.pk).resumption == "not_resumed"
    client.force_login(operator)
    page = client.get("/admin/flexibility/activation/").content.decode()
    assert "1 driver(s) at risk" in page and "resumption__exact=not_resumed" in page


@pytest.mark.parametrize(("phases", "source", "expected"), [
    (3, "reported", (3,)), (2, "power_current", (2,)), (3, "connector", (1, 2, 3)), (1, "connector", (1,)),
    (None, "", (1, 2, 3)), (3, "", (1, 2, 3)),
])
def test_phase_counts_delivery_is_judged_on(phases, source, expected):
    assert responsiveness.plausible_phases(phases, source) == expected


def _kwh_only_cap(brp, party, n: int, evse: str, power_kw: float, phases: int, source: str,
                  fall: float = 0.0) -> Curtailment:
    """A restored cap on a session that sends only kWh, drawing `power_kw` before, during and after the
    cap (the cap did not lower it), states every 60 s from 5 min before the cap to 6 min after it;
    with `fall`, the draw falls by that share of `power_kw` every minute (an EV finishing its charge):
    t minutes after the first state it draws power_kw * (1 - fall * t), kWh the integral of it."""
    signal = services.receive_signal(brp, f"sig-{n}", "reduce_consumption").signal
    Signal.objects.filter(pk=signal.pk).update(status=Signal.Status.RESTORED)
    activation = Activation.objects.create(signal=signal, relayed_at=T0, ends_at=END, status="restored",
                                           restored_at=END)
    session = Session.objects.create(
        party=party, country_code="NL", ocpi_party_id="ALI", session_id=f"K{n}", location_id="L",
        evse_uid=evse, connector_id="1", status="ACTIVE", start_date_time=T0 - timedelta(hours=1), kwh=5,
        last_updated=T0, phases=phases, phases_source=source)
    for minute in range(-5, 18):
        SessionState.objects.create(session=session, timestamp=T0 + timedelta(minutes=minute),
                                    kwh=5 + power_kw * ((minute + 5) - fall * (minute + 5) ** 2 / 2) / 60,
                                    status="ACTIVE", current_source="kwh")
    return Curtailment.objects.create(activation=activation, session=session, starts_at=T0, ends_at=END,
                                      restored_at=END, limit_a=8, expected_kw=1.0, status=S.RESTORED,
                                      restored_from=S.IN_FORCE)


def test_a_cap_that_could_not_lower_the_draw_never_counts_against_the_evse(brp, party, clock, settings):
    """2.8 kW from kWh alone 5 min before the cap, falling 1 % of it a minute (2.786 kW over the first
    minute, 2.366 kW over the last before the restore: -15 %, still above 2.34 kW). On a three-phase
    connector the EV may be on three phases at 4.1 A, finishing its charge (the cap does not bind:
    2.8 <= 6.02 kW), or on one at 12.2 A ignoring it, and a falling draw is the finishing EV's:
    undecidable, no data, and the EVSE is neither failed nor flagged. On a one-phase connector 2.8 kW
    is 12.2 A (> 8 A + tolerance: 2.34 kW): did not respond, twice, flagged (2 of 3)."""
    settings.DELIVERY_GRACE_S, settings.DELIVERY_RESUME_WINDOW_S = 120, 300
    settings.RESPONSIVENESS_FAILURES_N, settings.RESPONSIVENESS_WINDOW_M = 2, 3
    for n in (1, 2):
        _kwh_only_cap(brp, party, n, "E-3ph", 2.8, 3, "connector", fall=0.01)
        _kwh_only_cap(brp, party, 10 + n, "E-1ph", 2.8, 1, "connector", fall=0.01)
    clock.advance(3600)
    assert responsiveness.assess_due() == 4
    verdicts = sorted(Curtailment.objects.values_list("session__evse_uid", "delivery"))
    assert verdicts == [("E-1ph", "not_responded")] * 2 + [("E-3ph", "no_data")] * 2
    three = EvseResponsiveness.objects.filter(evse_key="E-3PH").first()  # kept only for its resumptions
    assert three is None or (three.judged, three.failures, three.flagged) == (0, 0, False)
    record = EvseResponsiveness.objects.get(evse_key="E-1PH")
    assert (record.recent, record.failures, record.flagged) == ([False, False], 2, True)


def test_a_flat_draw_on_a_three_phase_connector_that_ignored_two_caps_is_flagged(brp, party, clock, settings):
    """2.8 kW held flat from 5 min before each cap to its restore (16 min): on three phases 4.1 A, an
    EV finishing its charge, whose draw would fall; flat, it is one phase at 12.2 A (or two at 6.1 A,
    prior 0.03 against 0.35: 0.08 of the weight at the cap): did not respond, twice, flagged."""
    settings.DELIVERY_GRACE_S, settings.DELIVERY_RESUME_WINDOW_S = 120, 300
    settings.RESPONSIVENESS_FAILURES_N, settings.RESPONSIVENESS_WINDOW_M = 2, 3
    for n in (1, 2):
        _kwh_only_cap(brp, party, n, "E-3ph", 2.8, 3, "connector")
    clock.advance(3600)
    assert responsiveness.assess_due() == 2
    assert set(Curtailment.objects.values_list("delivery", flat=True)) == {"not_responded"}
    record = EvseResponsiveness.objects.get(evse_key="E-3PH")
    assert (record.recent, record.failures, record.flagged) == ([False, False], 2, True)


def test_a_flat_draw_proved_at_one_cap_decides_the_sessions_later_cap_too(brp, party, clock, settings):
    """One session on a three-phase connector, kWh only: 3.09 kW flat until 15 min after the first cap
    started, then falling 0.6 % of it a minute (a one-phase EV at 13.4 A nearing full), its EVSE
    ignoring both caps. The first cap (0-11 min) is judged on the flat draw: did not respond, 3.09 kW
    kept on the cap. The second (25-36 min), judged later in its own sweep, sees a draw that fell 8 %
    over the 15 min before it and its own 11 (not flat); alone it would be no data (the twin session
    capped only then), but the first cap proved the EV is not on three phases at 4.5 A: did not
    respond, and the EVSE, failing 2 of 2, is flagged."""
    settings.DELIVERY_GRACE_S, settings.DELIVERY_RESUME_WINDOW_S = 120, 300
    settings.RESPONSIVENESS_FAILURES_N, settings.RESPONSIVENESS_WINDOW_M = 2, 3

    def session(name: str, evse: str) -> Session:
        s = Session.objects.create(
            party=party, country_code="NL", ocpi_party_id="ALI", session_id=name, location_id="L",
            evse_uid=evse, connector_id="1", status="ACTIVE", start_date_time=T0 - timedelta(hours=1), kwh=5,
            last_updated=T0, phases=3, phases_source="connector")
        kwh = 5.0
        for minute in range(-5, 50):
            SessionState.objects.create(session=s, timestamp=T0 + timedelta(minutes=minute), kwh=kwh,
                                        status="ACTIVE", current_source="kwh")
            kwh += 3.09 * (1 - 0.006 * max(0, minute - 15)) / 60
        return s

    def cap(n: int, s: Session, start_min: int) -> Curtailment:
        signal = services.receive_signal(brp, f"sig-{n}", "reduce_consumption").signal
        starts, ends = T0 + timedelta(minutes=start_min), T0 + timedelta(minutes=start_min + 11)
        activation = Activation.objects.create(signal=signal, relayed_at=starts, ends_at=ends, status="restored",
                                               restored_at=ends)
        return Curtailment.objects.create(activation=activation, session=s, starts_at=starts, ends_at=ends,
                                          restored_at=ends, limit_a=8, expected_kw=1.0, status=S.RESTORED,
                                          restored_from=S.IN_FORCE)

    proved, twin = session("K1", "E-ignores"), session("K2", "E-twin")
    first = cap(1, proved, 0)
    clock.advance(18 * 60)
    assert responsiveness.assess_due() == 1
    first.refresh_from_db()
    assert (first.delivery, first.flat_kw) == ("not_responded", pytest.approx(3.09))
    later, alone = cap(2, proved, 25), cap(3, twin, 25)
    clock.advance(25 * 60)
    assert responsiveness.assess_due() == 2
    later.refresh_from_db()
    alone.refresh_from_db()
    assert (later.delivery, later.flat_kw) == ("not_responded", pytest.approx(3.09))
    assert (alone.delivery, alone.flat_kw) == ("no_data", None)
    record = EvseResponsiveness.objects.get(evse_key="E-IGNORES")
    assert (record.recent, record.flagged) == ([False, False], True)


def test_a_states_power_is_an_instant_only_when_a_power_or_current_was_reported():
    """A kWh average with phases not known for sure ("assumed") is read from the kWh, as "kwh" is:
    taken as an instant at its timestamp, a 5-minute average ending 10 s after a cap started would
    read as the draw under the cap."""
    at = T0 + timedelta(minutes=5)
    assert responsiveness.reading(at, 2.0, None, None, None, 11.0, "power").power_kw == 11.0
    for source in ("kwh", "assumed"):
        assert responsiveness.reading(at, 2.0, 15.9, None, None, 11.0, source) == \
            responsiveness.delivery.Reading(at, 2.0)
    assert responsiveness.reading(at, 2.0, 15.9, 16.0, None, 11.0, "measured").current_a == 16.0
