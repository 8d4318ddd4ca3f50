"""Who plugs in where and when: a seeded day of sessions for the whole fleet (pure numpy).

Arrival rates and initial occupancy follow the shape of Dutch public charging: a morning
commuter bump, steady daytime visits and an evening peak of cars that stay overnight.
Every point is a non-homogeneous Poisson process that only runs while the point is free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.config import DA_PER_A, SimConfig

# Arrivals per free point per hour, by local hour of day.
ARRIVAL_RATE_PER_H = np.array(
    [0.01, 0.01, 0.01, 0.01, 0.01, 0.02, 0.04, 0.10, 0.14, 0.12, 0.09, 0.08,
     0.08, 0.08, 0.08, 0.09, 0.12, 0.18, 0.20, 0.16, 0.10, 0.06, 0.03, 0.02]
)
# Share of points occupied at the start of the run, by local hour (overnight cars dominate).
INITIAL_OCCUPANCY = np.array(
    [0.55, 0.55, 0.55, 0.55, 0.55, 0.55, 0.5, 0.4, 0.3, 0.3, 0.32, 0.34,
     0.35, 0.35, 0.35, 0.35, 0.36, 0.4, 0.45, 0.5, 0.52, 0.54, 0.55, 0.55]
)
MAX_A_1PH = (np.array([16, 20, 32]), np.array([0.6, 0.1, 0.3]))
MAX_A_3PH = (np.array([10, 13, 16, 32]), np.array([0.05, 0.1, 0.6, 0.25]))
GAP_AFTER_DEPARTURE_S = 120


@dataclass
class Population:
    """One row per session, sorted by (arrival_s, point). Times are seconds from config.start."""

    point: np.ndarray  # int32
    arrival_s: np.ndarray  # int32: when the session appears in the simulation (0 for pre-existing)
    started_s: np.ndarray  # int32: OCPI start_date_time offset (negative for pre-existing)
    depart_s: np.ndarray  # int32: the car leaves (may be past the end of the run)
    phases: np.ndarray  # int8: 1 or 3
    max_da: np.ndarray  # int32: the EV's own maximum current, deci-amperes per phase
    battery_kwh: np.ndarray
    soc0: np.ndarray  # state of charge when it appears in the simulation
    taper_soc: np.ndarray  # above this SoC the EV's current falls linearly to 0 at 100 %
    kwh0: np.ndarray  # energy already charged before the run (pre-existing sessions)
    complete_when_full: np.ndarray  # bool: session ends (COMPLETED) when full, car stays plugged
    early_unplug: np.ndarray  # bool: the driver left earlier than planned

    def __len__(self) -> int:
        return len(self.point)


def _local_hour(config: SimConfig, t_s: np.ndarray) -> np.ndarray:
    start_h = config.start.hour + config.start.minute / 60 + config.local_utc_offset_h
    return ((start_h + t_s / 3600.0) % 24).astype(np.int64)


def _durations_s(config: SimConfig, rng: np.random.Generator, arrival_s: np.ndarray) -> np.ndarray:
    hour = _local_hour(config, arrival_s)
    n = len(arrival_s)
    short = rng.lognormal(np.log(2.0 * 3600), 0.6, n)  # shopping / visit
    commuter = rng.lognormal(np.log(8.0 * 3600), 0.25, n)
    # Evening cars leave next morning around 07:30 local, give or take an hour.
    local_s = (hour * 3600 + (arrival_s % 3600)).astype(float)
    overnight = (24 * 3600 - local_s + 7.5 * 3600) % (24 * 3600) + rng.normal(0, 3600, n)
    evening = (hour >= 17) | (hour <= 1)
    morning = (hour >= 6) & (hour <= 9)
    u = rng.random(n)
    d = np.where(evening & (u < 0.75), overnight, np.where(morning & (u < 0.55), commuter, short))
    return np.clip(d, 15 * 60, 20 * 3600)


def _ev_attributes(config: SimConfig, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    three = rng.random(n) < config.share_three_phase
    max_a = np.where(three, rng.choice(MAX_A_3PH[0], n, p=MAX_A_3PH[1]), rng.choice(MAX_A_1PH[0], n, p=MAX_A_1PH[1]))
    return {
        "phases": np.where(three, 3, 1).astype(np.int8),
        "max_da": (max_a * DA_PER_A).astype(np.int32),
        "battery_kwh": rng.uniform(25.0, 80.0, n),
        "soc0": rng.beta(4.0, 3.0, n) * 0.7 + 0.15,
        "taper_soc": rng.uniform(0.8, 0.9, n),
        "complete_when_full": rng.random(n) < config.complete_when_full_share,
    }


def single_phase_stations(config: SimConfig) -> np.ndarray:
    """Which stations are wired single-phase (own seeded stream: the rest of the population is unchanged)."""
    return np.random.default_rng([config.seed, 6]).random(config.n_stations) < config.share_single_phase_stations


def generate(config: SimConfig) -> Population:
    """Sessions for every point over the run, deterministic for a given config (seed)."""
    rng = np.random.default_rng(config.seed)
    n_points, horizon = config.n_points, config.duration_s
    rows: list[dict[str, np.ndarray]] = []

    # Cars already plugged in when the run starts.
    occupied = rng.random(n_points) < INITIAL_OCCUPANCY[_local_hour(config, np.zeros(1))[0]]
    pts = np.flatnonzero(occupied).astype(np.int32)
    elapsed = rng.uniform(0.25, 8.0, len(pts)) * 3600
    remaining = np.clip(rng.lognormal(np.log(5 * 3600), 0.6, len(pts)), 10 * 60, 16 * 3600)
    attrs = _ev_attributes(config, rng, len(pts))
    # They have charged at roughly their nominal rate since plugging in (many are full by now).
    nominal_kw = np.minimum(attrs["max_da"] / DA_PER_A, config.station_single_a) * attrs["phases"] * 0.23
    soc_now = np.minimum(attrs["soc0"] + elapsed / 3600 * nominal_kw * rng.uniform(0.7, 1.0, len(pts))
                         / attrs["battery_kwh"], 1.0)
    charged = (soc_now - attrs["soc0"]) * attrs["battery_kwh"]
    attrs["soc0"] = soc_now
    rows.append({"point": pts, "arrival_s": np.zeros(len(pts)), "started_s": -elapsed, "depart_s": np.floor(remaining),
                 "kwh0": charged, "early_unplug": np.zeros(len(pts), bool), **attrs})
    cursor = np.zeros(n_points)
    cursor[pts] = np.floor(remaining) + GAP_AFTER_DEPARTURE_S

    # Thinning: candidate arrivals at the peak rate, accepted with rate(t) / peak.
    peak_per_s = ARRIVAL_RATE_PER_H.max() * config.occupancy_scale / 3600
    rate_per_s = ARRIVAL_RATE_PER_H * config.occupancy_scale / 3600
    alive = np.arange(n_points)[cursor < horizon]
    while len(alive):
        cand = cursor[alive] + rng.exponential(1 / peak_per_s, len(alive))
        accept = rng.random(len(alive)) * peak_per_s < rate_per_s[_local_hour(config, cand)]
        accept &= cand < horizon
        acc_pts, acc_t = alive[accept], np.floor(cand[accept])
        dur = _durations_s(config, rng, acc_t)
        early = rng.random(len(acc_pts)) < config.early_unplug_share
        dur = np.where(early, dur * rng.uniform(0.2, 0.6, len(dur)), dur)
        attrs = _ev_attributes(config, rng, len(acc_pts))
        rows.append({"point": acc_pts.astype(np.int32), "arrival_s": acc_t, "started_s": acc_t,
                     "depart_s": acc_t + np.maximum(np.floor(dur), 600), "kwh0": np.zeros(len(acc_pts)),
                     "early_unplug": early, **attrs})
        cursor[alive] = cand
        cursor[acc_pts] = acc_t + np.maximum(np.floor(dur), 600) + GAP_AFTER_DEPARTURE_S
        alive = alive[cursor[alive] < horizon]

    cols = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    order = np.lexsort((cols["point"], cols["arrival_s"]))
    ints = {"point", "arrival_s", "started_s", "depart_s", "max_da"}
    out = {k: (v[order].astype(np.int32) if k in ints else v[order]) for k, v in cols.items()}
    out["phases"] = out["phases"].astype(np.int8)
    out["phases"][single_phase_stations(config)[out["point"] // 2]] = 1  # a 3-phase EV on a 1-phase socket
    return Population(**out)
