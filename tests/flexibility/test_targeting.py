"""Target-kW signals: refusals with codes (nothing stored), and the plan narrowed to the fair selection."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from flexibility import services, target_figures, targeting, tasks
from flexibility.error_codes import FlexibilityErrorCode
from flexibility.models import Activation, Curtailment, EvseResponsiveness, Signal
from flexibility.services import activations
from ocpi.models import Connector, OcpiParty, Session, SessionState, hash_token
from tests.conftest import T0

URL = "/api/v1/signals/"
SHED_16A_3PH_KW = (16 - 8) * 3 * 230 / 1000  # 5.52 kW per session
MAX_32A_3PH_KW = (32 - 8) * 3 * 230 / 1000  # 16.56 kW per session: no connectors known, 32 A assumed


def post(brp, **fields):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {brp.api_token}")
    return client.post(URL, {"external_id": "sig-t", "direction": "reduce_consumption", **fields}, format="json")


@pytest.fixture
def cpo(db) -> OcpiParty:
    return OcpiParty.objects.create(
        name="Fair CPO", country_code="NL", party_id="CPO", role="CPO", status=OcpiParty.Status.REGISTERED,
        token_ours_hash=hash_token("cpo-token"), token_theirs="scsp-token", versions_url="http://cpo.test/versions",
        endpoints=[],
    )


@pytest.fixture
def five_drivers(cpo, clock) -> list[Session]:
    """Five cars at 16 A on 3 phases; S0 plugged in 5 h ago, S4 1 h ago."""
    return Session.objects.bulk_create(
        Session(party=cpo, country_code="NL", ocpi_party_id="CPO", session_id=f"S{i}", location_id="L1",
                evse_uid=f"E{i}", connector_id="1", status="ACTIVE", start_date_time=T0 - timedelta(hours=5 - i),
                kwh=5.0, last_updated=T0, phases=3, phases_source="reported", last_current_a=16.0,
                current_source="measured")
        for i in range(5)
    )


@pytest.mark.parametrize("bad", [0, -5, "ten", True, None])
def test_target_not_a_positive_number_is_400_with_its_code_and_nothing_stored(brp, five_drivers, bad):
    if bad is None:  # null means "no target": accepted, today's behaviour
        assert post(brp, target_kw=bad).status_code == 202
        return
    response = post(brp, target_kw=bad)
    assert response.status_code == 400
    assert response.json()["code"] == "target_not_positive"
    assert not Signal.objects.exists()


def test_target_above_the_fleet_maximum_is_400(brp, five_drivers):
    response = post(brp, target_kw=5 * MAX_32A_3PH_KW + 1)
    assert response.status_code == 400 and response.json()["code"] == "target_above_fleet_max"
    assert not Signal.objects.exists()


def test_target_on_a_direction_not_actionable_is_400(brp, five_drivers):
    response = post(brp, target_kw=10, direction="increase_consumption")
    assert response.status_code == 400 and response.json()["code"] == "direction_not_actionable"
    assert not Signal.objects.exists()


def test_target_is_stored_shown_and_a_repeat_with_another_target_is_409(brp, five_drivers):
    first = post(brp, target_kw=10)
    assert first.status_code == 202 and first.json()["target_kw"] == 10
    assert Signal.objects.get().target_kw == 10
    assert post(brp, target_kw=10).status_code == 200
    again = post(brp, target_kw=12)
    assert again.status_code == 409 and again.json()["code"] == "external_id_reused"


def _activation(brp, target_kw) -> Activation:
    signal = services.receive_signal(brp, "plan-1", "reduce_consumption", target_kw=target_kw).signal
    Signal.objects.filter(pk=signal.pk).update(status=Signal.Status.RELAYED)
    return Activation.objects.create(signal=signal, relayed_at=T0, ends_at=T0 + timedelta(minutes=10))


def test_plan_caps_the_fewest_longest_plugged_in_sessions_covering_target_and_margin(brp, five_drivers, settings):
    settings.TARGET_MARGIN = 0.15
    activation = _activation(brp, 10.0)  # needed 11.5 kW: 2 x 5.52 = 11.04 is short, 3 x 5.52 = 16.56 covers it
    activations.plan_activation(activation.pk)
    capped = set(Curtailment.objects.filter(activation=activation).values_list("session__session_id", flat=True))
    assert capped == {"S0", "S1", "S2"}  # all with full budget, none throttled today: longest plugged in
    activation.refresh_from_db()
    assert activation.target_kw == 10.0 and activation.shortfall_kw == 0.0
    assert activation.expected_kw == pytest.approx(3 * SHED_16A_3PH_KW)


def test_a_session_throttled_today_goes_after_those_not_yet(brp, five_drivers, settings):
    settings.TARGET_MARGIN = 0.0
    earlier = Activation.objects.create(signal=services.receive_signal(brp, "old", "reduce_consumption").signal,
                                        relayed_at=T0 - timedelta(hours=5), ends_at=T0 - timedelta(hours=5) +
                                        timedelta(minutes=5), status=Activation.Status.RESTORED)
    # S0 was capped 5 minutes more than 4 h ago: full budget again, but throttled today (T0 is 10:00 or later).
    Curtailment.objects.create(activation=earlier, session=five_drivers[0], starts_at=earlier.relayed_at,
                               ends_at=earlier.ends_at, restored_at=earlier.ends_at, limit_a=8, expected_kw=5.52,
                               status=Curtailment.Status.RESTORED)
    activation = _activation(brp, 5.0)  # one session (5.52 kW) covers it without margin
    activations.plan_activation(activation.pk)
    assert list(Curtailment.objects.filter(activation=activation).values_list("session__session_id", flat=True)) \
        == ["S1"]


def test_short_fleet_caps_everything_and_records_the_shortfall(brp, five_drivers):
    activation = _activation(brp, 50.0)
    activations.plan_activation(activation.pk)
    assert Curtailment.objects.filter(activation=activation).count() == 5
    activation.refresh_from_db()
    assert activation.shortfall_kw == pytest.approx(50.0 - 5 * SHED_16A_3PH_KW)


def test_sessions_joining_a_target_activation_are_kept_for_top_up(brp, five_drivers):
    activation = _activation(brp, 4.0)  # 4 x 1.15 = 4.6 kW: one session
    activations.plan_activation(activation.pk)
    activations.plan_activation(activation.pk, [five_drivers[4].pk])
    assert Curtailment.objects.filter(activation=activation).count() == 1


def test_without_target_every_eligible_session_is_capped(brp, five_drivers):
    signal = services.receive_signal(brp, "all", "reduce_consumption").signal
    activation = Activation.objects.create(signal=signal, relayed_at=T0, ends_at=T0 + timedelta(minutes=10))
    activations.plan_activation(activation.pk)
    assert Curtailment.objects.filter(activation=activation).count() == 5
    assert Activation.objects.get(pk=activation.pk).target_kw is None


def test_console_previews_what_a_waiting_target_would_cap(brp, five_drivers, operator, client):
    services.receive_signal(brp, "wait-1", "reduce_consumption", target_kw=10.0)
    (preview,) = target_figures.previews()
    assert (preview.sessions, preview.eligible, preview.expected_kw, preview.shortfall_kw) == (3, 5, 16.6, 0.0)
    client.force_login(operator)
    page = client.get("/admin/console/").content.decode()
    assert "wait-1 asks for" in page and 'class="chosen">3</strong>' in page


def _state(session, at, current_a):
    SessionState.objects.create(session=session, timestamp=at, kwh=6.0, current_l1_a=current_a,
                                current_l2_a=current_a, current_l3_a=current_a, current_source="measured",
                                status="ACTIVE")


def test_top_up_when_the_capped_session_keeps_drawing_above_the_cap(brp, five_drivers, clock):
    activation = _activation(brp, 4.0)  # one session: S0
    activations.plan_activation(activation.pk)
    Curtailment.objects.filter(activation=activation).update(status=Curtailment.Status.IN_FORCE, before_a=16.0)
    _state(five_drivers[0], T0 + timedelta(minutes=3), 16.0)  # after the 120 s grace, still at 16 A
    clock.advance(200)
    tasks.sweep()
    capped = Curtailment.objects.filter(activation=activation).order_by("pk")
    assert list(capped.values_list("session__session_id", flat=True)) == ["S0", "S1"]  # the next fairest
    assert Activation.objects.get(pk=activation.pk).measured_kw == 0.0


def test_no_top_up_when_the_cap_is_measured_in_force(brp, five_drivers, clock):
    activation = _activation(brp, 4.0)
    activations.plan_activation(activation.pk)
    Curtailment.objects.filter(activation=activation).update(status=Curtailment.Status.IN_FORCE, before_a=16.0)
    _state(five_drivers[0], T0 + timedelta(minutes=3), 8.0)
    clock.advance(200)
    tasks.sweep()
    assert Curtailment.objects.filter(activation=activation).count() == 1
    assert Activation.objects.get(pk=activation.pk).measured_kw == pytest.approx(SHED_16A_3PH_KW)


def test_measured_shed_is_unknown_until_a_state_arrives(brp, five_drivers, clock):
    activation = _activation(brp, 4.0)
    activations.plan_activation(activation.pk)
    Curtailment.objects.filter(activation=activation).update(status=Curtailment.Status.IN_FORCE, before_a=16.0)
    clock.advance(200)  # past the grace, but no state since the cap began
    tasks.sweep()
    assert Activation.objects.get(pk=activation.pk).measured_kw is None


def test_a_refused_cap_is_topped_up_at_once(brp, five_drivers):
    activation = _activation(brp, 4.0)
    activations.plan_activation(activation.pk)
    Curtailment.objects.filter(activation=activation).update(status=Curtailment.Status.REFUSED)
    assert targeting.top_up_due(T0) == {activation.pk: [s.pk for s in five_drivers[1:]]}


FORECAST = "/api/v1/flexibility/"


def get_forecast(brp, **params):
    client = APIClient()
    if brp is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {brp.api_token}")
    return client.get(FORECAST, params)


def test_forecast_needs_a_brp_token(db):
    assert get_forecast(None, **{"from": "2025-05-06T17:00:00Z", "to": "2025-05-06T18:00:00Z"}).status_code == 401


@pytest.mark.parametrize(("start", "end", "code"), [
    ("2025-05-06T18:00:00Z", "2025-05-06T17:00:00Z", "window_backwards"),
    ("2025-05-06T17:00:00Z", "2025-05-14T17:00:00Z", "window_too_long"),
    ("2025-05-06T17:05:00Z", "2025-05-06T18:00:00Z", "window_not_on_isp_boundary"),
    ("yesterday", "2025-05-06T18:00:00Z", "window_unreadable"),
    (None, "2025-05-06T18:00:00Z", "window_unreadable"),
])
def test_forecast_refuses_a_bad_window_with_its_code(brp, start, end, code):
    params = {"to": end} if start is None else {"from": start, "to": end}
    response = get_forecast(brp, **params)
    assert response.status_code == 400 and response.json()["code"] == code


def test_forecast_gives_the_sheddable_power_now_and_a_band_per_isp(brp, five_drivers):
    for day in range(1, 28):  # every day of the last four weeks the same cars drew 16 A just before 17:00
        for i, session in enumerate(five_drivers):
            _state(session, T0 - timedelta(days=day, minutes=5 + i), 16.0)
    response = get_forecast(brp, **{"from": "2025-05-06T17:00:00Z", "to": "2025-05-06T18:00:00Z"})
    assert response.status_code == 200
    rows = response.json()
    assert [r["isp_start"][11:16] for r in rows] == ["17:00", "17:15", "17:30", "17:45"]
    assert rows[0]["sheddable_now_kw"] == pytest.approx(5 * SHED_16A_3PH_KW, abs=0.05)
    assert all(r["sheddable_now_kw"] is None for r in rows[1:])
    assert all(r["p10_kw"] <= r["p50_kw"] <= r["p90_kw"] for r in rows)
    # The 17:00 slot pools 16:45 (0 kW), 17:00 (27.6 kW) and 17:15 (0 kW) of each weekday: a third at 27.6.
    assert rows[0]["p90_kw"] == pytest.approx(5 * SHED_16A_3PH_KW, abs=0.05) and rows[0]["p10_kw"] == 0.0


def test_forecast_without_history_is_null_not_zero(brp):
    """A fresh database: nothing is known of past ISPs, so the band is null (not a confident 0 kW)."""
    rows = get_forecast(brp, **{"from": "2025-05-06T17:00:00Z", "to": "2025-05-06T17:30:00Z"}).json()
    assert [(r["p10_kw"], r["p50_kw"], r["p90_kw"]) for r in rows] == [(None, None, None)] * 2
    assert rows[0]["sheddable_now_kw"] == 0.0


def test_forecast_from_states_of_the_current_isp_only_is_null(brp, five_drivers):
    """States taken since the last boundary describe the ISP now, not a past one: still no history."""
    for i, session in enumerate(five_drivers):
        _state(session, T0 - timedelta(minutes=1 + i), 16.0)
    rows = get_forecast(brp, **{"from": "2025-05-06T17:00:00Z", "to": "2025-05-06T17:30:00Z"}).json()
    assert [(r["p10_kw"], r["p50_kw"], r["p90_kw"]) for r in rows] == [(None, None, None)] * 2


def test_forecast_command_prints_the_window(brp, five_drivers):
    out = StringIO()
    call_command("flexibility_forecast", "--from", "2025-05-06T17:00Z", "--to", "2025-05-06T17:30Z", stdout=out)
    assert out.getvalue().count("2025-05-06T17:") == 2
    with pytest.raises(CommandError, match="window_backwards"):
        call_command("flexibility_forecast", "--from", "2025-05-06T17:30Z", "--to", "2025-05-06T17:00Z")


def test_console_shows_the_forecast_panel(five_drivers, operator, client):
    client.force_login(operator)
    page = client.get("/admin/console/").content.decode()
    assert "Flexibility: next two hours" in page and "27.6 kW" in page  # sheddable now: 5 x 5.52 kW


def test_a_first_plan_completed_after_a_crash_does_not_choose_a_second_set(brp, five_drivers):
    activation = _activation(brp, 4.0)  # one session: S0
    activations.plan_activation(activation.pk)
    Activation.objects.filter(pk=activation.pk).update(skipped={})  # as if the crash came before the figures
    Curtailment.objects.filter(activation=activation).update(status=Curtailment.Status.SENT)  # its PUT went out
    activations.plan_activation(activation.pk)
    assert Curtailment.objects.filter(activation=activation).count() == 1


def test_fleet_maximum_comes_from_the_connectors_when_locations_are_known(cpo, five_drivers):
    common = {"party": cpo, "country_code": "NL", "ocpi_party_id": "CPO", "location_id": "L1", "connector_id": "1",
              "last_updated": T0}
    Connector.objects.create(evse_uid="E0", power_type="AC_3_PHASE", max_amperage_a=32.0, **common)  # 16.56 kW
    Connector.objects.create(evse_uid="E1", power_type="AC_1_PHASE", max_amperage_a=16.0, **common)  # 1.84 kW
    Connector.objects.create(evse_uid="E2", power_type="DC", max_amperage_a=200.0, **common)  # not steered
    assert targeting.fleet_max_kw() == pytest.approx(16.56 + 1.84)
    with pytest.raises(targeting.TargetRefused) as refused:
        targeting.check_target(18.5, targeting.fleet_max_kw())
    assert refused.value.code == FlexibilityErrorCode.TARGET_ABOVE_FLEET_MAX


def test_an_evse_that_often_ignores_caps_counts_for_less(brp, five_drivers, cpo, settings):
    settings.TARGET_MARGIN = 0.0
    # S0 (plugged in longest) sits on an EVSE that responded to 1 of its last 4 caps: 5.52 x 0.25 = 1.38 kW.
    EvseResponsiveness.objects.create(party=cpo, evse_uid="e0", recent=[False, True, False, False], judged=4,
                                      failures=3)
    activation = _activation(brp, 5.0)  # S0 at full weight (5.52) alone would cover it; at 1.38 it needs S1 too
    activations.plan_activation(activation.pk)
    capped = set(Curtailment.objects.filter(activation=activation).values_list("session__session_id", flat=True))
    assert capped == {"S0", "S1"}


def test_the_brp_reads_target_expected_and_shortfall_on_its_signal(brp, five_drivers):
    activation = _activation(brp, 50.0)
    activations.plan_activation(activation.pk)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {brp.api_token}")
    target = client.get(f"{URL}{activation.signal_id}/").json()["activation"]["target"]
    assert target == {"target_kw": 50.0, "expected_kw": pytest.approx(27.6), "shortfall_kw": pytest.approx(22.4),
                      "measured_kw": None}
