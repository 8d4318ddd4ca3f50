"""Configuration of one simulated fleet: a dataclass, so runs are described by value."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

VOLTAGE_V = 230.0
# Currents are integers in deci-amperes (0.1 A): the EVSE pilot works in coarse steps anyway,
# and integer arithmetic keeps the ground truth exact (power = deci-amps x phases x 23 W).
DA_PER_A = 10
KW_PER_DA_PHASE = VOLTAGE_V / DA_PER_A / 1000.0  # 0.023 kW per deci-ampere per phase
NO_LIMIT_DA = 10_000  # "no profile": far above any EV

DEFAULT_START = datetime(2025, 5, 6, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Outage:
    """A block of charge points that loses contact between two simulated offsets (seconds)."""

    first_point: int
    last_point: int  # exclusive
    start_s: int
    end_s: int
    mode: str = "timeout"  # live mode: "timeout" (hang) or "unknown" (UNKNOWN_SESSION)

    def covers(self, point: int, t_s: int) -> bool:
        return self.first_point <= point < self.last_point and self.start_s <= t_s < self.end_s


@dataclass(frozen=True)
class Faults:
    """Fault knobs. Shares are probabilities in [0, 1] drawn per request / per state."""

    non_responding_share: float = 0.0  # EVSEs that ACCEPT profiles but keep their current
    rejected_share: float = 0.0
    too_often_share: float = 0.0
    not_supported_share: float = 0.0
    unknown_session_share: float = 0.0
    slow_share: float = 0.0
    slow_delay_s: float = 2.0  # real seconds
    http_5xx_share: float = 0.0
    no_async_result_share: float = 0.0
    drop_state_share: float = 0.0  # states never delivered (batch: rows dropped; live: no push)
    duplicate_state_share: float = 0.0  # batch only: row delivered twice
    out_of_order_share: float = 0.0  # batch only: row delivered late, after newer ones
    no_current_share: float = 0.0  # points whose states carry no per-phase currents
    outages: tuple[Outage, ...] = ()

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if name.endswith("_share") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")


@dataclass(frozen=True)
class SimConfig:
    points: int = 100  # charge points; two per station, so rounded up to even
    seed: int = 1
    start: datetime = DEFAULT_START
    duration_s: int = 86_400
    share_three_phase: float = 0.6
    local_utc_offset_h: float = 2.0  # arrival pattern follows Dutch local time (CEST)
    station_single_a: float = 16.0  # per phase when one point of the station draws
    station_shared_a: float = 12.5  # per phase, each, when both draw
    ev_min_a: float = 6.0  # IEC 61851: below this offer the EV does not charge at all
    idle_station_w: float = 4.5  # meter-only standby consumption per station
    state_interval_s: int = 300
    state_jitter_s: int = 5
    complete_when_full_share: float = 0.3  # sessions that end (COMPLETED) when full, car still plugged
    early_unplug_share: float = 0.1
    occupancy_scale: float = 0.8  # multiplies the arrival rates (1.0 = busy urban network)
    country_code: str = "NL"
    party_id: str = "SIM"
    session_prefix: str = ""  # default: "S<seed>-"
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        if self.points < 1:
            raise ValueError("points must be >= 1")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        if self.duration_s < 1:
            raise ValueError("duration_s must be >= 1")
        if not 0.0 <= self.share_three_phase <= 1.0:
            raise ValueError("share_three_phase must be within [0, 1]")
        if self.state_jitter_s * 2 >= self.state_interval_s:
            raise ValueError("state_jitter_s must be well below state_interval_s")

    @property
    def n_points(self) -> int:
        return self.points + (self.points % 2)

    @property
    def n_stations(self) -> int:
        return self.n_points // 2

    @property
    def prefix(self) -> str:
        return self.session_prefix or f"S{self.seed}-"
