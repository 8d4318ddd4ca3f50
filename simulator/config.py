"""Configuration of one simulated fleet: a dataclass, so runs are described by value."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
    no_resume_share: float = 0.0  # EVs that stay at 0 A once a limit on them is lifted
    outages: tuple[Outage, ...] = ()

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if name.endswith("_share") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")


PROFILES = ("standard", "power-only", "current-average", "extension")
TOKEN_ENCODINGS = ("base64", "raw")


@dataclass(frozen=True)
class Behaviour:
    """How the CPO platform speaks OCPI where the spec allows several readings (docs/simulator.md)."""

    profile: str = "extension"  # what session data it sends: one of PROFILES
    lowercase_ids: bool = False  # CiStrings lower-cased in bodies; URLs keep the CPO's own case
    hub: bool = False  # a Hub platform holding two CPO roles (odd stations belong to the second)
    second_party_id: str = "SI2"
    hub_party_id: str = "HUB"
    token_encoding: str = "base64"  # "raw": sends `Token <raw>` and accepts nothing else
    result_attempts: int = 1  # async result POSTs per request; the spec has no retries
    check_routing: bool = False  # refuse requests whose OCPI-to-* / OCPI-from-* name the wrong party
    active_profile_push: bool = False  # PUT ActiveChargingProfile to `{sender url}{session_id}`
    locations: bool = True  # serve the Locations module (Sender); False: not offered at all
    too_often_first_n: int = 0  # the first N profile requests of each session answer TOO_OFTEN
    too_often_min_interval_s: float = 0.0  # real seconds between requests on one session, else TOO_OFTEN

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {self.profile!r}")
        if self.token_encoding not in TOKEN_ENCODINGS:
            raise ValueError(f"token_encoding must be one of {TOKEN_ENCODINGS}")
        if self.result_attempts < 1 or self.too_often_first_n < 0 or self.too_often_min_interval_s < 0:
            raise ValueError("result_attempts >= 1, too_often_first_n >= 0, too_often_min_interval_s >= 0")


@dataclass(frozen=True)
class SimConfig:
    points: int = 100  # charge points; two per station, so rounded up to even
    seed: int = 1
    start: datetime = DEFAULT_START
    duration_s: int = 86_400
    share_three_phase: float = 0.6
    share_single_phase_stations: float = 0.0  # stations wired AC_1_PHASE: every EV there charges on one phase
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
    behaviour: Behaviour = field(default_factory=Behaviour)

    def __post_init__(self) -> None:
        if self.points < 1:
            raise ValueError("points must be >= 1")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        if self.duration_s < 1:
            raise ValueError("duration_s must be >= 1")
        for name in ("share_three_phase", "share_single_phase_stations"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
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

    def owner(self, point: int) -> tuple[str, str]:
        """(country_code, party_id) of the CPO owning `point`: on a Hub, odd stations belong to the second CPO."""
        if self.behaviour.hub and (point // 2) % 2 == 1:
            return self.country_code, self.behaviour.second_party_id
        return self.country_code, self.party_id

    def cpo_parties(self) -> list[tuple[str, str]]:
        parties = [(self.country_code, self.party_id)]
        if self.behaviour.hub:
            parties.append((self.country_code, self.behaviour.second_party_id))
        return parties


BEHAVIOUR_FLAGS = {"lowercase-ids": "lowercase_ids", "hub": "hub", "check-routing": "check_routing",
                   "active-profile-push": "active_profile_push"}
BEHAVIOUR_VALUES = {"result-attempts": ("result_attempts", int), "too-often-first-n": ("too_often_first_n", int),
                    "too-often-min-interval-s": ("too_often_min_interval_s", float)}
FAULT_SHARES = {"non-responding": "non_responding_share", "no-resume": "no_resume_share",
                "no-async-result": "no_async_result_share", "too-often": "too_often_share"}


def with_knobs(config: SimConfig, profile: str | None = None, knobs: str = "") -> SimConfig:
    """`config` with a realism profile and knobs written as in the CLI, comma-separated:
    `lowercase-ids,hub,raw-token,check-routing,active-profile-push,no-locations,result-attempts=3,
    too-often-first-n=2,too-often-min-interval-s=5,non-responding=0.05,no-resume=0.1,no-async-result`
    (a share without a value is 1.0). Unknown knobs raise ValueError: a typo must not pass silently."""
    b: dict = {} if profile is None else {"profile": profile}
    f: dict = {}
    for item in filter(None, (k.strip() for k in knobs.split(","))):
        name, _, value = item.partition("=")
        if name in BEHAVIOUR_FLAGS:
            b[BEHAVIOUR_FLAGS[name]] = True
        elif name == "raw-token":
            b["token_encoding"] = "raw"
        elif name == "no-locations":
            b["locations"] = False
        elif name in BEHAVIOUR_VALUES:
            field_name, cast = BEHAVIOUR_VALUES[name]
            b[field_name] = cast(value)
        elif name in FAULT_SHARES:
            f[FAULT_SHARES[name]] = float(value) if value else 1.0
        else:
            raise ValueError(f"unknown simulator knob {name!r}")
    return replace(config, behaviour=replace(config.behaviour, **b), faults=replace(config.faults, **f))
