"""ISP arithmetic, activation window, cap and eligibility: hand-computed cases and properties."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flexibility.planning import (
    CAP_BUDGET,
    MAX_ACTIVATION,
    SKIP_ALREADY,
    SKIP_AT_OR_BELOW_MIN,
    SKIP_CAP,
    SKIP_DRAW_UNKNOWN,
    SKIP_NOT_ACTIVE,
    SKIP_NOT_REGISTERED,
    SKIP_OPTED_OUT,
    SKIP_STALE,
    SKIP_TOO_SHORT,
    PlanningError,
    SessionView,
    activation_end,
    cap_allowance,
    draw_known,
    isp_start,
    isp_starts_between,
    max_window_throttle,
    next_isp_boundary,
    per_phase_current_range_a,
    plan_caps,
    plausible_phases,
    shed_kw,
    validate_signal_end,
)


def t(h, m, s=0, us=0):
    return datetime(2025, 5, 6, h, m, s, us, tzinfo=UTC)


M = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("now", "start", "boundary"),
    [
        (t(17, 0), t(17, 0), t(17, 15)),  # on a boundary: the next one, not itself
        (t(17, 14, 59, 999999), t(17, 0), t(17, 15)),
        (t(17, 15, 0, 1), t(17, 15), t(17, 30)),
        (t(17, 44, 30), t(17, 30), t(17, 45)),
        (t(23, 59, 59), t(23, 45), datetime(2025, 5, 7, 0, 0, tzinfo=UTC)),  # across midnight
    ],
)
def test_isp_arithmetic_on_and_around_boundaries(now, start, boundary):
    assert isp_start(now) == start
    assert next_isp_boundary(now) == boundary


def test_isp_arithmetic_converts_other_offsets_to_utc():
    from zoneinfo import ZoneInfo

    local = datetime(2025, 5, 6, 19, 7, tzinfo=ZoneInfo("Europe/Amsterdam"))  # 17:07Z
    assert next_isp_boundary(local) == t(17, 15)


def test_isp_starts_between_lists_every_overlapping_period():
    assert isp_starts_between(t(17, 4), t(17, 31)) == [t(17, 0), t(17, 15), t(17, 30)]
    assert isp_starts_between(t(17, 4), t(17, 15)) == [t(17, 0)]


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_isp_boundary_properties(now):
    b = next_isp_boundary(now)
    assert now < b <= now + timedelta(minutes=15)
    assert b.minute % 15 == 0 and b.second == 0 and b.microsecond == 0
    assert isp_start(now) <= now < isp_start(now) + timedelta(minutes=15)


def test_activation_end_defaults_to_next_boundary():
    assert activation_end(t(17, 4)) == t(17, 15)


def test_activation_end_uses_given_end_but_never_beyond_15_minutes():
    assert activation_end(t(17, 4), t(17, 10)) == t(17, 10)
    assert activation_end(t(17, 4), t(17, 25)) == t(17, 19)


def test_activation_end_in_the_past_cannot_be_relayed():
    with pytest.raises(PlanningError, match="before it could be relayed"):
        activation_end(t(17, 4), t(17, 3))


def test_signal_end_validation():
    validate_signal_end(t(17, 4), None)
    validate_signal_end(t(17, 4), t(17, 19))
    with pytest.raises(PlanningError, match="past"):
        validate_signal_end(t(17, 4), t(17, 4))
    with pytest.raises(PlanningError, match="more than 15 minutes"):
        validate_signal_end(t(17, 4), t(17, 19, 1))


def test_cap_allowance_hand_computed():
    # 20 min throttled 17:00-17:20 leaves 10 min in any 4 h window containing it.
    past = ((t(17, 0), t(17, 20)),)
    assert cap_allowance(past, t(18, 0), 15 * M) == 10 * M
    # Starting at 20:55, a window ending at 20:55+L reaches back to 16:55+L: for L > 5 min the old
    # throttle starts to fall out, 1 s for 1 s, so L + (20 - (L - 5)) = 25 min fits: all 15 min.
    assert cap_allowance(past, t(20, 55), 15 * M) == 15 * M
    # At 20:50: L + 20 - max(0, L - 10) <= 30 -> L <= 10 only while L <= 10; beyond, 30 <= 30 holds.
    assert cap_allowance(past, t(20, 50), 15 * M) == 15 * M
    # At 20:40: window back to 16:40+L keeps all 20 min until L > 20: so L <= 10.
    assert cap_allowance(past, t(20, 40), 15 * M) == 10 * M
    # Two earlier throttles of 15 min fill the budget.
    full = ((t(16, 0), t(16, 15)), (t(17, 0), t(17, 15)))
    assert cap_allowance(full, t(17, 30), 15 * M) == timedelta(0)


def test_max_window_throttle_counts_overlaps():
    assert max_window_throttle(((t(16, 0), t(16, 15)), (t(19, 0), t(19, 15)))) == 30 * M
    assert max_window_throttle(((t(12, 0), t(12, 15)), (t(17, 0), t(17, 15)))) == 15 * M


def view(pk=1, status="ACTIVE", current=16.0, phases=3, opted_out=False, past=()):
    return SessionView(pk, status, current, phases, opted_out, tuple(past))


def test_plan_caps_classifies_every_skip_reason():
    plan = plan_caps(
        [
            view(1),
            view(2, status="COMPLETED"),
            view(3, current=8.0),
            view(4, current=None),
            view(5, opted_out=True),
            view(6, past=[(t(16, 0), t(16, 15)), (t(16, 30), t(16, 45))]),
            view(7, past=[(t(17, 0), t(17, 15))]),  # overlaps the new activation
            view(8, current=12.5, phases=1, past=[(t(15, 0), t(15, 25))]),  # 5 min left
            SessionView(9, "ACTIVE", 16.0, 3, party_registered=False),  # a revoked party is not steered
            SessionView(10, "ACTIVE", 16.0, 3, seen_at=t(16, 30)),  # 34 min without news: stale
            SessionView(11, "ACTIVE", 16.0, 3, seen_at=t(16, 40)),  # 24 min: still counts
        ],
        t(17, 4),
        t(17, 15),
    )
    assert [c.session_pk for c in plan.caps] == [1, 8, 11]
    assert plan.caps[0].ends_at == t(17, 15)
    assert plan.caps[1].ends_at == t(17, 9)  # only the 5 minutes of budget left
    assert plan.skipped == {
        SKIP_NOT_ACTIVE: 1,
        SKIP_NOT_REGISTERED: 1,
        SKIP_STALE: 1,
        SKIP_DRAW_UNKNOWN: 1,  # an unknown draw is never filed under "at or below 8 A"
        SKIP_AT_OR_BELOW_MIN: 1,
        SKIP_OPTED_OUT: 1,
        SKIP_CAP: 1,
        SKIP_ALREADY: 1,
        SKIP_TOO_SHORT: 0,
    }
    # (16 - 8) A x 3 phases x 230 V = 5.52 kW; (12.5 - 8) x 1 x 230 = 1.035 kW
    assert plan.expected_kw == pytest.approx(5.52 + 1.035 + 5.52)


def test_a_fractional_activation_is_not_mistaken_for_an_exhausted_budget():
    plan = plan_caps([view(1)], t(17, 14, 45, 300000), t(17, 15))
    assert [c.ends_at for c in plan.caps] == [t(17, 15)]


def test_a_late_session_is_capped_only_with_a_window_worth_a_put():
    # Relayed at 17:00, ends 17:15: a session capped late needs MIN_THROTTLE (60 s) of window left.
    assert len(plan_caps([view(1)], t(17, 13, 59), t(17, 15), activation_start=t(17, 0)).caps) == 1
    late = plan_caps([view(1)], t(17, 14, 1), t(17, 15), activation_start=t(17, 0))
    assert late.caps == [] and late.skipped[SKIP_TOO_SHORT] == 1
    # A 20 s activation (the BRP asked for it): a late cap needs all 20 s, so none is sent late...
    assert plan_caps([view(1)], t(17, 0, 5), t(17, 0, 20), activation_start=t(17, 0)).skipped[SKIP_TOO_SHORT] == 1
    # ...while the relay itself caps for the whole short window.
    assert len(plan_caps([view(1)], t(17, 0), t(17, 0, 20)).caps) == 1


def test_plan_refuses_activations_over_15_minutes():
    with pytest.raises(PlanningError, match="at most 15 minutes"):
        plan_caps([], t(17, 0), t(17, 15, 1))


def test_shed_kw_counts_unknown_phases_as_one():
    assert shed_kw(16.0, None) == pytest.approx(1.84)
    assert shed_kw(6.0, 3) == 0.0


# --- the cap, as a property over random sequences of signals and sessions -----------------------

DAY0 = datetime(2025, 5, 6, tzinfo=UTC)

signals = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=24 * 3600),  # relay time, seconds into the day
        st.one_of(st.none(), st.integers(min_value=-60, max_value=40 * 60)),  # given end offset
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(signals, st.integers(min_value=1, max_value=6))
def test_cap_never_exceeded_over_random_signal_sequences(sigs, n_sessions):
    history: dict[int, list] = {pk: [] for pk in range(n_sessions)}
    for relay_s, end_offset in sorted(sigs, key=lambda sig: sig[0]):
        relayed = DAY0 + timedelta(seconds=relay_s)
        given_end = None if end_offset is None else relayed + timedelta(seconds=end_offset)
        try:
            end = activation_end(relayed, given_end)
        except PlanningError:
            assert given_end is not None and given_end <= relayed
            continue
        assert timedelta(0) < end - relayed <= MAX_ACTIVATION
        views = [view(pk, past=history[pk]) for pk in range(n_sessions)]
        for cap in plan_caps(views, relayed, end).caps:
            assert cap.ends_at - cap.starts_at <= MAX_ACTIVATION
            history[cap.session_pk].append((cap.starts_at, cap.ends_at))
    for intervals in history.values():
        assert max_window_throttle(intervals) <= CAP_BUDGET
        spans = sorted(intervals)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # no double throttling


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4 * 3600), st.integers(1, 900)), max_size=6),
    st.integers(4 * 3600, 5 * 3600),
    st.integers(1, 900),
)
def test_cap_allowance_is_the_longest_that_fits(raw, start_s, want_s):
    # Build a valid history (every window <= 30 min) by admitting intervals through the rule itself.
    past: list = []
    for s, length in sorted(raw):
        begin = DAY0 + timedelta(seconds=s)
        if past and begin < past[-1][1]:
            continue
        allowed = cap_allowance(past, begin, timedelta(seconds=length))
        if allowed:
            past.append((begin, begin + allowed))
    start = DAY0 + timedelta(seconds=start_s)
    if past and start < past[-1][1]:
        return
    allowed = cap_allowance(past, start, timedelta(seconds=want_s))
    assert timedelta(0) <= allowed <= timedelta(seconds=want_s)
    assert max_window_throttle([*past, (start, start + allowed)]) <= CAP_BUDGET
    if allowed < timedelta(seconds=want_s):  # one more second would break the cap
        longer = (start, start + allowed + timedelta(seconds=1))
        assert max_window_throttle([*past, longer]) > CAP_BUDGET


# --- eligibility from standard data: draw, phases, ranges ---------------------------------------

START, END = t(17, 0), t(17, 15)


def std(pk=1, *, current=None, power=None, source="", phases=None, phases_source="", max_current=None,
        unresponsive=False) -> SessionView:
    return SessionView(pk, "ACTIVE", current, phases, last_power_kw=power, current_source=source,
                       phases_source=phases_source, max_current_a=max_current, unresponsive=unresponsive)


def only_cap(view_):
    plan = plan_caps([view_], START, END)
    assert len(plan.caps) == 1, plan.skipped
    return plan.caps[0]


def test_current_16a_with_power_11_04_kw_is_three_phase_and_sheds_5_52_kw():
    # The pair named three phases at intake: (16 - 8) A x 3 x 230 V = 5.52 kW, a point, not a third of it.
    cap = only_cap(std(current=16.0, power=11.04, source="measured", phases=3, phases_source="power_current"))
    assert (cap.expected_kw, cap.expected_kw_high) == (pytest.approx(5.52), pytest.approx(5.52))


def test_power_with_unknown_phases_is_capped_with_a_shed_range():
    # 11 kW on 1, 2 or 3 phases: shed = P - 1.84 kW x n -> 9.16 (n=1), 7.32 (n=2), 5.48 (n=3).
    cap = only_cap(std(power=11.0, source="assumed"))
    assert (cap.expected_kw_low, cap.expected_kw_high) == (pytest.approx(5.48), pytest.approx(9.16))
    # Best estimate: the fleet prior 0.35 / 0.03 / 0.62; 47.8 A on one phase is more than the 32 A
    # an AC connector gives (x 0.02 when the connector's own maximum is unknown); 23.9 and 15.9 A fit.
    assert cap.expected_kw == pytest.approx((0.007 * 9.16 + 0.03 * 7.32 + 0.62 * 5.48) / 0.657)
    # A 32 A connector rules one phase out (11000 / 230 = 47.8 A > 32 A + 10 %): 5.48 .. 7.32.
    cap = only_cap(std(power=11.0, source="assumed", max_current=32.0))
    assert (cap.expected_kw_low, cap.expected_kw_high) == (pytest.approx(5.48), pytest.approx(7.32))
    assert cap.expected_kw == pytest.approx((0.03 * 7.32 + 0.62 * 5.48) / 0.65)


def test_a_one_phase_car_on_a_three_phase_connector_is_not_missed():
    # 3.68 kW: 16 A on one phase (above 8 A) or 5.3 A on three (below): capped, shed 0 .. 1.84 kW.
    cap = only_cap(std(power=3.68, source="kwh", phases=3, phases_source="connector"))
    assert (cap.expected_kw_low, cap.expected_kw_high) == (pytest.approx(0.0), pytest.approx(1.84))
    # Best estimate: 5.3 A on three phases is under the 6 A an EV is offered at least (weight x 0.1):
    # one phase 0.35, two 0.03 (8 A: no shed), three 0.062 (no shed) -> 1.84 x 0.35 / 0.442.
    assert cap.expected_kw == pytest.approx(1.84 * 0.35 / 0.442)
    # The same power on a one-phase connector is certain: 16 A, shed exactly 1.84 kW.
    cap = only_cap(std(power=3.68, source="kwh", phases=1, phases_source="connector"))
    assert (cap.expected_kw, cap.expected_kw_high) == (pytest.approx(1.84), pytest.approx(1.84))


def test_low_power_is_at_or_below_8a_on_every_phase_count_and_unknown_draw_has_its_own_reason():
    # 1.84 kW = 8 A on one phase, the most it can be: nothing to shed.
    plan = plan_caps([std(1, power=1.84, source="assumed"), std(2)], START, END)
    assert plan.caps == [] and plan.skipped[SKIP_AT_OR_BELOW_MIN] == 1 and plan.skipped[SKIP_DRAW_UNKNOWN] == 1


def test_an_unresponsive_evse_is_capped_but_counted_out_of_the_shed():
    cap = only_cap(std(current=16.0, source="measured", phases=3, phases_source="reported", unresponsive=True))
    assert (cap.expected_kw, cap.expected_kw_high) == (0.0, 0.0)


def test_the_plan_counts_its_caps_by_where_their_draw_came_from():
    plan = plan_caps([std(1, power=11.0, source="kwh", phases=3, phases_source="reported"),
                      std(2, power=11.0, source="assumed"), std(3, power=9.0, source="assumed"),
                      std(4, current=16.0, source="measured", phases=3, phases_source="reported")], START, END)
    assert plan.by_source == {"kwh": 1, "assumed": 2, "measured": 1}
    # 11 kW on three known phases: 11 - 5.52 = 5.48 kW; 11 and 9 kW unknown: 5.48..9.16 and 3.48..7.16 kW.
    assert plan.expected_kw_low == pytest.approx(5.48 + 5.48 + 3.48 + 5.52)
    assert plan.expected_kw_low <= plan.expected_kw <= plan.expected_kw_high
    assert plan.expected_kw_high == pytest.approx(5.48 + 9.16 + 7.16 + 5.52)


def test_stale_after_is_a_parameter():
    seen = SessionView(1, "ACTIVE", 16.0, 3, seen_at=t(16, 50))  # 10 min without news
    assert plan_caps([seen], START, END, timedelta(minutes=5)).skipped[SKIP_STALE] == 1
    assert len(plan_caps([seen], START, END, timedelta(minutes=30)).caps) == 1


views_std = st.builds(
    std,
    current=st.none() | st.floats(0, 80),
    power=st.none() | st.floats(0, 60),
    source=st.sampled_from(["measured", "power", "kwh", "assumed", ""]),
    phases=st.none() | st.integers(1, 3),
    phases_source=st.sampled_from(["reported", "power_current", "connector", ""]),
    max_current=st.none() | st.floats(6, 64),
    unresponsive=st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(views_std)
def test_eligibility_invariants(v):
    plan = plan_caps([v], START, END)
    verdict = next((reason for reason, n in plan.skipped.items() if n), "eligible")
    if not draw_known(v):
        assert verdict == SKIP_DRAW_UNKNOWN  # never "at or below 8 A"
        return
    low_a, high_a = per_phase_current_range_a(v)
    assert low_a <= high_a
    # Capped exactly when some plausible phase count puts the draw above 8 A per phase.
    assert (verdict == "eligible") == (high_a > 8.0)
    for cap in plan.caps:
        assert 0.0 <= cap.expected_kw_low <= cap.expected_kw <= cap.expected_kw_high
        if v.unresponsive:
            assert cap.expected_kw_high == 0.0
        # The range holds the shed of every plausible phase count.
        for n in plausible_phases(v):
            current = v.last_current_a if v.last_power_kw is None or (
                v.current_source == "measured" and v.last_current_a is not None) else v.last_power_kw * 1000 / (230 * n)
            shed = 0.0 if v.unresponsive else max(0.0, current - 8.0) * n * 0.23
            assert cap.expected_kw_low - 1e-9 <= shed <= cap.expected_kw_high + 1e-9
