"""ASHA by promotion against stopping ASHA on digits: real runs side by side, and a replay.

Runs the ``default`` preset (small CNN on digits, rungs at 1, 3 and 9 epochs, η = 3) three
times with the same seed — ``--scheduler none`` (every trial to ``max_epochs``: exact curves for
the replay), ``asha`` and ``asha_promotion`` — unless ``--reuse DIR`` holds them already
(``DIR/none``, ``DIR/asha``, ``DIR/asha_promotion``), then prints:

* per real run: trials by state, epochs trained (and their share of no stopping's), how many
  trials were paused and resumed (promotion only), the best COMPLETE trial's val acc and
  its test acc, the wall time, and whether ``curves.csv`` holds a (trial, epoch) twice;
* the replay of stopping ASHA and ASHA by promotion over the no-stopping run's curves
  (``python -m tune_nas.replay --grace 1 --rf 3``, ``--workers`` as the real runs had).

    python benchmarks/promotion_digits.py --out /tmp/promo [--num-samples 16] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

RUNS = ("none", "asha", "asha_promotion")


def launch(root: Path, scheduler: str, seed: int, num_samples: int) -> None:
    proc = subprocess.run([sys.executable, "-m", "tune_nas.launch", "--space", "default",
                           "--scheduler", scheduler, "--seed", str(seed), "--num-samples", str(num_samples),
                           "--name", scheduler, "--trials-dir", str(root)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{scheduler} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    (root / scheduler / "launch_stdout.txt").write_text(proc.stdout)


def duplicate_rows(experiment: Path) -> int:
    with (experiment / "curves.csv").open(newline="") as f:
        keys = Counter((row["trial_number"], row["epoch"]) for row in csv.DictReader(f))
    return sum(n - 1 for n in keys.values() if n > 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where the three experiments go (runs them)")
    parser.add_argument("--reuse", type=Path, help="a directory holding none/, asha/ and asha_promotion/")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-samples", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="trials at once, for the replay")
    args = parser.parse_args(argv)
    root = args.reuse or args.out
    if root is None:
        parser.error("--out DIR (run them) or --reuse DIR (read them)")
    if args.reuse is None:
        for scheduler in RUNS:
            launch(root, scheduler, args.seed, args.num_samples)
    summaries = {name: json.loads((root / name / "summary.json").read_text()) for name in RUNS}
    full = sum(t["epochs"] for t in summaries["none"]["trials"])
    for name, s in summaries.items():
        epochs = sum(t["epochs"] for t in s["trials"])
        resumed = [t for t in s["trials"] if t.get("resumed_after")]
        best = s.get("best") or {}
        print(f"{name:>15}: {len(s['trials'])} trials {s['counts']}, {epochs} epochs ({epochs / full:.0%} of no "
              f"stopping), {len(resumed)} paused and resumed, best val acc {best.get('val_acc')} (trial "
              f"{best.get('number')}, test acc {best.get('test_acc')}), wall {s['wall_time_s']:.1f} s, "
              f"duplicate (trial, epoch) rows {duplicate_rows(root / name)}")
    replay = subprocess.run([sys.executable, "-m", "tune_nas.replay", str(root / "none"), "--grace", "1",
                             "--rf", "3", "--thresholds", "0.05", "--workers", str(args.workers)],
                            capture_output=True, text=True)
    print(replay.stdout + replay.stderr[-2000:])


if __name__ == "__main__":
    main()
