"""Non-responders by the dispatcher's rule (flexibility.delivery.judge), on a case with hand-made truth.

Signal 23:04, clear 23:15, grace 120 s: a cap is judged on its session's states from
max(signal, session start) + 120 s to the clear. The truth of every session is written beside it.
"""

from __future__ import annotations

import pandas as pd
import pytest

from settlement.core import settle_frames
from tests.settlement.helpers import at, frame, sampled_session, state_rows

SIGNAL, CLEAR = at("23:04:00"), at("23:15:00")


def obeys(t: pd.Timestamp) -> float:
    return 8.0 if SIGNAL + pd.Timedelta(seconds=30) <= t < CLEAR else 16.0


def full(_t: pd.Timestamp) -> float:
    return 16.0


def late_obeys(t: pd.Timestamp) -> float:
    # Plugged in at 23:06 (after the signal), capped by the sweep 90 s later.
    return 8.0 if at("23:07:30") <= t < CLEAR else 16.0


def tapering(t: pd.Timestamp) -> float:
    return 4.06 * (1 - 0.01 * (t - SIGNAL).total_seconds() / 60)


def activations() -> pd.DataFrame:
    return pd.DataFrame({"activation_id": ["a1"], "t_signal": [SIGNAL], "t_clear": [CLEAR]})


def kwh_only(rows: list[dict]) -> list[dict]:
    return [{**row, "current_l1_a": None, "current_l2_a": None, "current_l3_a": None} for row in rows]


@pytest.fixture(scope="module")
def fleet() -> pd.DataFrame:
    rows = sampled_session("s-obeys", "OBEYS", at("22:30:00"), at("23:50:00"), obeys)  # truth: responded
    rows += sampled_session("s-ignores", "IGNORES", at("22:31:00"), at("23:50:00"), full)  # truth: did not
    # Began after the signal, never capped (the dispatcher's door knows; the file door cannot cap it):
    # truth: not a non-responder. The old rule (first state after signal + 120 s above 8.5 A) listed both.
    rows += sampled_session("s-late", "LATE", at("23:06:00"), at("23:50:00"), full, period_s=60)
    rows += sampled_session("s-late-obeys", "LATE-OBEYS", at("23:06:00"), at("23:50:00"), late_obeys, period_s=60)
    # No currents at all (kWh only), drawing 11.04 kW throughout: the kWh average says it ignored the cap
    # whatever its phase count (above 8 A + 1.5 A on one, two or three phases). Truth: did not respond.
    rows += kwh_only(sampled_session("s-kwh", "KWH-ONLY", at("22:32:00"), at("23:50:00"), full))
    # kWh only, a three-phase EV finishing its charge: 4.06 A at the signal (2.8 kW: the cap at 8 A does
    # not bind; as much as 12.2 A on one phase ignoring it), falling 1 % of that a minute (4.67 A at
    # 22:49, 3.61 A at the clear). The draw before the cap is one the cap allows on two or three phases,
    # it did not fall to the cap, and it fell like a finishing EV's, not flat: undecidable, not listed.
    rows += kwh_only(sampled_session("s-taper", "TAPER", at("22:33:00"), at("23:50:00"), tapering))
    return frame(rows)


def test_file_door_lists_only_the_capped_sessions_that_ignored_the_cap(fleet):
    result = settle_frames(fleet, activations())
    listed = result.non_responders.set_index("evse_uid")
    assert sorted(listed.index) == ["IGNORES", "KWH-ONLY"]
    assert listed.loc["IGNORES", "max_current_a"] == 16.0
    assert pd.isna(listed.loc["KWH-ONLY", "max_current_a"])  # judged by energy, no current measured
    # Judged from the signal + grace (both began before it); the first state after that above the cap:
    # IGNORES states every 5 min from 22:31 -> 23:06.
    assert listed.loc["IGNORES", "judged_from"] == at("23:06:00")
    assert listed.loc["IGNORES", "state_at"] == at("23:06:00")
    assert set(listed["activation_id"]) == {"a1"}


def test_database_door_judges_a_late_session_from_its_own_start(fleet):
    # The caps the dispatcher sent: the late sessions were capped on arrival (23:06:00); one refused cap.
    caps = pd.DataFrame({
        "activation_id": ["a1"] * 4,
        "session_id": ["s-obeys", "s-ignores", "s-late-obeys", "s-late"],
        "start": [SIGNAL, SIGNAL, at("23:06:00"), at("23:06:00")],
        "end": [CLEAR] * 4,
        "before_a": [16.0, 16.0, None, None],
        "asked": [True, True, True, False],  # the CSMS refused s-late's cap: nothing to judge
    })
    result = settle_frames(fleet, activations(), curtailments=caps)
    listed = result.non_responders.set_index("evse_uid")
    # s-late-obeys drew 16 A for 90 s after its start (its first states after the *signal* + 120 s), then 8 A:
    # judged from 23:06 + 120 s = 23:08, it responded. s-kwh had no cap in this door.
    assert list(listed.index) == ["IGNORES"]


def test_a_session_already_at_the_cap_level_when_planned_proves_nothing(fleet):
    caps = pd.DataFrame({"activation_id": ["a1"], "session_id": ["s-ignores"], "start": [SIGNAL], "end": [CLEAR],
                         "before_a": [9.0]})
    result = settle_frames(fleet, activations(), curtailments=caps)
    assert result.non_responders.empty


def test_no_states_in_the_judged_window_is_no_verdict():
    # One state before the signal and one after the clear: nothing in [23:06, 23:15] to judge.
    rows = state_rows("s-gap", "GAP", [at("23:00:00"), at("23:20:00")], [0.0, 3.68], [16.0, 16.0])
    result = settle_frames(frame(rows), activations())
    assert result.non_responders.empty


def test_a_flat_draw_proved_at_one_cap_decides_the_sessions_later_cap_too():
    """The dispatcher's carry, in settlement: kWh only, 3.09 kW (13.43 A on one phase) flat until 23:25,
    then falling 0.6 % of it a minute (an EV nearing full), its EVSE ignoring both caps (23:04-23:15,
    23:34-23:45). The first cap is judged on the flat draw (4.48 A on three phases would be an EV
    finishing, whose draw falls): listed. Over the second cap's evidence (from 23:19) the draw fell
    12 %, not flat: a twin session capped only then is not listed, but the proved one is, again."""
    def one_phase(t: pd.Timestamp) -> float:
        return 13.43 * (1 - 0.006 * max(0.0, (t - at("23:25:00")).total_seconds() / 60))

    rows = kwh_only(sampled_session("s-proved", "PROVED", at("22:30:00"), at("23:55:00"), one_phase, phases=1,
                                    period_s=60))
    rows += kwh_only(sampled_session("s-twin", "TWIN", at("22:30:00"), at("23:55:00"), one_phase, phases=1,
                                     period_s=60))
    second = (at("23:34:00"), at("23:45:00"))
    acts = pd.DataFrame({"activation_id": ["a1", "a2"], "t_signal": [SIGNAL, second[0]],
                         "t_clear": [CLEAR, second[1]]})
    caps = pd.DataFrame({"activation_id": ["a2", "a1", "a2"], "session_id": ["s-twin", "s-proved", "s-proved"],
                         "start": [second[0], SIGNAL, second[0]], "end": [second[1], CLEAR, second[1]],
                         "before_a": [None] * 3})
    listed = settle_frames(frame(rows), acts, curtailments=caps).non_responders
    assert sorted(zip(listed["activation_id"], listed["evse_uid"], strict=True)) == [("a1", "PROVED"),
                                                                                      ("a2", "PROVED")]
