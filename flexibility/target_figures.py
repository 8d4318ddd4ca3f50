"""Read side of target-kW signals for the console: what relaying each waiting target would cap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from smatch import clock

from . import planning, targeting
from .models import Signal
from .services import activations


@dataclass(frozen=True)
class TargetPreview:
    signal: Signal
    target_kw: float
    sessions: int  # chosen
    eligible: int  # of which they are chosen
    expected_kw: float  # counted shed of the chosen sessions (best estimate x responsiveness)
    shortfall_kw: float


def previews(now: datetime | None = None, limit: int = 20) -> list[TargetPreview]:
    """Each waiting signal with a target: the sessions the selection would cap if relayed now."""
    now = now or clock.now()
    waiting = list(Signal.objects.filter(status=Signal.Status.RECEIVED, target_kw__isnull=False)
                   .select_related("brp").order_by("received_at")[:limit])
    if not waiting:
        return []
    plan = planning.plan_caps(activations.load_views(now), now, planning.activation_end(now), activations.stale_after())
    candidates = targeting.load_candidates(plan, now)
    out = []
    for signal in waiting:
        chosen = targeting.choose(candidates, signal.target_kw)
        out.append(TargetPreview(signal, signal.target_kw, len(chosen.chosen), len(plan.caps),
                                 round(chosen.counted_kw, 1), round(chosen.shortfall_kw, 1)))
    return out
