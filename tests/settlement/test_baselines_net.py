"""The new baselines (trend, sessions, rebound), kWh-only reconstruction and the net value: hand-computed,
plus property tests of the net value's invariants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.core import settle_frames
from settlement.core.baselines import trend
from settlement.core.counterfactual import rebound_kwh
from settlement.core.frames import CURRENT_COLUMNS
from settlement.core.settle import SettleParams, _net
from tests.settlement.helpers import at, frame, sampled_session

KW_16A_3PH, KW_8A_3PH, KW_6A_3PH = 11.04, 5.52, 4.14
T_SIGNAL, T_CLEAR = at("10:05:00"), at("10:15:00")


def acts(ts: pd.Timestamp = T_SIGNAL, tc: pd.Timestamp = T_CLEAR) -> pd.DataFrame:
    return pd.DataFrame({"activation_id": ["a"], "t_signal": [ts], "t_clear": [tc]})


def test_trend_line_through_pre_and_post_windows():
    # Power rising 1 kW per minute (bin value = power at the bin's middle), dipping to 50 kW from the
    # signal to 2 min after the clear. Signal at minute 30, clear at minute 40: the joint line through
    # [20, 30) and [44, 54) min is the rising line itself: P(ts) = 130, P(tc) = 140 kW, and the energy
    # (130 + 140) / 2 x 10 / 60 = 22.5 kWh.
    t0 = at("09:00:00")
    index = pd.date_range(t0, periods=90, freq="60s")
    mids = np.arange(90) + 0.5
    power = pd.Series(100.0 + mids, index=index)
    ts, tc = t0 + pd.Timedelta(minutes=30), t0 + pd.Timedelta(minutes=40)
    power[(index >= ts) & (index < tc + pd.Timedelta(minutes=2))] = 50.0
    b = trend(power, ts, tc)
    assert b.p_signal_kw == pytest.approx(130.0)
    assert b.p_clear_kw == pytest.approx(140.0)
    assert b.energy_kwh() == pytest.approx(22.5)


def capped(current_a: float, ends: pd.Timestamp | None = None):
    """`current_a` outside the window, 8 A inside it (states fall on the window's edges: exact shapes)."""
    def current(t: pd.Timestamp) -> float:
        if ends is not None and t >= ends:
            return 0.0
        return 8.0 if T_SIGNAL <= t < T_CLEAR else current_a
    return current


def fleet() -> pd.DataFrame:
    """A: 16 A, capped; A2: 16 A, capped, unplugs at 10:10; B: 6 A, below the cap, never throttled."""
    rows = sampled_session("A", "EA", at("09:30:00"), at("11:30:00"), capped(16.0))
    rows += sampled_session("A2", "EA2", at("09:30:00"), at("10:10:00"), capped(16.0))
    rows += sampled_session("B", "EB", at("09:30:00"), at("11:30:00"), lambda t: 6.0)
    return frame(rows)


def test_sessions_baseline_hand_computed():
    # A: counterfactual 11.04 kW x 10 min = 1.84 kWh, delivered 5.52 kW x 10 min = 0.92: shed 0.92.
    # A2 unplugs at 10:10: counterfactual 11.04 x 5 min = 0.92, delivered 0.46: shed 0.46.
    # B: 4.14 kW before and after: counterfactual = delivered, shed 0.
    row = settle_frames(fleet(), acts(), baseline="sessions").activations.iloc[0]
    assert row["baseline"] == "sessions"
    assert row["delivered_kwh"] == pytest.approx((KW_8A_3PH * 10 + KW_8A_3PH * 5 + KW_6A_3PH * 10) / 60)
    assert row["shed_kwh"] == pytest.approx(0.92 + 0.46)
    assert row["p_signal_kw"] == pytest.approx(2 * KW_16A_3PH + KW_6A_3PH)
    assert row["p_clear_kw"] == pytest.approx(KW_16A_3PH + KW_6A_3PH)  # A2 is gone by then


def test_rebound_baseline_hand_computed():
    # P(ts) = 2 x 11.04 + 4.14 = 26.22 kW. P(tc) = post-clear line of the unthrottled B (4.14) + the
    # throttled A's counterfactual at tc (11.04) = 15.18 kW. Energy (26.22 + 15.18) / 2 x 10 / 60 = 3.45.
    row = settle_frames(fleet(), acts(), baseline="rebound").activations.iloc[0]
    assert row["p_signal_kw"] == pytest.approx(26.22)
    assert row["p_clear_kw"] == pytest.approx(15.18)
    assert row["baseline_kwh"] == pytest.approx(3.45)


def test_kwh_only_states_reconstruct_the_window():
    # The same fleet without currents: shape from energy alone (neighbouring intervals + the window's
    # edges) still gives the exact delivered energy and shed, and no session is a data issue.
    states = fleet()
    states[CURRENT_COLUMNS] = np.nan
    result = settle_frames(states, acts(), prices(100.0, 100.0), baseline="sessions")
    row = result.activations.iloc[0]
    assert row["delivered_kwh"] == pytest.approx((KW_8A_3PH * 15 + KW_6A_3PH * 10) / 60)
    assert row["shed_kwh"] == pytest.approx(1.38)
    assert row["data_quality"] == "ok", row["dq_reasons"]
    assert all("kwh_only" in f for f in result.reconstruction.session_flags["flags"])


def full_session() -> pd.DataFrame:
    """F: 16 A, capped 10:05-10:15, full at 10:35 (then plugged in, drawing nothing, until 10:45)."""
    # 16 A for 35 min of the 65 min before 10:35 and 8 A for 10: full after 14.72 - 0.92 = ... the
    # session's own energy; what matters is that it is full at 10:35, 5 min later than without the cap.
    return frame(sampled_session("F", "EF", at("09:30:00"), at("10:45:00"), capped(16.0, ends=at("10:35:00"))))


def prices(window: float, later: float) -> pd.Series:
    index = pd.date_range(at("09:00:00"), periods=12, freq="15min")
    return pd.Series([window if t < T_CLEAR else later for t in index], index=index)


def test_net_value_with_a_negative_price_in_the_rebound_isp():
    # Shed 0.92 kWh (11.04 - 5.52 kW over 10 min) in ISP 10:00 at 100 EUR/MWh: gross 0.092 EUR.
    # F needs its 0.92 kWh 5 min (0.92 / 11.04 h) later: it is full at 10:35 instead of 10:30, so the
    # whole shed comes back in ISP 10:30, at -50 EUR/MWh: rebound value -0.046, net 0.092 + 0.046 = 0.138.
    result = settle_frames(full_session(), acts(), prices(100.0, -50.0), baseline="sessions")
    row = result.activations.iloc[0]
    assert row["shed_kwh"] == pytest.approx(0.92)
    assert row["rebound_kwh"] == pytest.approx(0.92)
    assert row["never_delivered_kwh"] == pytest.approx(0.0, abs=1e-9)
    assert row["value_eur"] == pytest.approx(0.092)
    assert row["rebound_value_eur"] == pytest.approx(-0.046)
    assert row["net_value_eur"] == pytest.approx(0.138)
    rebound = result.rebound.set_index("isp_start")["rebound_kwh"]
    assert rebound[at("10:30:00")] == pytest.approx(0.92)
    assert rebound.drop(at("10:30:00")).abs().max() == pytest.approx(0.0, abs=1e-9)


def test_a_session_that_unplugs_while_drawing_never_takes_its_shed_back():
    # A is still drawing 11.04 kW when its data end at 11:30: never delivered = shed.
    row = settle_frames(fleet(), acts(), prices(100.0, 100.0), baseline="sessions").activations.iloc[0]
    assert row["rebound_kwh"] == pytest.approx(0.0, abs=1e-9)
    assert row["net_value_eur"] == pytest.approx(row["value_eur"])


def test_rebound_window_is_a_setting_and_stops_at_the_next_signal():
    # With a 15-min window (10:15-10:30) the catch-up at 10:30-10:35 is outside it.
    short = settle_frames(full_session(), acts(), prices(100.0, 100.0), baseline="sessions",
                          params=SettleParams(rebound_window_s=900)).activations.iloc[0]
    assert short["rebound_kwh"] == pytest.approx(0.0, abs=1e-9)
    two = pd.DataFrame({"activation_id": ["a", "b"], "t_signal": [T_SIGNAL, at("10:25:00")],
                        "t_clear": [T_CLEAR, at("10:27:00")]})
    result = settle_frames(full_session(), two, prices(100.0, 100.0), baseline="sessions")
    assert result.rebound[result.rebound["activation_id"] == "a"]["isp_start"].max() < at("10:25:00")


@pytest.fixture(scope="module")
def full_rec():
    return settle_frames(full_session(), acts(), baseline="sessions").reconstruction


@settings(max_examples=40, deadline=None)
@given(shed=st.floats(-5.0, 5.0), later=st.lists(st.floats(0.0, 500.0), min_size=4, max_size=4),
       window=st.floats(-500.0, 500.0))
def test_net_is_at_most_gross_when_later_prices_are_not_negative(full_rec, shed, later, window):
    from settlement.core.settle import _rebound_rows

    act = acts().iloc[0]
    index = pd.date_range(T_CLEAR, periods=4, freq="15min")
    rows = _rebound_rows(full_rec, act, shed, pd.Series(later, index=index), 3600.0, None)
    total = sum(r["rebound_kwh"] for r in rows)
    assert -1e-12 <= total <= max(shed, 0.0) + 1e-12  # never negative, never more than was shed
    net = _net({"shed_kwh": shed, "value_eur": shed / 1000 * window}, rows)
    assert net["net_value_eur"] <= shed / 1000 * window + 1e-12
    assert net["never_delivered_kwh"] == pytest.approx(shed - total)


@settings(max_examples=40, deadline=None)
@given(cut=st.floats(0.0, 7200.0))
def test_rebound_is_monotone_in_the_window(full_rec, cut):
    # Energy taken back by any time is never more than by a later time, and never more than the shed.
    b = [T_CLEAR, T_CLEAR + pd.Timedelta(seconds=cut), T_CLEAR + pd.Timedelta(seconds=7200)]
    parts = rebound_kwh(full_rec, T_SIGNAL, T_CLEAR, b)
    assert (parts >= -1e-12).all()
    assert parts.sum() <= 0.92 + 1e-9
