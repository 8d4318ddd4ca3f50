"""Starting a simulator against the strict fake SCSP, and calling it as an SCSP would."""

from __future__ import annotations

import uuid
from dataclasses import replace

from simulator import ocpi
from simulator.clock import FrozenClock
from simulator.config import SimConfig
from simulator.physics import Fleet
from simulator.population import Population
from simulator.server import SimulatorServer
from tests.simulator.conftest import START
from tests.simulator.fake_scsp import OUR_ROLE, FakeScsp

# Hand-made fleet: jitter 0 so states fall at 0, 300, 600 s; 2 s EVSE apply delay in the server.
HAND = SimConfig(points=4, seed=7, start=START, duration_s=3600, state_jitter_s=0)


def start(scsp: FakeScsp | None, config: SimConfig, population: Population | None = None,
          register: bool = True, **kwargs) -> tuple[SimulatorServer, FrozenClock]:
    clock = FrozenClock(config.start)
    kwargs.setdefault("result_delay_s", 0.05)
    server = SimulatorServer(config, clock, token_a="cpo-token-a", **kwargs)
    if population is not None:
        server.fleet = Fleet(config, population)
    server.start_in_thread(0)
    if register and scsp is not None:
        server.register_with(f"{scsp.base_url}/versions", scsp.token_a)
    return server, clock


def behave(config: SimConfig, **behaviour) -> SimConfig:
    return replace(config, behaviour=replace(config.behaviour, **behaviour))


def as_scsp(scsp: FakeScsp, to: tuple[str, str] = ("NL", "SIM"), encoding: str = "base64",
            token: str | None = None) -> dict[str, str]:
    """Headers of a direct request from the fake SCSP to the CPO platform (transport_and_format)."""
    return {"Authorization": ocpi.auth_header(token or scsp.token_from_cpo, encoding),
            "X-Request-ID": str(uuid.uuid4()), "X-Correlation-ID": str(uuid.uuid4()),
            "OCPI-from-country-code": OUR_ROLE[0], "OCPI-from-party-id": OUR_ROLE[1],
            "OCPI-to-country-code": to[0], "OCPI-to-party-id": to[1]}


def profile_body(scsp: FakeScsp, call_id: str, limit_a: float = 8.0, duration_s: int | None = 600,
                 start=None) -> dict:
    cp: dict = {"charging_rate_unit": "A", "charging_profile_period": [{"start_period": 0, "limit": limit_a}]}
    if duration_s is not None:
        cp["duration"] = duration_s
    if start is not None:
        cp["start_date_time"] = ocpi.fmt_dt(start)
    return {"response_url": f"{scsp.base_url}/2.2.1/chargingprofiles/results/{call_id}", "charging_profile": cp}
