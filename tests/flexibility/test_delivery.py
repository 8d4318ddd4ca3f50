"""The delivery rule (pure): responded / did not respond / no data, resumed / did not resume."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from flexibility import delivery
from flexibility.delivery import Reading, Rule, judge, judge_frame

T0 = datetime(2025, 5, 6, 17, 4, tzinfo=UTC)
CAP_END = T0 + timedelta(minutes=11)
RULE = Rule(limit_a=8.0, tolerance_a=1.5, tolerance_kw=0.5, grace=timedelta(seconds=120),
            resume_window=timedelta(minutes=5))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def verdict(readings, phases=3, session_start=T0 - timedelta(hours=1), restored_at=None) -> delivery.Verdict:
    return judge(readings, cap_start=T0, cap_end=CAP_END, session_start=session_start, phases=phases,
                 restored_at=restored_at, rule=RULE)


def test_measured_currents_at_the_cap_responded_above_did_not():
    assert verdict([Reading(at(180), 10, current_a=8.2), Reading(at(300), 10.1, current_a=8.0)]).delivery == "responded"
    assert verdict([Reading(at(180), 10, current_a=16.0), Reading(at(300), 10.1, current_a=15.8)]).delivery == (
        "not_responded")
    # 9.5 A is the cap plus the tolerance (8 + 1.5): still at the level; 9.6 A is not.
    assert verdict([Reading(at(200), 10, current_a=9.5)]).delivery == "responded"
    assert verdict([Reading(at(200), 10, current_a=9.6)]).delivery == "not_responded"


def test_kwh_only_states_are_judged_from_their_average_power_on_the_sessions_phases():
    # 0.276 kWh in 180 s = 5.52 kW. Three phases: 8 A x 230 V x 3 = 5.52 kW (+0.5 tolerance) -> at the cap.
    readings = [Reading(at(180), 10.0), Reading(at(360), 10.276)]
    assert verdict(readings, phases=3).delivery == "responded"
    # One phase: 8 A x 230 V = 1.84 kW (+0.5): 5.52 kW is well above -> the cap was ignored.
    assert verdict(readings, phases=1).delivery == "not_responded"


def kwh_states(power_kw: float) -> list[Reading]:
    """kWh-only states every 60 s from 2 min before the cap to 5 min into it, at a constant draw."""
    return [Reading(at(-120 + 60 * i), power_kw * i / 60) for i in range(8)]


def test_with_unknown_phases_a_power_decides_on_the_phase_counts_it_fits():
    """8 A on 1, 2, 3 phases is 1.84, 3.68, 5.52 kW (+0.5 kW tolerance: 2.34, 4.18, 6.02 kW). 12 kW
    held before and during the cap is above it on any count: did not respond. 3.7 kW on one phase
    (16 A) is above 2.34: did not respond. 5.5 kW from 2 min into the cap on (no state before it) is
    8 A on three phases or 24 A on one: only a 16 A connector (max_amperage) rules one phase out, and
    then it is at the cap: responded."""
    assert verdict(kwh_states(12.0), phases=(1, 2, 3)).delivery == "not_responded"
    assert verdict(kwh_states(3.7), phases=1).delivery == "not_responded"
    assert verdict(kwh_states(5.5), phases=(1, 2, 3)).delivery == "no_data"
    bounded = judge(kwh_states(5.5)[4:], cap_start=T0, cap_end=CAP_END, session_start=T0 - timedelta(hours=1),
                    phases=(1, 2, 3), rule=RULE, max_current_a=16.0)
    assert bounded.delivery == "responded"


def test_a_draw_that_stayed_where_the_cap_may_not_bind_proves_no_obedience_either():
    """5.5 kW before and during the cap on a 16 A connector: 8 A on three phases (the cap at 8 A +
    tolerance, 6.02 kW, does not bind), 12 A on two (it binds: 4.18 kW), not one phase (24 A). The
    weighed counts read "at the cap", but the draw did not fall: no data, not `responded`."""
    stayed = judge(kwh_states(5.5), cap_start=T0, cap_end=CAP_END, session_start=T0 - timedelta(hours=1),
                   phases=(1, 2, 3), rule=RULE, max_current_a=16.0)
    assert stayed.delivery == "no_data"


def kwh_profile(powers_kw, start_s: float = -120, step_s: float = 60, rule: Rule = RULE, **kwargs) -> str:
    """The delivery verdict on kWh-only states every `step_s` from `start_s`, the i-th interval drawn
    at powers_kw[i], phases (1, 2, 3) unless given."""
    kwh, readings = 0.0, [Reading(at(start_s), 0.0)]
    for i, p in enumerate(powers_kw):
        kwh += p * step_s / 3600
        readings.append(Reading(at(start_s + step_s * (i + 1)), kwh))
    return judge(readings, cap_start=T0, cap_end=CAP_END, session_start=T0 - timedelta(hours=1),
                 phases=kwargs.pop("phases", (1, 2, 3)), rule=rule, **kwargs).delivery


def test_a_draw_the_cap_allows_on_some_phase_count_that_fell_like_a_finishing_ev_is_undecidable():
    """3.7 kW before the cap and falling through it: 16 A on one phase (ignoring the cap), or 5.4 A on
    three, an EV finishing its charge that the cap does not bind (3.7 <= 6.02 kW). Falling 3 % a
    minute (3.7, 3.59, 3.48 ... kW) it reads as the finishing EV: no data, never `not_responded` (the
    seed-1 realism run judged four tapering three-phase cars at 3.3-5 A per phase "did not respond"
    before this rule). On a count that is firm, the same draw is decided."""
    falling = [3.7 * (1 - 0.03 * i) for i in range(7)]  # the first minute 3.7 kW, the last 3.034 kW: -18 %
    assert kwh_profile(falling) == "no_data"
    assert kwh_profile(falling, phases=(1, 3)) == "no_data"
    assert kwh_profile(falling, phases=1) == "not_responded"  # 3.03-3.7 kW > 2.34 kW on one phase


def test_a_flat_draw_the_cap_allows_only_on_a_finishing_count_did_not_respond():
    """The same 3.7 kW held flat from 2 min before the cap to 5 min into it (first and last minute
    both 3.7 kW, 6 min apart): on three phases it would be 5.36 A, below the 5.4 A (6 A less 10 %) no
    EV draws unless finishing, and a finishing EV's draw falls. Left: one phase at 16.1 A (prior 0.35,
    above 2.34 kW) and two at 8.04 A (prior 0.03, at the cap: 3.7 <= 4.18 kW): 0.03 / 0.38 = 0.08 of
    the weight at the cap, under 1 - DECISIVE = 0.2: did not respond. 2.8 kW flat alike (12.2 A on
    one phase, 6.1 A on two, 4.1 A on three)."""
    assert kwh_profile([3.7] * 7) == "not_responded"
    assert kwh_profile([2.8] * 7) == "not_responded"
    assert kwh_profile([2.8] * 7, phases=(1, 3)) == "not_responded"
    assert kwh_profile([3.7] * 7, max_current_a=16.0) == "not_responded"  # 16.1 A <= 16 A + 10 %


def test_a_flat_draw_within_one_percent_but_not_beyond():
    """First minute 3.7 kW, last minute 0.8 % lower (3.6704 kW): flat; 1.5 % lower (3.6445 kW): not."""
    assert kwh_profile([3.7] * 4 + [3.7 * 0.992] * 3) == "not_responded"
    assert kwh_profile([3.7] * 4 + [3.7 * 0.985] * 3) == "no_data"


def test_a_flat_draw_needs_its_two_windows_45_s_apart():
    """States every 5 s at 3.68 kW with an 8 s grace. From -10 s to 40 s: the first 30 s window
    [-10, 20] s and the last [10, 40] s are 20 s apart (midpoints 5 s and 25 s): too short to tell a
    flat draw from a finishing one, no data. From -40 s to 70 s: midpoints -25 s and 55 s, 80 s apart:
    did not respond."""
    short_grace = Rule(limit_a=8.0, tolerance_a=1.5, tolerance_kw=0.5, grace=timedelta(seconds=8),
                       resume_window=timedelta(seconds=15))
    assert kwh_profile([3.68] * 10, start_s=-10, step_s=5, rule=short_grace) == "no_data"
    assert kwh_profile([3.68] * 22, start_s=-40, step_s=5, rule=short_grace) == "not_responded"


def test_what_an_earlier_flat_draw_ruled_out_stays_ruled_out_for_the_session():
    """3.09 kW falling 0.6 % a minute (a one-phase EV at 13.4 A nearing full): the first and last minute
    are 3.6 % apart, not flat: alone, no data. An earlier cap of the session found it flat at 3.09 kW:
    4.48 A on three phases, below the 5.4 A no EV draws unless finishing, so not three phases; its
    phases have not changed since. Left: one phase at 12.5-13.4 A (prior 0.35, above 2.34 kW) and two
    at 6.3-6.7 A (prior 0.03, at the cap: <= 4.18 kW): 0.03 / 0.38 = 0.08 of the weight at the cap:
    did not respond, and the verdict carries the 3.09 kW on. An earlier flat 5.0 kW rules nothing out
    (7.2 A on three phases): the three-phase count keeps 0.62 of the weight at the cap, no data."""
    tapering = [3.09 * (1 - 0.006 * i) for i in range(7)]
    assert kwh_profile(tapering) == "no_data"
    assert kwh_profile(tapering, flat_kw_before=3.09) == "not_responded"
    assert kwh_profile(tapering, flat_kw_before=5.0) == "no_data"
    readings = [Reading(at(-120 + 60 * i), sum(tapering[:i]) / 60) for i in range(8)]
    carried = judge(readings, cap_start=T0, cap_end=CAP_END, session_start=T0 - timedelta(hours=1),
                    phases=(1, 2, 3), rule=RULE, flat_kw_before=3.09)
    assert (carried.delivery, carried.flat_kw) == ("not_responded", 3.09)


def test_a_verdict_names_the_flat_draw_it_was_decided_on_and_only_then():
    """3.7 kW flat decides (its flat draw is kept for the session's later caps); 12 kW is above the cap
    on every count without it, and a fall to the cap is `responded`: neither names one."""
    readings = [Reading(at(-120 + 60 * i), 3.7 * i / 60) for i in range(8)]
    flat = judge(readings, cap_start=T0, cap_end=CAP_END, session_start=T0 - timedelta(hours=1),
                 phases=(1, 2, 3), rule=RULE)
    assert flat.delivery == "not_responded" and abs(flat.flat_kw - 3.7) < 1e-9
    assert verdict(kwh_states(12.0), phases=(1, 2, 3)).flat_kw is None
    before = [Reading(at(-120 + 60 * i), 3.7 * i / 60) for i in range(3)]
    fell = [Reading(at(60 * i), 3.7 * 2 / 60 + 1.5 * i / 60) for i in range(1, 6)]
    judged = judge(before + fell, cap_start=T0, cap_end=CAP_END, session_start=T0 - timedelta(hours=1),
                   phases=(1, 2, 3), rule=RULE, flat_kw_before=3.7)
    assert (judged.delivery, judged.flat_kw) == ("responded", None)


def test_a_flat_draw_a_three_phase_ev_could_hold_proves_nothing():
    """5.0 kW flat: 7.2 A on three phases is not a finishing EV (a charger balancing its load can hold
    it there) and the cap at 8 A does not bind it (5.0 <= 6.02 kW): the three-phase count stays with
    0.62 of the weight at the cap: no data."""
    assert kwh_profile([5.0] * 7) == "no_data"


def test_a_draw_that_fell_to_the_cap_from_one_it_allows_on_some_count_still_responded():
    """3.7 kW before (16 A on one phase, or 5.4 A on three), 1.5 kW from the cap on (at the cap on
    every count): it fell by 2.2 kW, more than the 0.5 kW tolerance: the cap lowered it."""
    before = [Reading(at(-120 + 60 * i), 3.7 * i / 60) for i in range(3)]  # 0.1233 kWh at t = 0
    during = [Reading(at(60 * i), 3.7 * 2 / 60 + 1.5 * i / 60) for i in range(1, 6)]
    assert verdict(before + during, phases=(1, 2, 3)).delivery == "responded"


def test_a_draw_the_cap_allows_on_every_phase_count_proves_nothing():
    """1.5 kW before the cap is at or below 8 A on one phase already (<= 2.34 kW): the cap asked for
    nothing, no data whatever follows (the kWh twin of `before_a`); 3.7 kW on three firm phases
    (5.4 A) the same."""
    assert verdict(kwh_states(1.5), phases=(1, 2, 3)).delivery == "no_data"
    assert verdict(kwh_states(3.7), phases=(3,)).delivery == "no_data"
    assert verdict(kwh_states(1.5), phases=(1, 2, 3), restored_at=CAP_END) == delivery.Verdict("no_data", "no_data")
    # Without states before the cap the draw it could lower is unknown: judged as before.
    assert verdict(kwh_states(1.5)[2:], phases=(1, 2, 3)).delivery == "responded"


def _fits(ordered, phases, session_start=T0 - timedelta(hours=1)):
    b = delivery._before(ordered, phases, delivery.Rule(), T0, session_start)
    return None if b is None else (b.some, b.every)


def test_the_draw_before_the_cap_is_the_kwh_average_of_its_last_two_minutes():
    """0 kWh at -10 min, 2.0 kWh at -2 min (15 kW), 2.1 kWh at the cap start (0.1 kWh in 120 s =
    3 kW): the draw the cap could lower is 3 kW (2 min), not the 11.6 kW average over 10 min. With
    states 5 min apart, the last two give it: 0.25 kWh in 300 s = 3 kW."""
    ordered = [Reading(at(-600), 0.0), Reading(at(-120), 2.0), Reading(at(0), 2.1)]
    assert _fits(ordered, (1, 2, 3)) == (True, False)
    assert _fits(ordered[:2], (1, 2, 3)) == (False, False)
    sparse = [Reading(at(-600), 0.0), Reading(at(-300), 1.0), Reading(at(0), 1.25)]
    assert _fits(sparse, (1,)) == (False, False)  # 3 > 2.34
    assert _fits(sparse, (3,)) == (True, True)  # 3 <= 6.02
    assert _fits(sparse, (3,), T0 - timedelta(seconds=10)) is None  # session began at -10 s
    measured = [Reading(at(-60), 1.0, current_a=9.0), Reading(at(0), 1.1, current_a=16.0),
                Reading(at(-30), 1.05, current_a=9.4)]  # median 9.4 A <= 9.5 A
    assert _fits(sorted(measured, key=lambda r: r.at), (1, 2, 3)) == (True, True)


def test_a_reading_stamped_at_the_restore_instant_is_not_a_capped_one():
    """Restored at 400 s: an instant's reading at 400 s comes from after the restore; a kWh average
    that ends at 400 s covers only capped time and counts."""
    restored = at(400)
    assert verdict([Reading(restored, 10, current_a=16.0)], restored_at=restored).delivery == "no_data"
    assert verdict([Reading(at(300), 10, current_a=8.0), Reading(restored, 10.1, current_a=16.0),
                    Reading(restored, 10.1, current_a=16.0)], restored_at=restored).delivery == "responded"
    assert verdict([Reading(CAP_END, 10, current_a=16.0)]).delivery == "no_data"  # at the cap's end
    # 0.276 kWh from 180 s to 360 s + 0.092 kWh to 400 s: 5.52 kW on three phases, at the cap.
    spans = [Reading(at(180), 10.0), Reading(at(360), 10.276), Reading(restored, 10.3373)]
    assert verdict(spans, phases=3, restored_at=restored).delivery == "responded"
    assert verdict(spans[1:], phases=3, restored_at=restored).delivery == "responded"  # the span ending at 400 s


def test_a_cap_on_a_draw_already_at_its_level_proves_nothing():
    """Planned at 9 A (within 8 + 1.5 A): it reads "at the cap" whether it obeyed or not: no data."""
    ignoring = [Reading(at(200), 10, current_a=9.0), Reading(at(300), 10.1, current_a=9.0)]
    assert judge(ignoring, cap_start=T0, cap_end=CAP_END, session_start=T0, phases=3, rule=RULE,
                 before_a=9.0) == delivery.Verdict("no_data", "")
    assert judge(ignoring, cap_start=T0, cap_end=CAP_END, session_start=T0, phases=3, rule=RULE,
                 restored_at=CAP_END, before_a=9.0) == delivery.Verdict("no_data", "no_data")
    assert judge(ignoring, cap_start=T0, cap_end=CAP_END, session_start=T0, phases=3, rule=RULE,
                 before_a=16.0).delivery == "responded"  # from 16 A to 9 A: it did fall to the level


def test_an_average_that_starts_before_the_cap_is_not_judged():
    # The pair spans the cap start + grace (t=60 s is inside the grace): no qualifying reading.
    assert verdict([Reading(at(60), 10.0), Reading(at(300), 10.9)]).delivery == "no_data"


def test_a_session_is_judged_from_its_own_start():
    """Started after the signal: its early full-power readings (before its start + grace) do not count."""
    start = at(400)
    readings = [Reading(at(450), 0.1, current_a=16.0), Reading(at(560), 0.2, current_a=8.0),
                Reading(at(600), 0.3, current_a=8.0)]
    assert verdict(readings, session_start=start).delivery == "responded"


def test_no_states_after_the_cap_is_no_data():
    assert verdict([]).delivery == "no_data"
    assert verdict([Reading(at(30), 10, current_a=16)]).delivery == "no_data"  # within the grace
    assert verdict([Reading(at(700), 10, current_a=16)]).delivery == "no_data"  # after the cap's end


def test_after_the_restore_resumed_or_a_driver_at_risk():
    restored = CAP_END
    during = [Reading(at(200), 10, current_a=8.0)]
    back = [Reading(restored + timedelta(seconds=180), 11, current_a=16.0)]
    stuck = [Reading(restored + timedelta(seconds=180), 11, current_a=8.0)]
    assert verdict(during + back, restored_at=restored) == delivery.Verdict("responded", "resumed")
    assert verdict(during + stuck, restored_at=restored) == delivery.Verdict("responded", "not_resumed")
    assert verdict(during, restored_at=restored) == delivery.Verdict("responded", "no_data")
    assert verdict(during).resumption == ""  # not restored yet: not judged


def test_a_dataframe_of_states_gets_the_same_verdict():
    readings = [Reading(at(180), 10.0), Reading(at(360), 10.276), Reading(at(420), 10.3, current_a=7.9)]
    frame = pd.DataFrame({"timestamp": [r.at for r in readings], "kwh": [r.kwh for r in readings],
                          "current_a": [r.current_a for r in readings], "power_kw": [None] * 3})
    kwargs = {"cap_start": T0, "cap_end": CAP_END, "session_start": T0, "phases": 3, "rule": RULE}
    assert judge_frame(frame, **kwargs) == judge(readings, **kwargs)


def test_flag_n_of_last_m():
    assert delivery.flag([False, False, True], 2, 3)
    assert not delivery.flag([False, True, True], 2, 3)
    assert not delivery.flag([False, False, True, True, True], 2, 3)  # the old failures left the window
    assert not delivery.flag([], 2, 3)


# --- properties -------------------------------------------------------------------------------------

offsets = st.floats(min_value=0, max_value=2000, allow_nan=False)
currents = st.floats(min_value=0, max_value=32, allow_nan=False)
readings_st = st.lists(st.tuples(offsets, currents), max_size=12)


def _readings(pairs) -> list[Reading]:
    return [Reading(at(s), i * 0.01, current_a=a) for i, (s, a) in enumerate(sorted(pairs))]


@settings(max_examples=200, deadline=None)
@given(readings_st, st.randoms())
def test_the_verdict_does_not_depend_on_the_order_of_the_states(pairs, rnd):
    readings = _readings(pairs)
    shuffled = readings[:]
    rnd.shuffle(shuffled)
    assert verdict(readings, restored_at=CAP_END) == verdict(shuffled, restored_at=CAP_END)


@settings(max_examples=200, deadline=None)
@given(readings_st, st.lists(st.tuples(st.floats(min_value=-3600, max_value=119, allow_nan=False), currents),
                             max_size=6))
def test_states_before_the_cap_only_ever_take_a_verdict_back_to_no_data(pairs, before):
    """The draw before the cap can make a verdict undecidable, never turn one into the other."""
    readings = [r for r in _readings(pairs) if r.at >= T0 + RULE.grace]
    early = [Reading(at(s), 0.0, current_a=a) for s, a in before]
    assert verdict(readings + early).delivery in {verdict(readings).delivery, "no_data"}


@settings(max_examples=200, deadline=None)
@given(readings_st, st.lists(st.tuples(st.floats(min_value=-3600, max_value=119, allow_nan=False),
                                       st.floats(min_value=9.51, max_value=32, allow_nan=False)), max_size=6))
def test_states_before_the_cap_above_it_never_change_the_verdict(pairs, before):
    readings = [r for r in _readings(pairs) if r.at >= T0 + RULE.grace]
    early = [Reading(at(s), 0.0, current_a=a) for s, a in before]
    assert verdict(readings).delivery == verdict(readings + early).delivery


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(min_value=120, max_value=659.99, allow_nan=False),
                          st.floats(min_value=0, max_value=9.5, allow_nan=False)), min_size=1, max_size=10))
def test_every_reading_at_the_cap_is_responded(pairs):
    assert verdict(_readings(pairs)).delivery == "responded"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(min_value=120, max_value=659.99, allow_nan=False),
                          st.floats(min_value=9.51, max_value=63, allow_nan=False)), min_size=1, max_size=10))
def test_every_reading_above_the_cap_is_not_responded(pairs):
    assert verdict(_readings(pairs)).delivery == "not_responded"


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=0.5, max_value=22, allow_nan=False), st.sampled_from([1, 2, 3]))
def test_a_constant_power_from_kwh_is_judged_against_the_cap_on_its_phases(power_kw, phases):
    """Energy-conserving: states every 60 s with kWh rising at `power_kw` give that average."""
    readings = [Reading(at(120 + 60 * i), power_kw * i / 60) for i in range(8)]
    threshold = 8.0 * 230 * phases / 1000 + 0.5
    expected = "responded" if power_kw <= threshold - 1e-9 else "not_responded"
    if abs(power_kw - threshold) > 1e-6:
        assert verdict(readings, phases=phases).delivery == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.booleans(), max_size=12), st.integers(1, 5), st.integers(1, 6))
def test_flagging_counts_only_the_last_m(recent, n, m):
    assert delivery.flag(recent, n, m) == (sum(1 for ok in recent[-m:] if not ok) >= n)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0.1, max_value=30, allow_nan=False),
       st.sets(st.sampled_from([1, 2, 3]), min_size=1).map(sorted))
def test_an_uncertain_phase_count_gives_a_verdict_some_plausible_count_gives(power_kw, plausible):
    """Weighing the counts never invents a verdict: it is the verdict of one of them (or no data),
    and when every plausible count agrees, it is theirs."""
    readings = [Reading(at(120 + 60 * i), power_kw * i / 60) for i in range(6)]
    uncertain = verdict(readings, phases=tuple(plausible)).delivery
    firm = {verdict(readings, phases=k).delivery for k in plausible}
    if uncertain != "no_data":
        assert uncertain in firm
    if len(firm) == 1:
        assert uncertain == firm.pop()


def test_a_responded_cap_measures_its_shed_from_the_draws_before_and_under_it():
    """kWh every 60 s: 11 kW up to the cap (three phases near 16 A), then 5.52 kW (8 A on three
    phases). Before: (kWh at 0 s - kWh at -120 s) / 2 min = 11 kW. Under the cap, from the grace
    (120 s) on: 5.52 kW. Shed: 11 - 5.52 = 5.48 kW. Currents alone measure no shed (None)."""
    kwh, states = 0.0, []
    for t in range(-300, 301, 60):
        states.append(Reading(at(t), kwh))
        kwh += (11.0 if t < 0 else 5.52) / 60
    v = verdict(states, phases=(1, 2, 3))
    assert v.delivery == "responded" and abs(v.shed_kw - 5.48) < 1e-9
    currents = [Reading(at(-60), 0, current_a=16.0), Reading(at(180), 1, current_a=8.0)]
    assert verdict(currents).delivery == "responded" and verdict(currents).shed_kw is None
    ignored = verdict([Reading(at(t), 11.0 * (t + 300) / 3600) for t in range(-300, 301, 60)], phases=3)
    assert ignored.delivery == "not_responded" and ignored.shed_kw is None
