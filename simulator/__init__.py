"""A CPO platform simulator: the product's OCPI test partner with 1-second ground truth.

Plain Python (not a Django app). Layers, bottom up:
- `config`: one dataclass of knobs (fleet size, seed, start, faults, behaviour/realism profile).
- `clock`: its own clocks, reading the same `SMATCH_CLOCK` text as the product's processes.
- `population`: who arrives when, with which EV (pure numpy, seeded).
- `physics`: the fleet stepped second by second (station sharing, taper, profiles).
- `truth`: exact power/energy of every point, queryable for any window.
- `groundtruth`: per session: above 8 A at t, power per second, ignored limits, no resume.
- `batch`: run a day without HTTP for settlement accuracy and benchmarks.
- `server` / `api` / `ocpi` / `registration`: the live OCPI 2.2.1 CPO (aiohttp) on loopback.

It imports nothing of the product: its protocol code follows the spec, not our readings of it.
"""

from simulator.config import SimConfig

__all__ = ["SimConfig"]
