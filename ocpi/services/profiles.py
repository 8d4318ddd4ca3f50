"""Async results and pushed profiles of our chargingprofiles calls (the sending is in `sending`)."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field

from django.db import OperationalError, connection, transaction

from smatch import clock
from smatch.db import update_from_values

from ..errors import OcpiError, UnknownObject
from ..models import ActiveProfileUpdate, ChargingProfileCall, OcpiParty, Session
from ..schemas import validate_active_profile, validate_profile_result
from ..signals import ProfileResult, profile_results_received

# The outcome of a result that came too late to matter (a listener of `profile_results_received` names it).
STALE = "stale"


class StaleResult(OcpiError):
    """A result for a profile we already cleared: nothing changes (a clear status, not an error page)."""

    status_code = 2000
    http_status = 200


def record_profile_result(party: OcpiParty, call_id: uuid.UUID, payload: object) -> None:
    """An async ChargingProfileResult / ClearProfileResult / ActiveChargingProfileResult for our call.

    Idempotent: a repeat of the same result changes nothing; a different later one replaces it.
    Listeners (the dispatcher) move their cap on; a result for a cap already restored changes
    nothing and is answered with StaleResult. A call of another party is unknown (404).
    Returns once the result is committed (it is written with the results that arrived meanwhile).
    """
    parsed = validate_profile_result(payload)
    item = _Pending(party.pk, call_id, parsed["result"], payload)
    _batches.submit(item)
    if item.error is not None:
        raise item.error
    if item.outcome == _UNKNOWN:
        raise UnknownObject(f"no chargingprofiles call {call_id} of yours")
    if item.outcome == STALE:
        raise StaleResult("the profile of this call was already cleared: result ignored")


_RECORDED, _REPEAT, _UNKNOWN = "recorded", "repeat", "unknown"


@dataclass
class _Pending:
    party_pk: int
    call_id: uuid.UUID
    result: str
    payload: object
    done: threading.Event = field(default_factory=threading.Event)
    outcome: str = ""
    error: BaseException | None = None


class _GroupCommit:
    """Results arriving together are written together: one transaction, a few statements per batch.

    A result burst (16,000 results within seconds) costs a transaction and three statements per
    result one by one; here the request threads of a process queue their result and one of them,
    the writer of the moment, writes everything queued in one transaction while the others wait for
    it. Every request is answered only after its result is committed: batching never answers a
    result it might still lose. Without concurrency a batch is one result (no added wait).
    """

    def __init__(self) -> None:
        self._queue_lock, self._writer_lock = threading.Lock(), threading.Lock()
        self._queue: list[_Pending] = []

    def submit(self, item: _Pending) -> None:
        with self._queue_lock:
            self._queue.append(item)
        while not item.done.is_set():
            with self._writer_lock:  # a batch taken earlier is done when this lock is free again
                if item.done.is_set():
                    return
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                _write_batch(batch)


_batches = _GroupCommit()


def _write_batch(batch: list[_Pending]) -> None:
    try:
        for attempt in range(3):  # a deadlock with a concurrent bulk update rolled everything back: redo
            try:
                with transaction.atomic():
                    _apply_results(batch)
                break
            except OperationalError as exc:
                if attempt == 2 or "deadlock" not in str(exc):
                    raise
    except Exception as exc:  # the batch's requests get the error (500): none of them was answered 2xx
        for item in batch:
            item.error = exc
    finally:
        for item in batch:
            item.done.set()


def _apply_results(batch: list[_Pending]) -> None:
    """Read the batch's calls (one SELECT), tell the listeners, write the results (one UPDATE)."""
    q = connection.ops.quote_name
    calls, sessions = q(ChargingProfileCall._meta.db_table), q(Session._meta.db_table)
    id_field = ChargingProfileCall._meta.pk
    ids = list({item.call_id: None for item in batch})
    sql = (f"SELECT c.{q('id')}, c.{q('kind')}, c.{q('purpose_id')}, c.{q('result')}, s.{q('party_id')} "
           f"FROM {calls} c JOIN {sessions} s ON s.{q('id')} = c.{q('session_id')} "
           f"WHERE c.{q('id')} IN ({', '.join(['%s'] * len(ids))})")
    with connection.cursor() as cursor:
        cursor.execute(sql, [id_field.get_db_prep_value(i, connection) for i in ids])
        rows = cursor.fetchall()
    known = {id_field.to_python(r[0]): [r[1], r[2], r[3], r[4]] for r in rows}
    changed: dict[uuid.UUID, _Pending] = {}
    for item in batch:  # in arrival order: a later different result replaces an earlier one
        row = known.get(item.call_id)
        if row is None or row[3] != item.party_pk:
            item.outcome = _UNKNOWN
        elif row[2] == item.result:
            item.outcome = _REPEAT
        else:
            row[2] = item.result
            item.outcome = _RECORDED
            changed[item.call_id] = item
    if not changed:
        return
    results = [ProfileResult(i, known[i][0], known[i][1], item.result) for i, item in changed.items()]
    stale: set[uuid.UUID] = set()
    for _, verdict in profile_results_received.send(sender=ChargingProfileCall, results=results):
        stale |= set(verdict or ())
    for item in batch:
        if item.call_id in stale and item.outcome == _RECORDED:
            item.outcome = STALE
    now = clock.now()
    update_from_values(ChargingProfileCall, [
        {"pk": i, "result": item.result, "result_at": now, "result_payload": item.payload}
        for i, item in changed.items() if i not in stale
    ], ["result", "result_at", "result_payload"])


def record_active_profile(party: OcpiParty, session_id: str, payload: object) -> None:
    """An ActiveChargingProfile the CPO pushed for one of its sessions: kept as an audit record."""
    parsed = validate_active_profile(payload)
    session = Session.objects.filter(party=party, session_id__iexact=session_id).only("id").first()
    if session is None:
        raise UnknownObject(f"session {session_id} is unknown")
    ActiveProfileUpdate.objects.create(session=session, start_date_time=parsed["start_date_time"],
                                       charging_profile=parsed["charging_profile"])
