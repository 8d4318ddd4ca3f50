"""Actions of the OCPI link. Views, tasks, commands and admin actions call exactly one of these."""

from .profiles import STALE, StaleResult, record_active_profile, record_profile_result
from .registration import (
    accept_credentials,
    issue_token,
    our_credentials,
    register_with,
    reissue_token,
    unregister,
    update_credentials,
    version_details,
    versions,
)
from .sending import ProfileTarget, Sent, record_outcomes, send_profiles
from .sessions import PullReport, pull_due_sessions, pull_sessions, receive_session, session_object

__all__ = [
    "STALE",
    "ProfileTarget",
    "PullReport",
    "Sent",
    "StaleResult",
    "accept_credentials",
    "issue_token",
    "our_credentials",
    "pull_due_sessions",
    "pull_sessions",
    "receive_session",
    "record_active_profile",
    "record_outcomes",
    "record_profile_result",
    "register_with",
    "reissue_token",
    "send_profiles",
    "session_object",
    "unregister",
    "update_credentials",
    "version_details",
    "versions",
]
