"""Pure parts of the console's figures: cap states in words."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flexibility.console_figures import CAP_STATE_WORDS, states_in_words

KNOWN = [str(s) for s in CAP_STATE_WORDS]


def test_states_in_words_by_hand():
    assert states_in_words({"planned": 2, "sent": 3, "pending": 4, "in_force": 5, "refused": 1}) == [
        ("being sent", 5), ("pending at the CSMS", 4), ("in force", 5), ("refused", 1), ("no result", 0),
        ("not sent", 0), ("restored", 0)]
    # A state this mapping does not know still shows, in words.
    assert states_in_words({"responded": 2})[-1] == ("responded", 2)


LATER = ["responded", "not_resumed", "accepted"]  # names another lifecycle may bring


@given(st.dictionaries(st.sampled_from([*KNOWN, *LATER]), st.integers(0, 10_000)))
def test_no_cap_is_lost_or_counted_twice(counts):
    words = states_in_words(counts)
    assert sum(n for _, n in words) == sum(counts.values())
    assert [w for w, _ in words][:7] == ["being sent", "pending at the CSMS", "in force", "refused", "no result",
                                         "not sent", "restored"]
