"""How far a multi-objective no-stopping front moves when only the seeds change.

Reruns a finished experiment's trials — the same configuration for each trial number, no early
stopping — with another experiment seed (so other initialisations and batch orders), then
prints both Pareto fronts, the **gap** of each front against the other (``tune_nas.replay``'s
measure: for every point of the reference front, the shortfall in the first objective of the
best point no worse in the others; the largest), and how much one configuration's final value
moves between the two runs. A scheduler's front cannot be expected closer to a no-stopping
front than a rerun of no stopping is (README "Multi-objective search").

    python benchmarks/front_noise.py trials/multiobjective_digits --seed 100 --trials-dir /tmp/noise
    python benchmarks/front_noise.py trials/multiobjective_digits --reuse /tmp/noise/multiobjective_digits-rerun100
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from tune_nas.objectives import Objective, pareto_front
from tune_nas.replay import front_gap

#: the settings of the first run a rerun keeps (what a trial trains on and how long)
KEPT = ("dataset", "model", "objectives", "constraints", "max_epochs", "train_fraction", "image_size", "plugins",
        "inputs", "outputs", "cpus_per_trial", "gpus_per_trial", "evaluation")


def rerun_space(experiment: Path, spec: dict) -> str:
    """A space file that trains, for trial number n, the configuration trial n of ``experiment``
    (whose resolved settings are ``spec``) trained, to the full budget."""
    trials = json.loads((experiment / "summary.json").read_text())["trials"]
    configs = [t["config"] for t in sorted(trials, key=lambda t: t["number"])]
    settings = {k: spec[k] for k in KEPT if spec.get(k) not in (None, [], {}, "")}
    settings.update(scheduler="none", searcher="random", num_samples=len(configs))
    return (f'"""Rerun of {experiment}: each trial number trains that trial\'s configuration."""\n\n'
            f"EXPERIMENT = {settings!r}\n\nCONFIGS = {configs!r}\n\n\n"
            "def define_by_run(trial):\n    return dict(CONFIGS[trial.number % len(CONFIGS)])\n")


def finals(experiment: Path, objectives: list[Objective]) -> dict[int, tuple[float, ...]]:
    trials = json.loads((experiment / "summary.json").read_text())["trials"]
    return {t["number"]: tuple(t["values"][o.metric] for o in objectives) for t in trials
            if t["state"] == "COMPLETE" and all(t["values"].get(o.metric) is not None for o in objectives)}


def front(points: dict[int, tuple[float, ...]], objectives: list[Objective]) -> list[tuple[float, ...]]:
    vectors = list(points.values())
    return [vectors[i] for i in pareto_front(vectors, objectives)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path, help="a finished experiment with several objectives")
    parser.add_argument("--seed", type=int, help="the rerun's experiment seed (default: the first run's + 100)")
    parser.add_argument("--trials-dir", type=Path, help="where the rerun goes (default: beside the experiment)")
    parser.add_argument("--reuse", type=Path, help="a rerun made before: only compare")
    args = parser.parse_args(argv)
    spec = json.loads((args.experiment / "experiment.json").read_text())["spec"]
    if len(spec.get("objectives") or {}) < 2:
        raise SystemExit(f"{args.experiment}: objectives {spec.get('objectives')}; rule: two or more (a front)")
    objectives = [Objective(metric, mode) for metric, mode in spec["objectives"].items()]
    rerun = args.reuse
    if rerun is None:
        seed = spec["seed"] + 100 if args.seed is None else args.seed
        trials_dir = args.trials_dir or args.experiment.parent
        rerun = trials_dir / f"{args.experiment.name}-rerun{seed}"
        trials_dir.mkdir(parents=True, exist_ok=True)
        space = trials_dir / f"{rerun.name}.py"
        space.write_text(rerun_space(args.experiment, spec))
        proc = subprocess.run([sys.executable, "-m", "tune_nas.launch", "--space", str(space), "--seed", str(seed),
                               "--name", rerun.name, "--trials-dir", str(trials_dir)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"the rerun failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    first, second = finals(args.experiment, objectives), finals(rerun, objectives)
    front_first, front_second = front(first, objectives), front(second, objectives)
    gap_second, _ = front_gap(front_first, front_second, objectives)
    gap_first, _ = front_gap(front_second, front_first, objectives)
    moves = sorted(abs(first[n][0] - second[n][0]) for n in first.keys() & second.keys())
    metric = objectives[0].metric
    print(f"{args.experiment} against its rerun {rerun} ({len(moves)} configurations in both):")
    print(f"  fronts: {len(front_first)} and {len(front_second)} points")
    print(f"  gap of the rerun's front against the first: {gap_second:.4f}; the other way: {gap_first:.4f}")
    if moves:
        print(f"  one configuration's final {metric} between the runs: mean |change| {sum(moves) / len(moves):.4f}, "
              f"largest {moves[-1]:.4f}; over 0.01: {sum(m > 0.01 for m in moves)} of {len(moves)}")


if __name__ == "__main__":
    main()
