"""Settlement's non-responders against the simulator's truth (the file door, kWh-only and with currents).

    python bench/settlement_non_responders.py [--points 2000] [--seed 1] [--non-responding 0.05] [--root DIR]

Simulates a day (`python -m simulator batch ... --non-responding S --activations 30`, cached in
var/bench/), settles it from files with `settle_frames`, and compares the EVSEs listed in
`non_responders` with the truth (`sessions_truth.csv`: `evse_ignored_limit`, an EVSE that answers
ACCEPTED and keeps drawing). A listed cap is right when its EVSE truly ignored limits. Also counts the
listed caps whose session began after its activation's signal (the old rule's false positives).
The same states without currents (kWh only) are settled too. `--root DIR` settles with another
checkout's code (e.g. the commit before a change, from `git archive COMMIT | tar -x -C DIR`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if "--root" in sys.argv:  # before the imports below: they are to come from that checkout
    sys.path.insert(0, str(Path(sys.argv[sys.argv.index("--root") + 1]).resolve()))

from settlement.core import settle_frames
from settlement.core.frames import CURRENT_COLUMNS

try:
    from settlement.io import files
except ImportError:  # a --root checkout from before settlement/io
    from settlement import files

ROOT = Path(__file__).resolve().parent.parent


def dataset(points: int, seed: int, share: float) -> Path:
    out = ROOT / "var" / "bench" / f"sim_{points}_s{seed}_nr{share:g}"
    if not (out / "S.csv").exists():
        tmp = out.with_suffix(".tmp")
        subprocess.run([sys.executable, "-m", "simulator", "batch", "--points", str(points), "--seed", str(seed),
                        "--activations", "30", "--non-responding", str(share), "--out", str(tmp)], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
        tmp.rename(out)
    return out


def score(states: pd.DataFrame, acts: pd.DataFrame, truth: pd.DataFrame) -> dict:
    listed = settle_frames(states, acts).non_responders
    ignoring = set(truth.loc[truth["evse_ignored_limit"].astype(bool), "evse_uid"])
    listed_evses = set(listed["evse_uid"])
    session_start = pd.to_datetime(truth.set_index("session_id")["start"], utc=True)
    signal = listed["activation_id"].map(dict(zip(acts["activation_id"].astype(str), acts["t_signal"], strict=True)))
    started_after = int((session_start.reindex(listed["session_id"]).to_numpy() > signal.to_numpy()).sum())
    right = listed["evse_uid"].isin(ignoring)
    capped_ignoring = {e for e in ignoring if e in set(states["evse_uid"])}
    return {"caps listed": len(listed), "caps right": int(right.sum()),
            "precision (caps)": f"{right.mean():.3f}" if len(listed) else "-",
            "EVSEs ignoring limits (truth)": len(capped_ignoring),
            "of them listed": len(listed_evses & capped_ignoring),
            "listed caps of sessions begun after the signal": started_after}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--non-responding", type=float, default=0.05)
    p.add_argument("--root", help="settle with this checkout's code (read before the imports)")
    args = p.parse_args()
    folder = dataset(args.points, args.seed, args.non_responding)
    states, acts = files.read_states(folder / "S.csv"), files.read_activations(folder / "A.csv")
    truth = pd.read_csv(folder / "sessions_truth.csv")
    rows = {"with currents": score(states, acts, truth),
            "kWh only": score(states.assign(**{c: float("nan") for c in CURRENT_COLUMNS}), acts, truth)}
    table = pd.DataFrame(rows).astype(str)
    print(f"non-responders: {args.points} charge points, seed {args.seed}, non-responding share "
          f"{args.non_responding:g}, {len(acts)} activations, {states['session_id'].nunique()} sessions")
    print(table.to_string())


if __name__ == "__main__":
    main()
