"""The one clock. Every "now" in the product comes from here.

Tests freeze or advance it; the demo and the simulator run in scaled (simulated) time that
every process derives from the same `SMATCH_CLOCK` setting, so web, worker and simulator agree.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    speed: float

    def now(self) -> datetime: ...


class SystemClock:
    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to (tests)."""

    speed = 1.0

    def __init__(self, start: datetime) -> None:
        _require_aware(start)
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, when: datetime) -> None:
        _require_aware(when)
        self._now = when


class ScaledClock:
    """Simulated time: `sim_start` at real unix time `real_start`, running `speed` times faster."""

    def __init__(self, sim_start: datetime, real_start: float, speed: float) -> None:
        _require_aware(sim_start)
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.sim_start, self.real_start, self.speed = sim_start, real_start, speed

    def now(self) -> datetime:
        return self.sim_start + timedelta(seconds=(time.time() - self.real_start) * self.speed)

    def spec(self) -> str:
        return f"scaled:{self.sim_start.isoformat()}|{self.real_start}|{self.speed}"


def _require_aware(when: datetime) -> None:
    if when.tzinfo is None:
        raise ValueError("naive datetime: all times are timezone-aware UTC")


def parse_clock(spec: str) -> Clock:
    """`system` or `scaled:<sim start ISO>|<real start unix seconds>|<speed>`."""
    if spec == "system":
        return SystemClock()
    if spec.startswith("scaled:"):
        try:
            iso, real, speed = spec[len("scaled:"):].split("|")
            return ScaledClock(datetime.fromisoformat(iso).astimezone(UTC), float(real), float(speed))
        except ValueError as exc:
            raise ValueError(f"bad SMATCH_CLOCK {spec!r}: {exc}") from exc
    raise ValueError(f"bad SMATCH_CLOCK {spec!r}: expected 'system' or 'scaled:ISO|UNIX|SPEED'")


_clock: Clock | None = None


def get_clock() -> Clock:
    global _clock
    if _clock is None:
        from django.conf import settings

        _clock = parse_clock(settings.SMATCH_CLOCK)
    return _clock


def set_clock(clock: Clock | None) -> None:
    """Install a clock for this process (None = back to the configured one)."""
    global _clock
    _clock = clock


def now() -> datetime:
    return get_clock().now()


def real_seconds_until(when: datetime) -> float:
    """Wall-clock seconds until simulated time `when` (for Celery countdowns), never negative."""
    clock = get_clock()
    return max(0.0, (when - clock.now()).total_seconds() / clock.speed)
