"""Pure parts of the console's figures: cap states in words and the expected-shed range."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexibility import planning
from flexibility.console_figures import CAP_STATE_WORDS, shed_range_kw, states_in_words
from tests.conftest import T0

KNOWN = [str(s) for s in CAP_STATE_WORDS]


def test_states_in_words_by_hand():
    assert states_in_words({"planned": 2, "sent": 3, "accepted": 5, "refused": 1}) == [
        ("pending", 5), ("in force", 5), ("refused", 1), ("no result", 0), ("restored", 0)]
    # States of a later lifecycle still show, in words, and add up with the same word.
    assert dict(states_in_words({"no_result": 4, "failed": 1}))["no result"] == 5
    assert states_in_words({"responded": 2})[-1] == ("responded", 2)


LATER = ["no_result", "in_force", "responded", "not_resumed"]  # names another lifecycle may bring


@given(st.dictionaries(st.sampled_from([*KNOWN, *LATER]), st.integers(0, 10_000)))
def test_no_cap_is_lost_or_counted_twice(counts):
    words = states_in_words(counts)
    assert sum(n for _, n in words) == sum(counts.values())
    assert [w for w, _ in words][:5] == ["pending", "in force", "refused", "no result", "restored"]


view = st.builds(planning.SessionView, st.integers(1, 10_000), st.just("ACTIVE"),
                 st.one_of(st.none(), st.floats(0, 32)), st.one_of(st.none(), st.sampled_from([1, 2, 3])))


def test_shed_range_by_hand():
    views = [planning.SessionView(1, "ACTIVE", 16.0, 3), planning.SessionView(2, "ACTIVE", 16.0, None)]
    plan = planning.plan_caps(views, T0, T0 + timedelta(minutes=10))
    # (16-8) x 230 V: 5.52 kW on three phases, 1.84 kW for the unknown one taken as one phase, 5.52 as three.
    assert shed_range_kw(plan, views) == pytest.approx((7.36, 11.04))


@given(st.lists(view, max_size=30, unique_by=lambda v: v.session_pk))
def test_the_range_is_ordered_and_closed_when_every_phase_count_is_known(views):
    plan = planning.plan_caps(views, T0, T0 + timedelta(minutes=10))
    low, high = shed_range_kw(plan, views)
    assert 0 <= low <= high + 1e-9
    if all(v.phases is not None for v in views):
        assert high == pytest.approx(low)
