"""What target-kW selection adds to the plan of a large fleet (issue 16: < 100 ms for 16,000 sessions).

    python bench/selection.py [--quick] [--repeat N] [--json OUT]

Pure code, no services: 16,000 eligible sessions (a third throttled earlier in the last 4 hours,
plug-in times over the day, 1 or 3 phases at 10 to 32 A) are planned with `planning.plan_caps`, then
turned into candidates and narrowed to a target of half their expected shed
(`selection.candidates_from_plan` + `select` + `narrow`). The row is the time of the selection step
alone, i.e. what target_kw adds to the plan (wall clock, and CPU time of this process: the figure
to read on a shared box); the plan itself is reported for scale. Loading plug-in
times from the database is one extra values_list over the same sessions and is not included.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Row, bench_args, finish
from flexibility import planning, selection

NAME = "selection"


def fleet(n: int, now: datetime, seed: int = 16) -> tuple[list[planning.SessionView], dict, dict]:
    rnd = random.Random(seed)
    views, plugged, pasts = [], {}, {}
    for pk in range(1, n + 1):
        past = ()
        if rnd.random() < 1 / 3:
            start = now - timedelta(minutes=rnd.randint(20, 200))
            past = ((start, start + timedelta(minutes=rnd.choice([5, 10, 15]))),)
        views.append(planning.SessionView(pk, "ACTIVE", rnd.uniform(10, 32), phases=rnd.choice([1, 3]), past=past))
        plugged[pk] = now - timedelta(minutes=rnd.randint(1, 600))
        pasts[pk] = past
    return views, plugged, pasts


def main() -> None:
    args = bench_args(__doc__).parse_args()
    n = 2000 if args.quick else 16_000
    now = datetime(2026, 12, 2, 18, 3, tzinfo=UTC)
    views, plugged, pasts = fleet(n, now)
    end = planning.activation_end(now)
    plan_ms, select_ms, select_cpu_ms = [], [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        plan = planning.plan_caps(views, now, end)
        t1 = time.perf_counter()
        c1 = time.process_time()
        cands = selection.candidates_from_plan(plan, pasts, plugged, {}, now)
        chosen = selection.select(cands, plan.expected_kw / 2, margin=0.15, min_shed_kw=0.5,
                                  min_above_a=1.5)
        narrowed = selection.narrow(plan, chosen)
        t2, c2 = time.perf_counter(), time.process_time()
        plan_ms.append((t1 - t0) * 1000)
        select_ms.append((t2 - t1) * 1000)
        select_cpu_ms.append((c2 - c1) * 1000)
    note = f"{len(plan.caps)} eligible, {len(narrowed.caps)} chosen for {chosen.target_kw:.0f} kW"
    finish([
        Row.of(NAME, f"{n} eligible", "plan_caps (for scale)", "ms", plan_ms),
        Row.of(NAME, f"{n} eligible", "selection added to the plan", "ms", select_ms,
               target="< 100 ms" if n == 16_000 else None, ok=(lambda v: v < 100) if n == 16_000 else None,
               note=note),
        # CPU time of this process: on a shared box the wall clock above also counts other processes.
        Row.of(NAME, f"{n} eligible", "selection added to the plan (CPU)", "ms", select_cpu_ms),
    ], args.json)


if __name__ == "__main__":
    main()
