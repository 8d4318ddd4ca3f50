"""Why the flexibility app refuses a request: stable codes for programs (the BRP's client, admin
forms, tests); the message beside each refusal says it in words (`smatch/errors.py`)."""

from __future__ import annotations

from enum import StrEnum


class FlexibilityErrorCode(StrEnum):
    # A BRP's signal that cannot be taken (HTTP 400)
    DIRECTION_NOT_ACTIONABLE = "direction_not_actionable"  # only reduce_consumption is
    END_TIME_OUT_OF_RANGE = "end_time_out_of_range"  # past, or more than 15 minutes away
    ISP_START_NOT_A_BOUNDARY = "isp_start_not_a_boundary"  # not HH:00, :15, :30 or :45 UTC
    TARGET_NOT_POSITIVE = "target_not_positive"  # target_kw is not a positive number
    TARGET_ABOVE_FLEET_MAX = "target_above_fleet_max"  # more than the whole fleet could ever shed
    # A request that clashes with a signal's state (HTTP 409)
    EXTERNAL_ID_REUSED = "external_id_reused"  # the BRP's id was used for a different signal
    SIGNAL_ALREADY_DECIDED = "signal_already_decided"  # relay or veto of a signal no longer received
    SIGNAL_EXPIRED = "signal_expired"  # its end passed before the relay
    NOTHING_TO_END = "nothing_to_end"  # cancel or stop of a signal that is not waiting or running
    # An operator's decision that lacks something (HTTP 400)
    VETO_NEEDS_REASON = "veto_needs_reason"
    # A BRP account that breaks a rule
    POLICY_INVALID = "policy_invalid"  # not manual, auto or auto-after=SECONDS
    AUTO_AFTER_NEEDS_SECONDS = "auto_after_needs_seconds"
    BRP_NAME_TAKEN = "brp_name_taken"
    # A flexibility forecast window that cannot be read (HTTP 400)
    WINDOW_UNREADABLE = "window_unreadable"  # no time zone, or not a datetime
    WINDOW_NOT_ON_ISP = "window_not_on_isp_boundary"
    WINDOW_BACKWARDS = "window_backwards"  # to is not after from
    WINDOW_TOO_LONG = "window_too_long"  # more than 7 days
