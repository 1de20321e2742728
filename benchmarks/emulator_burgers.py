"""The emulator goal, measured: one command searches an emulator of Burgers' equation.

Runs ``python -m tune_nas.launch --space emulator_burgers`` (or ``--space`` another emulator
preset) as a user would — in a fresh data directory unless ``--data-dir`` names one, so the
simulations that make the data set are part of the wall time — and prints, from its
summary.json: the command's wall time, the best emulator's test R² (held-out simulations,
the data's units), its time per sample and the simulator's (one thread each), the speed-up,
and whether the goal (R² ≥ 0.99, ≥ 1,000× faster, ≤ 10 minutes) is met. With ``--plot`` it
draws the best emulator's fields against the simulator's on held-out inputs.

    python benchmarks/emulator_burgers.py --plot docs/emulator-burgers.png
    python benchmarks/emulator_burgers.py --space emulator_burgers_conv1d
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_R2, GOAL_SPEEDUP, GOAL_WALL_S = 0.99, 1000.0, 600.0


def plot(summary: dict, experiment: Path, out: Path, samples: int = 4) -> None:
    """The best emulator's output fields against the simulator's on held-out test inputs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from tune_nas.analysis.emulator import load_trained_model, predict
    from tune_nas.config.space_file import load_space
    from tune_nas.data.sources import load_splits

    resolved = json.loads((experiment / "experiment.json").read_text())["spec"]
    space = load_space(str(experiment / "space.py"))
    splits = load_splits(resolved["dataset"], resolved["data_dir"])
    best = summary["best"]
    model = load_trained_model(space.spec.model, best["config"], summary["emulator"]["checkpoint"], splits)
    inputs = splits.original_inputs(splits.test_x[:samples])
    truth = splits.original_outputs(splits.test_y[:samples]).reshape(samples, *splits.output_shape)
    guess = predict(model, splits, inputs).reshape(samples, *splits.output_shape)
    x = np.linspace(0, 2 * np.pi, splits.output_shape[-1], endpoint=False)
    fig, axes = plt.subplots(1, samples, figsize=(3.2 * samples, 3.0), sharey=True)
    for i, ax in enumerate(np.atleast_1d(axes)):
        for channel in range(truth.shape[1]):
            label = splits.output_names[channel * truth.shape[2]].split(",")[0] + ")"
            ax.plot(x, truth[i, channel], color=f"C{channel}", lw=2.2, alpha=0.45,
                    label=f"simulator {label}" if i == 0 else None)
            ax.plot(x, guess[i, channel], color=f"C{channel}", lw=1.0, ls="--",
                    label=f"emulator {label}" if i == 0 else None)
        nu, a1, b1, a2, b2 = inputs[i]
        ax.set_title(f"ν={nu:.3f}, a=({a1:.2f}, {b1:.2f}, {a2:.2f}, {b2:.2f})", fontsize=8)
        ax.set_xlabel("x")
    np.atleast_1d(axes)[0].set_ylabel("u")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    e = summary["emulator"]
    fig.suptitle(f"Burgers' equation, held-out inputs: emulator ({space.spec.model}, test R² {e['r2']:.4f}) "
                 f"vs simulator; {e['speedup']:,.0f}× faster per sample", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"plot: {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="emulator_burgers")
    parser.add_argument("--data-dir", default=None, help="reuse simulated data here (default: a fresh directory)")
    parser.add_argument("--trials-dir", type=Path, default=None, help="keep the experiment here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        trials = args.trials_dir or Path(tmp) / "trials"
        data_dir = args.data_dir or str(Path(tmp) / "data")
        name = f"{args.space}-s{args.seed}-{time.strftime('%H%M%S')}"
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "tune_nas.launch", "--space", args.space, "--seed",
                               str(args.seed), "--name", name, "--trials-dir", str(trials), "--data-dir", data_dir],
                              capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        summary = json.loads((trials / name / "summary.json").read_text())
        e, best = summary["emulator"], summary["best"]
        row = {"space": args.space, "seed": args.seed, "command_wall_s": round(wall, 1),
               "search_wall_s": summary["wall_time_s"], "trials": sum(summary["counts"].values()),
               "counts": summary["counts"], "best_trial": best["number"], "best_params": best["params"],
               "best_config": best["config"], "test_r2": round(e["r2"], 5), "test_r2_worst_output": round(e["r2_min"], 5),
               "rmse": e["rmse"], "emulator_us_per_sample": round(e["emulator_seconds_per_sample"] * 1e6, 3),
               "simulator_ms_per_sample": round(e["simulator"]["seconds_per_sample"] * 1e3, 3),
               "speedup": round(e["speedup"], 1)}
        row["goal_met"] = (row["test_r2"] >= GOAL_R2 and row["speedup"] >= GOAL_SPEEDUP
                           and row["command_wall_s"] <= GOAL_WALL_S)
        print(json.dumps(row, indent=1))
        if args.plot:
            plot(summary, trials / name, args.plot)


if __name__ == "__main__":
    main()
