"""Pure settlement core: numpy/pandas only, no Django, no ORM (see docs/settlement.md)."""

from settlement.core.baselines import BASELINES, Baseline, register_baseline
from settlement.core.counterfactual import per_session, rebound_aware
from settlement.core.reconstruction import Reconstruction, reconstruct
from settlement.core.settle import SettlementResult, settle_frames

__all__ = [
    "BASELINES",
    "Baseline",
    "Reconstruction",
    "SettlementResult",
    "per_session",
    "rebound_aware",
    "reconstruct",
    "register_baseline",
    "settle_frames",
]
