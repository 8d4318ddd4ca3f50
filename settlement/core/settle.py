"""One call from frames to results: `settle_frames(states, activations, prices, baseline=...)`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flexibility.delivery import Rule
from settlement.core.baselines import BASELINES, DEFAULT_BASELINE, Baseline
from settlement.core.counterfactual import rebound_kwh
from settlement.core.edges import EdgeWindow, detect_edges, mean_power_kw
from settlement.core.frames import clean_activations
from settlement.core.kpis import driver_impact, frames_from_states
from settlement.core.meters import MeterReport, reconcile_meters
from settlement.core.potential import erasable_by_time_of_day, non_responders
from settlement.core.quality import coverage_share, gaps_near
from settlement.core.reconstruction import Reconstruction, ReconstructionParams, reconstruct
from settlement.core.valuation import isp_pieces, price_for, value_eur

ACTIVATION_COLUMNS = ["activation_id", "t_signal", "t_clear", "p_signal_kw", "p_clear_kw", "baseline_kwh",
                      "delivered_kwh", "shed_kwh", "sessions"]
ISP_COLUMNS = ["isp_start", "activation_id", "baseline_kwh", "delivered_kwh", "shed_kwh", "price_eur_per_mwh",
               "value_eur"]
NET_COLUMNS = ["rebound_kwh", "never_delivered_kwh", "value_eur", "rebound_value_eur", "net_value_eur"]
REBOUND_COLUMNS = ["activation_id", "isp_start", "rebound_kwh", "price_eur_per_mwh", "value_eur"]
# Session-wide issues; a data gap counts only where it lies near the activation (quality.gaps_near).
QUALITY_FLAGS = ("kwh_decrease", "conflicting_duplicates", "single_state", "energy_without_current")


@dataclass(frozen=True)
class SettleParams:
    reconstruction: ReconstructionParams = field(default_factory=ReconstructionParams)
    edge_window: EdgeWindow = field(default_factory=EdgeWindow)
    bracket_s: float = 600.0  # states must bracket t_signal and t_clear within this
    min_coverage: float = 0.9  # below this share of well-bracketed sessions the activation is "thin"
    # Above this share of active sessions with data issues the activation is "thin". Not zero: with
    # thousands of sessions one flagged session always exists and barely moves the aggregate.
    max_flagged_share: float = 0.05
    delivery: Rule = field(default_factory=Rule)  # the dispatcher's rule for non-responders (flexibility.delivery)
    tod_bin_minutes: int = 15
    idle_w: float = 4.5  # meter reconciliation: idle consumption per station
    notch: bool = True  # give reconstruction the activation windows (see reconstruction: notch)
    rebound_window_s: float = 3600.0  # catch-up after the clear counted against the value (cut at the next signal)


@dataclass(eq=False)
class SettlementResult:
    activations: pd.DataFrame
    isp: pd.DataFrame
    reconstruction: Reconstruction
    baselines: dict[str, dict[str, Baseline]]  # activation_id -> baseline name -> Baseline
    non_responders: pd.DataFrame
    erasable_by_tod: pd.DataFrame
    warnings: list[str]
    rebound: pd.DataFrame = field(default_factory=pd.DataFrame)  # per activation and later ISP
    meters: MeterReport | None = None
    kpis: dict[str, float] = field(default_factory=dict)  # file door: curtailments approximated


def _baseline_names(baseline: str | Sequence[str]) -> list[str]:
    names = list(BASELINES) if baseline == "all" else [baseline] if isinstance(baseline, str) else list(baseline)
    unknown = [n for n in names if n not in BASELINES]
    if unknown or not names:
        raise ValueError(f"unknown baseline {', '.join(unknown) or '(none)'}; known: {', '.join(BASELINES)}")
    return names


def settle_frames(states: pd.DataFrame, activations: pd.DataFrame, prices: pd.Series | None = None,
                  baseline: str | Sequence[str] = DEFAULT_BASELINE, params: SettleParams | None = None,
                  progress: Callable[[int], None] | None = None,
                  meters: pd.DataFrame | None = None,
                  curtailments: pd.DataFrame | None = None) -> SettlementResult:
    """Reconstruct, find edges, compute baseline / delivered / shed per activation and per ISP, value it.

    The first baseline named is the primary one (the contract columns); the others are added as
    `<name>_...` columns. `progress(n)` is called as work advances (1 for the reconstruction, 1 per
    activation). `meters` (station_id, interval_start, energy_kwh) adds a meter reconciliation; a
    `station_id` column in `states` maps sessions to stations (default: one station per EVSE).
    `curtailments` (activation_id, session_id, start, end; optionally before_a and asked, see
    potential.non_responders) are the caps sent: they feed the driver-impact KPIs and the
    non-responders (judged by the dispatcher's rule); without them the caps are approximated from
    the states (see kpis.frames_from_states).
    """
    params = params or SettleParams()
    names = _baseline_names(baseline)
    by_signal = clean_activations(activations)
    rec = reconstruct(states, params.reconstruction, by_signal if params.notch else None)
    if progress:
        progress(1)
    settled = _settle_activations(rec, by_signal, names, prices, params, progress)
    sessions, approximated_caps = frames_from_states(rec, by_signal)
    caps = approximated_caps if curtailments is None else curtailments
    # Outputs follow the caller's order of activations (computation goes by time: the next signal
    # ends a rebound window).
    given_order = {str(a): i for i, a in enumerate(activations["activation_id"])}
    return SettlementResult(
        activations=_in_order(_ordered(pd.DataFrame(settled.rows), [*ACTIVATION_COLUMNS, "baseline", *NET_COLUMNS]),
                              given_order),
        isp=_in_order(_ordered(pd.DataFrame(settled.isp_rows), ISP_COLUMNS), given_order),
        rebound=_in_order(_ordered(pd.DataFrame(settled.rebound_rows), REBOUND_COLUMNS), given_order),
        reconstruction=rec, baselines=settled.baselines,
        non_responders=_in_order(non_responders(rec, caps, params.delivery), given_order),
        erasable_by_tod=erasable_by_time_of_day(rec, bin_minutes=params.tod_bin_minutes),
        warnings=settled.warnings,
        meters=None if meters is None else reconcile_meters(rec, meters, _stations(states, rec), params.idle_w),
        kpis=driver_impact(sessions, caps, by_signal),
    )


@dataclass
class _Settled:
    """What the activations add up to, in time order."""

    rows: list[dict] = field(default_factory=list)
    isp_rows: list[dict] = field(default_factory=list)
    rebound_rows: list[dict] = field(default_factory=list)
    baselines: dict[str, dict[str, Baseline]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _settle_activations(rec: Reconstruction, by_signal: pd.DataFrame, names: list[str], prices: pd.Series | None,
                        params: SettleParams, progress: Callable[[int], None] | None) -> _Settled:
    power_kw, theoretical_kw = rec.power_kw(), rec.theoretical_kw()
    with_issues = _sessions_with_issues(rec)
    next_signals = [*by_signal["t_signal"].iloc[1:], None]  # a rebound window ends at the next signal
    settled = _Settled()
    for act, next_signal in zip(by_signal.itertuples(index=False), next_signals, strict=True):
        edges = detect_edges(power_kw, act.t_signal, act.t_clear, params.edge_window)
        baselines = {name: BASELINES[name](power_kw, act.t_signal, act.t_clear, edges=edges, rec=rec)
                     for name in names}
        settled.baselines[act.activation_id] = baselines
        quality = _data_quality(rec, act, with_issues, baselines[names[0]], edges, params)
        isp_rows = _isp_rows(rec, act, baselines, names, prices, quality.reasons, settled.warnings)
        row = _activation_row(act, baselines, names, isp_rows, quality)
        rebound_rows = _rebound_rows(rec, act, row["shed_kwh"], prices, params.rebound_window_s, next_signal)
        row.update(_net(row, rebound_rows))
        row.update({
            "detected_drop_at": edges.drop_at, "detected_recovery_at": edges.recovery_at,
            "historical_kw": mean_power_kw(power_kw, act.t_signal, act.t_clear, rec.grid_s),
            "theoretical_min_kw": mean_power_kw(theoretical_kw, act.t_signal, act.t_clear, rec.grid_s),
            "coverage_share": quality.coverage, "flagged_sessions": int(quality.flagged.sum()),
            "data_quality": "thin" if quality.reasons else "ok", "dq_reasons": "; ".join(quality.reasons),
        })
        settled.rows.append(row)
        settled.isp_rows.extend(isp_rows)
        settled.rebound_rows.extend(rebound_rows)
        if progress:
            progress(1)
    return settled


def _sessions_with_issues(rec: Reconstruction) -> np.ndarray:
    """Per session: has a session-wide data issue (QUALITY_FLAGS)."""
    flags = rec.session_flags["flags"].to_numpy(str)
    return np.array([any(issue in text for issue in QUALITY_FLAGS) for text in flags], bool)


@dataclass(frozen=True)
class _Quality:
    active: np.ndarray  # per session: active during the activation
    coverage: float
    flagged: np.ndarray  # per session: active, with a data issue or a gap near the activation
    reasons: list[str]  # why the activation is "thin" (more are added when an ISP has no price)


def _data_quality(rec: Reconstruction, act, with_issues: np.ndarray, primary: Baseline, edges,
                  params: SettleParams) -> _Quality:
    signal_s, clear_s = rec.seconds([act.t_signal, act.t_clear])
    active = (rec.first_s < clear_s) & (rec.last_s > signal_s)
    coverage = coverage_share(rec, active, signal_s, clear_s, params.bracket_s)
    flagged = active & (with_issues | gaps_near(rec, signal_s, clear_s, params.bracket_s))
    return _Quality(active, coverage, flagged, _reasons(coverage, params, active, flagged, primary, edges))


def _activation_row(act, baselines: dict[str, Baseline], names: list[str], isp_rows: list[dict],
                    quality: _Quality) -> dict:
    delivered = float(sum(isp["delivered_kwh"] for isp in isp_rows))
    return {"activation_id": act.activation_id, "baseline": names[0], "t_signal": act.t_signal,
            "t_clear": act.t_clear, "delivered_kwh": delivered, "sessions": int(quality.active.sum()),
            **_baseline_columns(baselines, names, delivered, isp_rows)}


def _baseline_columns(found: dict[str, Baseline], names: list[str], delivered: float, values: list[dict]) -> dict:
    """P(t_signal), P(t_clear), baseline, shed and gross value per baseline (the first one unprefixed)."""
    out = {}
    for j, name in enumerate(names):
        b, prefix = found[name], ("" if j == 0 else f"{name}_")
        out[f"{prefix}p_signal_kw"], out[f"{prefix}p_clear_kw"] = b.p_signal_kw, b.p_clear_kw
        out[f"{prefix}baseline_kwh"] = b.energy_kwh()
        out[f"{prefix}shed_kwh"] = out[f"{prefix}baseline_kwh"] - delivered
        # NaN when any ISP lacks a price: a partial sum would understate the value silently.
        out[f"{prefix}value_eur"] = float(np.sum([v[f"{prefix}value_eur"] for v in values]))
    return out


def _isp_rows(rec: Reconstruction, act, found: dict[str, Baseline], names: list[str], prices: pd.Series | None,
             reasons: list[str], warnings: list[str]) -> list[dict]:
    """Baseline, delivered, shed and value of every ISP the activation overlaps."""
    pieces = isp_pieces(act.t_signal, act.t_clear)
    bounds = [pieces[0][1]] + [p[2] for p in pieces]
    codes = np.arange(len(rec.session_ids))
    energy_at = [float(rec.session_energy_at(codes, np.full(len(codes), s)).sum()) for s in rec.seconds(bounds)]
    values = []
    for j, (isp, lo, hi) in enumerate(pieces):
        price = price_for(prices, isp)
        if np.isnan(price):
            reasons.append(f"no price for ISP {isp.isoformat()}")
            warnings.append(f"activation {act.activation_id}: no imbalance price for ISP {isp.isoformat()}")
        row = {"isp_start": isp, "activation_id": act.activation_id,
               "delivered_kwh": energy_at[j + 1] - energy_at[j], "price_eur_per_mwh": price}
        for k, name in enumerate(names):
            prefix = "" if k == 0 else f"{name}_"
            row[f"{prefix}baseline_kwh"] = found[name].energy_kwh(lo, hi)
            row[f"{prefix}shed_kwh"] = row[f"{prefix}baseline_kwh"] - row["delivered_kwh"]
            row[f"{prefix}value_eur"] = value_eur(row[f"{prefix}shed_kwh"], price)
        values.append(row)
    return values


def _rebound_rows(rec: Reconstruction, act, shed_kwh: float, prices: pd.Series | None, window_s: float,
                  until: pd.Timestamp | None) -> list[dict]:
    """Catch-up per later ISP over [t_clear, t_clear + window_s), cut at the next activation's signal
    (after it the two are confounded); never more in total than the shed (none when nothing was shed)."""
    end = act.t_clear + pd.Timedelta(seconds=window_s)
    end = min(end, until) if until is not None else end
    if not end > act.t_clear or not window_s > 0:
        return []
    pieces = isp_pieces(act.t_clear, end)
    bounds = [pieces[0][1]] + [p[2] for p in pieces]
    kwh = rebound_kwh(rec, act.t_signal, act.t_clear, bounds, until=until)
    total = float(kwh.sum())
    limit = max(shed_kwh, 0.0) if np.isfinite(shed_kwh) else 0.0
    if total > limit:
        kwh = kwh * (limit / total) if total > 0 else kwh * 0.0
    rows = []
    for (isp, _lo, _hi), energy in zip(pieces, kwh, strict=True):
        price = price_for(prices, isp)
        # Nothing taken back costs nothing, priced or not; a rebound without a price leaves the value empty.
        value = 0.0 if abs(energy) < 1e-9 else value_eur(float(energy), price)
        rows.append({"activation_id": act.activation_id, "isp_start": isp, "rebound_kwh": float(energy),
                     "price_eur_per_mwh": price, "value_eur": value})
    return rows


def _net(row: dict, later: list[dict]) -> dict:
    """Shed split into taken back (rebound) and never delivered; net value = gross - rebound's value."""
    rebound = float(sum(r["rebound_kwh"] for r in later))
    rebound_value = float(np.sum([r["value_eur"] for r in later])) if later else 0.0
    return {"rebound_kwh": rebound, "never_delivered_kwh": row["shed_kwh"] - rebound,
            "rebound_value_eur": rebound_value,
            "net_value_eur": row["value_eur"] - rebound_value}


def _stations(states: pd.DataFrame, rec: Reconstruction) -> np.ndarray | None:
    if "station_id" not in states.columns:
        return None
    first = states.drop_duplicates("session_id").set_index(states.drop_duplicates("session_id")["session_id"]
                                                             .astype(str))["station_id"]
    return first.reindex(rec.session_ids).fillna("").astype(str).to_numpy(object)


def _in_order(frame: pd.DataFrame, rank: dict[str, int]) -> pd.DataFrame:
    if frame.empty:
        return frame
    key = frame["activation_id"].map(rank)
    return frame.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)


def _ordered(frame: pd.DataFrame, first: list[str]) -> pd.DataFrame:
    for col in first:
        if col not in frame.columns:
            frame[col] = pd.Series(dtype=float)
    return frame[first + [c for c in frame.columns if c not in first]]


def _reasons(coverage: float, params: SettleParams, active: np.ndarray, flagged_here: np.ndarray,
             baseline: Baseline, edges) -> list[str]:
    reasons = []
    if not active.any():
        reasons.append("no active sessions")
    elif coverage < params.min_coverage:
        reasons.append(f"only {coverage:.0%} of sessions have states within {params.bracket_s / 60:.0f} min "
                       "of both signal and clear")
    n_flagged, n_active = int(flagged_here.sum()), int(active.sum())
    if n_flagged and n_flagged > params.max_flagged_share * n_active:
        reasons.append(f"{n_flagged} of {n_active} active session(s) with data issues near the activation "
                       "(see sessions flags)")
    reasons.extend(baseline.notes)
    return reasons
