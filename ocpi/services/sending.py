"""The one OCPI sending service: profile call rows, the fan-out per party, the recorded outcomes.

The dispatcher hands over what to send (`ProfileTarget`, plain values) and gets back, per target,
the outcome with its disposition (`accepted` / `refused` / `retry`, see `CallOutcome.disposition`);
what to do with it (retry when, give up when) is the dispatcher's business. Calls are grouped per
party so each party's keep-alive connections carry its own share; the dispatcher queues one task
per party, so a slow party only delays itself.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from smatch import clock
from smatch.db import update_from_values

from ..client import POLICY_PREFIX as _NOT_REGISTERED
from ..client import CallOutcome, OutboundCall, build_set_charging_profile, client_for
from ..models import ChargingProfileCall, OcpiParty

_OUTCOME_FIELDS = ["sent_at", "answered_at", "http_status", "response_result", "response_timeout_s", "error"]


@dataclass(frozen=True)
class ProfileTarget:
    """One session to call: what a SET / CLEAR needs, read by the caller as plain values."""

    purpose_id: int  # the caller's own id (a flexibility Curtailment), kept on the call row
    session_pk: int
    session_id: str  # the CPO's Session.id, as the CPO spells it
    party_pk: int
    country_code: str  # the session's owner: the OCPI-to-* routing headers
    ocpi_party_id: str
    ends_at: datetime
    limit_a: float = 0.0


@dataclass(frozen=True)
class Sent:
    """What came of one target: its call row and the outcome (with `disposition`)."""

    purpose_id: int
    call_id: uuid.UUID
    outcome: CallOutcome

    @property
    def disposition(self) -> str:
        return self.outcome.disposition


def send_profiles(targets: Sequence[ProfileTarget], kind: str, now: datetime | None = None) -> list[Sent]:
    """Record one call per target, make them (concurrently per party), record the answers.

    SET caps every phase at the target's `limit_a` from now until `ends_at` (the profile's own
    duration ends it even if our DELETE is lost); CLEAR deletes the profile. Results in the order
    of `targets`. Never raises for what a party answers: that is in each outcome.
    """
    now = now or clock.now()
    rows = [ChargingProfileCall(id=uuid.uuid4(), session_id=t.session_pk, kind=kind, purpose_id=t.purpose_id,
                                created_at=now) for t in targets]
    ChargingProfileCall.objects.bulk_create(rows, batch_size=2000)
    by_party: dict[int, list[int]] = defaultdict(list)
    for index, target in enumerate(targets):
        by_party[target.party_pk].append(index)
    parties = OcpiParty.objects.in_bulk(list(by_party))
    outcomes: list[CallOutcome | None] = [None] * len(targets)
    for party_pk, indexes in by_party.items():
        party = parties.get(party_pk)
        if party is None or party.status != OcpiParty.Status.REGISTERED:
            # Revoked (it DELETEd our credentials, or an operator did): no call goes to it any more.
            for i in indexes:
                outcomes[i] = CallOutcome(rows[i].id, None, None, "ERROR", None,
                                          f"{_NOT_REGISTERED}party is not registered", now, now)
            continue
        calls = [_outbound(targets[i], rows[i].id, kind, now) for i in indexes]
        answers = client_for(party).fan_out(calls, max_workers=settings.DISPATCH_THREADS)
        for i, answer in zip(indexes, answers, strict=True):
            outcomes[i] = answer
    record_outcomes([o for o in outcomes if o is not None])
    return [Sent(t.purpose_id, row.id, o) for t, row, o in zip(targets, rows, outcomes, strict=True)]  # type: ignore[arg-type]


def _outbound(target: ProfileTarget, call_id: uuid.UUID, kind: str, now: datetime) -> OutboundCall:
    body = None
    if kind == ChargingProfileCall.Kind.SET:
        duration_s = max(1, int((target.ends_at - now).total_seconds()))
        body = build_set_charging_profile(call_id, target.limit_a, now, duration_s)
    return OutboundCall(call_id=call_id, kind=kind, session_id=target.session_id, set_charging_profile=body,
                        to_country_code=target.country_code, to_party_id=target.ocpi_party_id)


def record_outcomes(outcomes: Sequence[CallOutcome]) -> int:
    """Write synchronous outcomes onto their call rows in one join per 2,000 (not one query per row).

    Unknown call ids are ignored. Returns the number of rows updated.
    """
    rows = [
        {"pk": o.call_id, "sent_at": o.sent_at, "answered_at": o.answered_at, "http_status": o.http_status,
         "response_result": o.result, "response_timeout_s": o.timeout_s, "error": o.error[:2000]}
        for o in outcomes
    ]
    return update_from_values(ChargingProfileCall, rows, _OUTCOME_FIELDS, increment=["attempts"])
