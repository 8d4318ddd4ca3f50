"""The database door: SessionState / Activation / Curtailment rows into the core's frames (read only)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pandas as pd
from django.db import connection
from django.db.models import F

from flexibility.models import Activation, Curtailment
from flexibility.responsiveness import JUDGED_STATES
from ocpi.models import SessionState
from settlement.core.frames import STATE_COLUMNS
from settlement.models import ImbalancePrice


def activations_frame(period_from: datetime, period_to: datetime) -> pd.DataFrame:
    """Activations relayed in [from, to): t_signal = relayed_at, t_clear = the planned end, or the
    restore time when the operator stopped it early. Extra columns: brp_id."""
    rows = Activation.objects.filter(relayed_at__gte=period_from, relayed_at__lt=period_to).values_list(
        "pk", "relayed_at", "ends_at", "restored_at", "stopped_early", "signal__brp_id")
    data = [{"activation_id": str(pk), "t_signal": relayed,
             "t_clear": restored if early and restored and restored < ends else ends, "brp_id": brp}
            for pk, relayed, ends, restored, early, brp in rows.order_by("relayed_at")]
    frame = pd.DataFrame(data, columns=["activation_id", "t_signal", "t_clear", "brp_id"])
    for col in ("t_signal", "t_clear"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def states_frame(start: datetime, end: datetime, chunk_size: int = 20_000) -> pd.DataFrame:
    """Session states in [start, end], one row per state, the contract-(4) columns."""
    rows = (SessionState.objects.filter(timestamp__gte=start, timestamp__lte=end)
            .annotate(evse_uid=F("session__evse_uid"))
            .values_list("session_id", "evse_uid", "timestamp", "kwh", "current_l1_a", "current_l2_a",
                         "current_l3_a")
            .order_by())
    if connection.vendor == "postgresql":
        frame = _copy_frame(rows)
    else:
        frame = pd.DataFrame(list(rows.iterator(chunk_size=chunk_size)), columns=STATE_COLUMNS)
    frame["session_id"] = frame["session_id"].astype(str)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    for col in STATE_COLUMNS[3:]:
        frame[col] = pd.to_numeric(frame[col]).astype(float)
    return frame


def _copy_frame(rows) -> pd.DataFrame:
    """The query's rows through PostgreSQL COPY ... TO STDOUT as CSV: ~10x faster than ORM tuples for 10^6 rows
    (no per-row Python objects, no datetime conversion per value)."""
    sql, params = rows.query.sql_with_params()
    buf = io.StringIO()
    with connection.cursor() as cur:
        query = cur.mogrify(sql, params)
        cur.copy_expert(f"COPY ({query.decode() if isinstance(query, bytes) else query}) TO STDOUT WITH CSV", buf)
    buf.seek(0)
    frame = pd.read_csv(buf, names=STATE_COLUMNS, header=None, dtype={"session_id": str, "evse_uid": str},
                        keep_default_na=False, na_values={c: [""] for c in STATE_COLUMNS[3:]})
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    return frame


def curtailments_frame(activation_ids: list[str]) -> pd.DataFrame:
    """The caps of the activations: activation_id, session_id, start, end (the restore when earlier),
    before_a, and asked: whether the CSMS was asked and did not refuse (the caps the dispatcher judges)."""
    rows = Curtailment.objects.filter(activation_id__in=[int(a) for a in activation_ids]).values_list(
        "activation_id", "session_id", "starts_at", "ends_at", "restored_at", "before_a", "status", "restored_from")
    data = [(str(act), str(s), start, min(end, restored) if restored else end, before,
             (restored_from if status == Curtailment.Status.RESTORED else status) in JUDGED_STATES)
            for act, s, start, end, restored, before, status, restored_from in rows]
    frame = pd.DataFrame(data, columns=["activation_id", "session_id", "start", "end", "before_a", "asked"])
    frame["start"] = pd.to_datetime(frame["start"], utc=True)
    frame["end"] = pd.to_datetime(frame["end"], utc=True)
    frame["before_a"] = pd.to_numeric(frame["before_a"]).astype(float)
    return frame


def prices_series(start: datetime, end: datetime) -> pd.Series:
    rows = ImbalancePrice.objects.filter(isp_start__gte=start - timedelta(minutes=15), isp_start__lte=end)
    data = dict(rows.values_list("isp_start", "price_eur_per_mwh"))
    index = pd.to_datetime(list(data.keys()), utc=True) if data else pd.DatetimeIndex([], tz="UTC")
    return pd.Series(list(data.values()), index=index, dtype=float)
