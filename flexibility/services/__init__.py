"""Actions of the flexibility app: every door (REST views, admin forms and actions, the console,
commands, tasks) calls one of these and holds no rule of its own.

- `brps`: BRP accounts (policy, API token);
- `signals`: a BRP's signal from intake to the operator's or the policy's decision, cancel and stop;
- `activations`: carrying a relayed signal out: plan the caps, send them, follow their results,
  restore at the end, and the sweep's questions.

The doors' actions are re-exported here (`services.relay_signal`); tasks and read views use
`services.activations` by name.
"""

from .brps import BrpRefused, check_brp, create_brp, parse_policy, rotate_brp_token, update_brp
from .signals import (
    POLICY_LABEL,
    Intake,
    SignalConflict,
    SignalRefused,
    due_policy_relays,
    end_early,
    expire_overdue_signals,
    receive_signal,
    relay_if_due,
    relay_signal,
    signal_deadline,
    veto_signal,
)

__all__ = [
    "POLICY_LABEL",
    "BrpRefused",
    "Intake",
    "SignalConflict",
    "SignalRefused",
    "check_brp",
    "create_brp",
    "due_policy_relays",
    "end_early",
    "expire_overdue_signals",
    "parse_policy",
    "receive_signal",
    "relay_if_due",
    "relay_signal",
    "rotate_brp_token",
    "signal_deadline",
    "update_brp",
    "veto_signal",
]
