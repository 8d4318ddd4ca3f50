"""Counts of fuzz cases per door and answer class, printed at the end of the run and kept in a file.

`pytest tests/trust -p no:randomly` prints a "trust: cases tried" table (see conftest.py) and writes
`var/trust-fuzz-summary.json`: the figures quoted in docs/reliability.md come from there.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from django.conf import settings

CASES: dict[str, Counter] = defaultdict(Counter)


def record(door: str, http_status: int) -> None:
    """One request sent through `door` (e.g. "BRP POST /api/v1/signals/"), answered with `http_status`."""
    CASES[door][f"{http_status // 100}xx"] += 1
    CASES[door]["cases"] += 1


def lines() -> list[str]:
    if not CASES:
        return []
    total = Counter()
    out = [f"{'door':58} {'cases':>6} {'2xx':>6} {'4xx':>6} {'5xx':>4}"]
    for door in sorted(CASES):
        c = CASES[door]
        total.update(c)
        out.append(f"{door:58} {c['cases']:6} {c['2xx']:6} {c['4xx']:6} {c['5xx']:4}")
    out.append(f"{'total':58} {total['cases']:6} {total['2xx']:6} {total['4xx']:6} {total['5xx']:4}")
    return out


def write() -> Path | None:
    if not CASES:
        return None
    path = Path(settings.BASE_DIR) / "var" / "trust-fuzz-summary.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({door: dict(c) for door, c in sorted(CASES.items())}, indent=1) + "\n")
    return path
