"""ISP arithmetic and valuation at the imbalance price."""

from __future__ import annotations

import math

import pandas as pd

ISP = pd.Timedelta(minutes=15)


def isp_pieces(t_signal: pd.Timestamp, t_clear: pd.Timestamp) -> list[tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]]:
    """(isp_start, piece_start, piece_end) for every ISP (HH:00/15/30/45 UTC) the window overlaps."""
    pieces = []
    isp = t_signal.floor(ISP)
    while isp < t_clear:
        pieces.append((isp, max(isp, t_signal), min(isp + ISP, t_clear)))
        isp += ISP
    return pieces


def value_eur(shed_kwh: float, price_eur_per_mwh: float | None) -> float:
    """Shed energy in MWh times the price; negative prices count as such, a missing price gives NaN."""
    if price_eur_per_mwh is None or (isinstance(price_eur_per_mwh, float) and math.isnan(price_eur_per_mwh)):
        return float("nan")
    return shed_kwh / 1000.0 * float(price_eur_per_mwh)


def price_for(prices: pd.Series | None, isp_start: pd.Timestamp) -> float:
    if prices is None or isp_start not in prices.index:
        return float("nan")
    return float(prices.loc[isp_start])
