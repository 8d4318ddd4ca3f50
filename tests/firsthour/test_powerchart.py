"""The live chart's arithmetic, by hand and as properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexibility.powerchart import StatePoint, aggregate, state_power_kw, time_grid

T0 = datetime(2025, 5, 6, 17, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def test_power_from_currents_and_minimum_at_8_a_by_hand():
    # Three phases at 16 A: 3 x 16 x 230 = 11.04 kW; at 8 A: 3 x 8 x 230 = 5.52 kW.
    assert state_power_kw(StatePoint(1, T0, None, (16.0, 16.0, 16.0), True)) == pytest.approx((11.04, 5.52))
    # One phase at 6 A: 1.38 kW, already below 8 A (1.84 kW): the minimum is what it draws.
    assert state_power_kw(StatePoint(1, T0, None, (6.0, None, 0.0), True)) == pytest.approx((1.38, 1.38))
    # Reported power wins; no current known counts one phase: min(7.0, 1.84) = 1.84.
    assert state_power_kw(StatePoint(1, T0, 7.0, (None, None, None), True)) == pytest.approx((7.0, 1.84))
    # A session that stopped charging draws nothing.
    assert state_power_kw(StatePoint(1, T0, 7.0, (16.0, 16.0, 16.0), False)) == (0.0, 0.0)


def test_aggregate_holds_each_session_at_its_last_state():
    points = [
        StatePoint(1, at(0), 11.04, (16.0, 16.0, 16.0), True),
        StatePoint(1, at(60), 5.52, (8.0, 8.0, 8.0), True),  # capped
        StatePoint(2, at(30), 3.68, (16.0, None, None), True),  # one phase at 16 A
    ]
    series = aggregate(points, [at(0), at(30), at(59), at(60), at(90)])
    # t=0: only session 1 (11.04). t=30, 59: 11.04 + 3.68 = 14.72. t=60, 90: 5.52 + 3.68 = 9.2.
    assert series.power_kw == pytest.approx([11.04, 14.72, 14.72, 9.2, 9.2])
    # Minimum: session 1 at 5.52, session 2 at 1.84 once it is known.
    assert series.min_8a_kw == pytest.approx([5.52, 7.36, 7.36, 7.36, 7.36])


def test_time_grid_spans_the_window():
    grid = time_grid(at(0), at(120), points=5)
    assert grid == [at(0), at(30), at(60), at(90), at(120)]
    assert time_grid(at(10), at(0)) == [at(10)]


currents = st.one_of(st.none(), st.floats(0, 32))
state = st.builds(StatePoint, st.integers(1, 4), st.integers(0, 600).map(at),
                  st.one_of(st.none(), st.floats(0, 22)), st.tuples(currents, currents, currents), st.booleans())


@given(st.lists(state, max_size=30), st.lists(st.integers(0, 700), min_size=1, max_size=20))
def test_minimum_never_exceeds_the_power_and_neither_is_negative(points, seconds):
    series = aggregate(points, sorted(at(s) for s in seconds))
    for power, minimum in zip(series.power_kw, series.min_8a_kw, strict=True):
        assert 0 <= minimum <= power + 1e-9
