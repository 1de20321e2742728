"""Cell search on digits: regularized evolution vs random search over NAS-Bench-101 cells, trained for real.

Runs ``python -m tune_nas.launch --space nasbench101_digits`` once per searcher and seed (each a
fresh process, side by side on this machine) and prints, per run and per searcher: the best
trial's validation accuracy (and its test accuracy), the cells trained and how many of them are
unique, the proposals resampled because they were isomorphic to a trained cell ("duplicates
avoided") or no valid cell, and the wall time. Every number is read from the run's summary.json.

    python benchmarks/nasbench101_search.py                       # evolution, random; 3 seeds; 32 cells
    python benchmarks/nasbench101_search.py --searchers evolution random tpe reinforce --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(searcher: str, seed: int, num_samples: int, root: Path) -> dict:
    name = f"{searcher}-s{seed}"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tune_nas.launch", "--space", "nasbench101_digits",
                           "--searcher", searcher, "--seed", str(seed), "--num-samples", str(num_samples),
                           "--name", name, "--trials-dir", str(root)], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads((root / name / "summary.json").read_text())
    hashes = [t["arch_hash"] for t in summary["trials"] if t.get("arch_hash")]
    best = summary["best"] or {}
    cells = summary.get("cells") or {}
    return {"searcher": searcher, "seed": seed, "best_val_acc": best.get("val_acc"),
            "best_test_acc": best.get("test_acc"), "best_arch_hash": best.get("arch_hash"),
            "trials": len(summary["trials"]), "unique_trained": len(set(hashes)),
            "complete": summary["counts"].get("COMPLETE", 0),
            "duplicates_avoided": cells.get("duplicates_avoided"), "invalid_rejected": cells.get("invalid_rejected"),
            "search_wall_s": summary["wall_time_s"], "process_wall_s": round(wall, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searchers", nargs="+", default=["evolution", "random"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--num-samples", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:  # interleaved: a drift of the machine hits every searcher alike
            for searcher in args.searchers:
                row = run(searcher, seed, args.num_samples, Path(tmp))
                rows.append(row)
                print(json.dumps(row), flush=True)
    print()
    print("| searcher | runs | best val acc (mean) | best val acc per seed | best test acc (mean) | cells trained "
          "(unique) | duplicates avoided (mean) | invalid rejected (mean) | search wall s (mean) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for searcher in args.searchers:
        mine = [r for r in rows if r["searcher"] == searcher]
        def mean(key: str, mine: list[dict] = mine) -> float:
            return statistics.fmean(r[key] for r in mine if r[key] is not None)

        per_seed = ", ".join(f"{100 * r['best_val_acc']:.2f}" for r in mine)
        print(f"| {searcher} | {len(mine)} | {100 * mean('best_val_acc'):.2f} % | "
              f"{per_seed} | {100 * mean('best_test_acc'):.2f} % | "
              f"{sum(r['trials'] for r in mine)} ({sum(r['unique_trained'] for r in mine)}) | "
              f"{mean('duplicates_avoided'):.1f} | {mean('invalid_rejected'):.1f} | {mean('search_wall_s'):.0f} |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
