"""Accuracy against parameters on digits: MOASHA against no stopping, replayed and for real.

Runs the ``multiobjective_digits`` preset twice with the same seed — ``--scheduler none`` (every
trial to ``max_epochs``) and the preset's MOASHA — unless ``--reuse DIR`` holds both already
(``DIR/none``, ``DIR/moasha``), then prints:

* the replay of MOASHA settings over the no-stopping run's curves
  (``python -m tune_nas.replay``: epochs spent, hypervolume, the front's gap);
* the real runs side by side: epochs spent, the Pareto front of each, the hypervolume of the
  MOASHA front as a share of the no-stopping front's (same reference point as the replay),
  and the gap in accuracy (the largest shortfall against a no-stopping front point among the
  MOASHA front's points at most as large);

and with ``--plot PATH`` draws every trial and both fronts (parameters on a log axis).

    python benchmarks/multiobjective_digits.py --out /tmp/mo --plot docs/multiobjective-digits-pareto.png
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from tune_nas.objectives import Objective, hypervolume
from tune_nas.replay import front_gap, reference_point

OBJECTIVES = (Objective("val/acc", "max"), Objective("model/params", "min"))
RUNS = {"none": ["--scheduler", "none"], "moasha": []}


def launch(root: Path, name: str, extra: list[str], seed: int, num_samples: int) -> None:
    proc = subprocess.run([sys.executable, "-m", "tune_nas.launch", "--space", "multiobjective_digits",
                           "--seed", str(seed), "--num-samples", str(num_samples), "--name", name,
                           "--trials-dir", str(root), *extra], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def points(summary: dict) -> dict[int, tuple[float, float]]:
    return {t["number"]: (t["values"]["val/acc"], t["values"]["model/params"]) for t in summary["trials"]
            if t["state"] == "COMPLETE" and t["values"]["val/acc"] is not None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where the two experiments go (runs them)")
    parser.add_argument("--reuse", type=Path, help="a directory holding none/ and moasha/ already")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-samples", type=int, default=24)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args(argv)
    root = args.reuse or args.out
    if root is None:
        parser.error("--out DIR (run both) or --reuse DIR (read both)")
    if args.reuse is None:
        for name, extra in RUNS.items():
            launch(root, name, extra, args.seed, args.num_samples)
    summaries = {name: json.loads((root / name / "summary.json").read_text()) for name in RUNS}
    replay = subprocess.run([sys.executable, "-m", "tune_nas.replay", str(root / "none")], capture_output=True, text=True)
    print(replay.stdout)
    finals = {name: points(s) for name, s in summaries.items()}
    fronts = {name: {n: finals[name][n] for n in s["pareto"]} for name, s in summaries.items()}
    reference = reference_point(list(finals["none"].values()), OBJECTIVES)
    volume = {name: hypervolume(list(front.values()), OBJECTIVES, reference) for name, front in fronts.items()}
    epochs = {name: sum(t["epochs"] for t in s["trials"]) for name, s in summaries.items()}
    gap, unmatched = front_gap(list(fronts["none"].values()), list(fronts["moasha"].values()), OBJECTIVES)
    for name in RUNS:
        front = ", ".join(f"#{n} ({acc:.4f}, {params:.0f})" for n, (acc, params) in
                          sorted(fronts[name].items(), key=lambda item: item[1][1]))
        print(f"{name:>7}: {len(summaries[name]['trials'])} trials, {epochs[name]} epochs "
              f"({epochs[name] / epochs['none']:.0%} of no stopping), wall {summaries[name]['wall_time_s']:.0f} s, "
              f"hypervolume {volume[name]:.6g} ({volume[name] / volume['none']:.1%}); front (acc, params): {front}")
    print(f"gap of the MOASHA front to the no-stopping front: {gap:.4f} in val/acc"
          + (f" (unmatched: {unmatched})" if unmatched else ""))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, color in (("none", "tab:blue"), ("moasha", "tab:orange")):
            acc = [a for a, _ in finals[name].values()]
            params = [p for _, p in finals[name].values()]
            ax.scatter(params, acc, s=18, alpha=0.45, color=color, label=f"{name}: trials trained to the end")
            front = sorted(fronts[name].values(), key=lambda point: point[1])
            ax.step([p for _, p in front], [a for a, _ in front], where="post", color=color, linewidth=2,
                    marker="o", label=f"{name}: Pareto front ({epochs[name]} epochs)")
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters (log)")
        ax.set_ylabel("validation accuracy")
        ax.set_title(f"digits, small CNN, {args.num_samples} trials: accuracy vs size")
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
