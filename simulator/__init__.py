"""A CPO platform simulator: the product's OCPI test partner with 1-second ground truth.

Plain Python (not a Django app). Layers, bottom up:
- `config`: one dataclass of knobs (fleet size, seed, start, faults).
- `population`: who arrives when, with which EV (pure numpy, seeded).
- `physics`: the fleet stepped second by second (station sharing, taper, profiles).
- `truth`: exact power/energy of every point, queryable for any window.
- `batch`: run a day without HTTP for settlement accuracy and benchmarks.
- `server`: the live OCPI 2.2.1 CPO (aiohttp) on loopback.
"""

from simulator.config import SimConfig

__all__ = ["SimConfig"]
