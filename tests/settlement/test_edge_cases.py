"""Settlement edge cases around a paper-shaped activation (signal 23:04, clear 23:15), hand-computed.

Powers: 3 phases x 16 A x 0.23 kW/A = 11.04 kW; 3 x 8 A = 5.52 kW.
"""

from __future__ import annotations

import pandas as pd
import pytest

from settlement.core import settle_frames
from settlement.core.settle import SettleParams
from tests.settlement.helpers import at, frame, sampled_session, state_rows
from tests.settlement.test_settle import CLEAR, SIGNAL, activations, figure8_states, throttled

PRICES = pd.Series([100.0], index=pd.DatetimeIndex([at("23:00:00")]))  # so "no price" does not thin them


def settle_one(rows: list[dict]) -> pd.Series:
    return settle_frames(frame(rows), activations(), PRICES).activations.iloc[0]


def test_duplicated_and_out_of_order_states_settle_like_clean_ones():
    clean = figure8_states(10)
    messy = pd.concat([clean, clean.iloc[::3]]).sample(frac=1.0, random_state=7).reset_index(drop=True)
    a = settle_frames(clean, activations(), PRICES).activations.iloc[0]
    b = settle_frames(messy, activations(), PRICES).activations.iloc[0]
    for col in ("delivered_kwh", "baseline_kwh", "shed_kwh", "p_signal_kw", "p_clear_kw"):
        assert b[col] == pytest.approx(a[col], rel=1e-12)
    # Exact duplicates are no data issue: the activation is not thin because of them.
    assert b["flagged_sessions"] == 0 and b["data_quality"] == "ok"


def test_session_ending_inside_the_activation():
    # Throttled from 23:04:30; unplugged at 23:10 with a final state (0 A). E(t_clear) = E(23:10):
    # 30 s x 11.04 + 330 s x 5.52 = 331.2 + 1821.6 kWs = 0.598 kWh delivered inside the activation.
    rows = sampled_session("s", "e", at("22:30:00"), at("23:10:00"), throttled)
    row = settle_one(rows)
    assert row["delivered_kwh"] == pytest.approx((30 * 11.04 + 330 * 5.52) / 3600, rel=1e-9)
    assert row["sessions"] == 1


def test_session_starting_inside_the_activation_and_running_on():
    # Plugs in at 23:08 (first state: 0 kWh) and is capped from its first push; 8 A until 23:15:
    # 420 s x 5.52 kW = 0.644 kWh; E(t_signal) = 0 because it was not there (formula 1).
    rows = sampled_session("late", "e", at("23:08:00"), at("23:40:00"), throttled)
    row = settle_one(rows)
    assert row["delivered_kwh"] == pytest.approx(420 * 5.52 / 3600, rel=1e-9)


def test_zero_current_session_contributes_nothing():
    # A full car, ACTIVE at 0 A all along (kWh flat): no power, no shed, no data issue.
    idle = state_rows("full", "e0", [at("22:50:00") + pd.Timedelta(minutes=5 * k) for k in range(12)],
                      [12.5] * 12, [0.0] * 12)
    busy = sampled_session("s", "e1", at("22:30:00"), at("23:50:00"), throttled)
    alone = settle_one(busy)
    both = settle_one(busy + idle)
    for col in ("delivered_kwh", "baseline_kwh", "shed_kwh"):
        assert both[col] == pytest.approx(alone[col], rel=1e-12)
    assert both["flagged_sessions"] == 0


def test_states_missing_for_a_while_conserve_energy_and_make_the_activation_thin():
    rows = [r for r in sampled_session("s", "e", at("22:30:00"), at("23:50:00"), throttled)
            if not at("23:00:00") < r["timestamp"] < at("23:20:00")]
    # States at 23:00 (16 A) and 23:20 (16 A): 270 s x 11.04 + 630 s x 5.52 + 300 s x 11.04 = 9770.4 kWs
    # = 2.714 kWh in between. Both ends show 16 A, so the currents do not show the dip.
    # Notch shape: 11.04 kW before 23:04 (240 s) and after 23:15 (300 s), the rest inside the window:
    # 9770.4 - 2649.6 - 3312 = 3808.8 kWs = 1.058 kWh, exactly the truth (30 s x 11.04 + 630 s x 5.52).
    row = settle_one(rows)
    assert row["delivered_kwh"] == pytest.approx(3808.8 / 3600, rel=1e-9)
    assert row["data_quality"] == "thin"
    assert "1 of 1 active session(s) with data issues near the activation" in row["dq_reasons"]
    assert "only 0% of sessions" in row["dq_reasons"]  # no state within 10 min after 23:04
    # Without the activation windows the energy is spread evenly: 660 of the 1200 s lie inside the
    # activation: 9770.4 / 3600 x 660 / 1200 = 1.4927 kWh.
    blind = settle_frames(frame(rows), activations(), PRICES, params=SettleParams(notch=False)).activations.iloc[0]
    assert blind["delivered_kwh"] == pytest.approx(9770.4 / 3600 * 660 / 1200, rel=1e-9)


def test_notch_level_never_goes_below_zero():
    # 16 A at both ends 20 min apart but only 0.5 kWh in between: even 0 kW in the window leaves
    # 540 s x 11.04 kW = 1.656 kWh > 0.5, so the level is 0 and the outside is scaled down: nothing is
    # delivered inside the window, the 0.5 kWh stays between the states.
    rows = state_rows("s", "e", [at("23:00:00"), at("23:20:00")], [0.0, 0.5], [16.0, 16.0])
    rec = settle_frames(frame(rows), activations(), PRICES)
    assert rec.activations["delivered_kwh"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert rec.reconstruction.bin_energy_kwh.sum() == pytest.approx(0.5)
    assert (rec.reconstruction.bin_energy_kwh >= 0).all()


def test_a_gap_hours_away_does_not_thin_the_activation():
    rows = [r for r in sampled_session("s", "e", at("20:00:00"), at("23:50:00"), throttled)
            if not at("20:30:00") < r["timestamp"] < at("21:00:00")]
    row = settle_one(rows)
    assert row["flagged_sessions"] == 0 and row["data_quality"] == "ok"


def test_one_flagged_session_among_many_is_counted_but_not_thin():
    # 40 paper-shaped sessions plus one with a single state at 23:07: flagged (no power can be
    # rebuilt from one state), but 1 of 41 = 2.4 % is below the 5 % threshold.
    single = state_rows("one", "e-one", [at("23:07:00")], [3.0], [16.0])
    result = settle_frames(pd.concat([figure8_states(40), frame(single)], ignore_index=True), activations(),
                           PRICES)
    row = result.activations.iloc[0]
    assert row["flagged_sessions"] == 1 and row["sessions"] == 41
    assert "data issues" not in row["dq_reasons"]
    flags = result.reconstruction.session_flags.set_index("session_id")["flags"]
    assert "single_state" in flags["one"]


def test_a_session_with_one_state_only_alone_is_thin():
    row = settle_one(state_rows("one", "e", [at("23:07:00")], [3.0], [16.0]))
    assert row["delivered_kwh"] == 0.0
    assert row["data_quality"] == "thin"
    assert "1 of 1 active session(s) with data issues" in row["dq_reasons"]


def test_figure8_signal_and_clear_are_the_paper_times():
    # Guard: the shared figure-8 fixture is the paper's 23:04 -> 23:15 activation.
    assert (SIGNAL, CLEAR) == (at("23:04:00"), at("23:15:00"))
