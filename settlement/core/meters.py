"""Meter reconciliation: 15-minute smart-meter energy per station vs the reconstructed energy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from settlement.core.reconstruction import Reconstruction


@dataclass(frozen=True)
class MeterReport:
    intervals: pd.DataFrame  # station_id, interval_start, meter_kwh, reconstructed_kwh, corrected_kwh
    error_before: float  # (sum reconstructed - sum meter) / sum meter
    error_after: float  # same after adding the idle consumption
    abs_error_before: float  # sum |reconstructed - meter| / sum meter
    abs_error_after: float


def reconcile_meters(rec: Reconstruction, meters: pd.DataFrame, station_of_session: np.ndarray | None = None,
                     idle_w: float = 4.5, interval_s: float = 900.0) -> MeterReport:
    """Compare each meter interval with the energy the station's sessions delivered in it.

    The meter also sees the station's idle consumption (electronics, ~4-5 W), which no session
    reports; the corrected figure adds `idle_w` for the whole interval.
    """
    stations = rec.evse_uids if station_of_session is None else station_of_session
    sessions = pd.DataFrame({"code": np.arange(len(stations)), "station_id": stations,
                             "first_s": rec.first_s, "last_s": rec.last_s})
    m = meters.reset_index(drop=True).assign(row=lambda d: np.arange(len(d)))
    m["a_s"] = rec.seconds(m["interval_start"]) if len(m) else []
    m["b_s"] = m["a_s"] + interval_s
    pairs = m.merge(sessions, on="station_id")
    pairs = pairs[(pairs["first_s"] < pairs["b_s"]) & (pairs["last_s"] > pairs["a_s"])]
    codes = pairs["code"].to_numpy()
    energy = (rec.session_energy_at(codes, pairs["b_s"].to_numpy())
              - rec.session_energy_at(codes, pairs["a_s"].to_numpy()))
    per_row = np.bincount(pairs["row"].to_numpy(), weights=energy, minlength=len(m))
    idle_kwh = idle_w / 1000.0 * interval_s / 3600.0
    out = pd.DataFrame({"station_id": m["station_id"], "interval_start": m["interval_start"],
                        "meter_kwh": m["energy_kwh"], "reconstructed_kwh": per_row,
                        "corrected_kwh": per_row + idle_kwh})
    total = out["meter_kwh"].sum()

    def rel(x: pd.Series) -> float:
        return float(x.sum() / total) if total else float("nan")

    return MeterReport(
        out, rel(out["reconstructed_kwh"] - out["meter_kwh"]), rel(out["corrected_kwh"] - out["meter_kwh"]),
        rel((out["reconstructed_kwh"] - out["meter_kwh"]).abs()), rel((out["corrected_kwh"] - out["meter_kwh"]).abs()),
    )
