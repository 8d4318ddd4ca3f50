"""The simulator's own clocks (no product import): the same `SMATCH_CLOCK` text format, so the
simulator and the product's processes can share one simulated time through the environment.

Any object with `now() -> aware datetime` is accepted where a clock is expected.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("naive datetime: the simulator works in timezone-aware UTC")
    return when


class SystemClock:
    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """Moves only when told to (tests)."""

    speed = 1.0

    def __init__(self, start: datetime) -> None:
        self._now = _aware(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, when: datetime) -> None:
        self._now = _aware(when)


class ScaledClock:
    """`sim_start` at real unix time `real_start`, running `speed` times faster than real time."""

    def __init__(self, sim_start: datetime, real_start: float, speed: float) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.sim_start, self.real_start, self.speed = _aware(sim_start), real_start, speed

    def now(self) -> datetime:
        return self.sim_start + timedelta(seconds=(time.time() - self.real_start) * self.speed)

    def spec(self) -> str:
        return f"scaled:{self.sim_start.isoformat()}|{self.real_start}|{self.speed}"


def parse_clock(spec: str) -> SystemClock | ScaledClock:
    """`system` or `scaled:<sim start ISO 8601>|<real start unix seconds>|<speed>`."""
    if spec == "system":
        return SystemClock()
    if spec.startswith("scaled:"):
        try:
            iso, real, speed = spec[len("scaled:"):].split("|")
            return ScaledClock(datetime.fromisoformat(iso).astimezone(UTC), float(real), float(speed))
        except ValueError as exc:
            raise ValueError(f"bad clock spec {spec!r}: {exc}") from exc
    raise ValueError(f"bad clock spec {spec!r}: expected 'system' or 'scaled:ISO|UNIX|SPEED'")
