"""Data-parallel trials: 1 worker vs 2 workers of one trial, side by side in one run.

    python benchmarks/data_parallel.py [--out DIR] [--epochs 4] [--rounds 2] [--quick]

Each arm is one trial (``run_trial``, no Ray) in a fresh process with its thread count fixed
(``OMP_NUM_THREADS`` and ``torch.set_num_threads``):

* ``1 worker x 2 threads`` — today's trial given the whole 2-core machine;
* ``2 workers x 1 thread`` — ``workers_per_trial=2``: DDP over gloo, each worker half of
  every batch (the global batch size is the configured one);
* ``1 worker x 1 thread`` — for reference: what one core does.

``1 x 2`` against ``2 x 1`` is the fair comparison: the same cores, the same global batches.
Workloads: the default preset's small CNN (width 32, depth 2, batch 64) on digits (8x8,
1151 training images), and the same net on a CIFAR-shaped synthetic set (3x32x32, 4096
training images, random pixels: the speed, not the accuracy, is measured). The arms run in
interleaved rounds; the table shows medians. An epoch's time is rank 0's ``time/epoch_s``
(training and validation) from the second epoch on; images/s = training images / that time;
the trial's wall time includes starting the second worker.

On a machine with 2 or more CUDA GPUs (``--gpu``) the arms are 1 GPU vs 2 GPUs (one per
worker, NCCL), the synthetic workload only.

Prints a table and writes ``data_parallel.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

CONFIG = {"lr": 3e-3, "width": 32, "depth": 2, "batch_size": 64, "optimizer": "adamw", "trial_number": 1}
#: workload -> (data set, training images)
WORKLOADS = {"digits": "digits", "synthetic32": "synthetic 3x32x32"}


def synthetic_splits(n_train: int = 4096, n_eval: int = 512, size: int = 32, seed: int = 0):
    import numpy as np

    from tune_nas.data.sources import ArraySplits

    rng = np.random.default_rng(seed)

    def split(n):
        return rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)

    (tx, ty), (vx, vy), (sx, sy) = split(n_train), split(n_eval), split(n_eval)
    return ArraySplits("synthetic", tx, ty, vx, vy, sx, sy, classes=tuple(str(i) for i in range(10)),
                       mean=(0.5, 0.5, 0.5), std=(0.29, 0.29, 0.29))


def one_arm(workload: str, workers: int, threads: int, gpus: int, epochs: int) -> dict:
    """Train one trial; what rank 0 reported and the trial's wall time."""
    import torch

    from tune_nas.data.sources import load_splits
    from tune_nas.trial.run import TrialSetup, run_trial

    torch.set_num_threads(threads)
    splits = load_splits("digits") if workload == "digits" else synthetic_splits()

    class Recorder:
        results: list[dict] = []

        def report(self, metrics, checkpoint_dir):
            self.results.append(dict(metrics))

    rec = Recorder()
    setup = TrialSetup("small_cnn", max_epochs=epochs, cpus_per_trial=threads, gpus_per_trial=gpus,
                       workers_per_trial=workers, checkpoint_every=epochs)
    started = time.perf_counter()
    run_trial(CONFIG, splits, setup, rec)
    wall = time.perf_counter() - started
    epoch_s = [r["time/epoch_s"] for r in rec.results]
    return {"workload": workload, "workers": workers, "threads": threads, "gpus": gpus,
            "train_images": len(splits.train_x), "epoch_s": epoch_s, "wall_s": wall,
            "world_size": rec.results[-1]["world_size"], "val_acc": rec.results[-1]["val/acc"]}


def run_arm(workload: str, workers: int, threads: int, gpus: int, epochs: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    out = subprocess.run([sys.executable, __file__, "--arm", f"{workload},{workers},{threads},{gpus}",
                          "--epochs", str(epochs)], env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode:
        raise SystemExit(f"arm {workload} {workers}x{threads} failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median_epoch(result: dict) -> float:
    later = result["epoch_s"][1:] or result["epoch_s"]
    return statistics.median(later)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="2 epochs, 1 round")
    p.add_argument("--gpu", action="store_true", help="1 GPU vs 2 GPUs (needs 2 CUDA GPUs)")
    p.add_argument("--arm", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.arm:
        workload, workers, threads, gpus = args.arm.split(",")
        print(json.dumps(one_arm(workload, int(workers), int(threads), int(gpus), args.epochs)))
        return
    if args.quick:
        args.epochs, args.rounds = 2, 1
    if args.gpu:
        arms = [("synthetic32", 1, 4, 1), ("synthetic32", 2, 4, 1)]
    else:
        arms = [(w, workers, threads, 0) for w in WORKLOADS for workers, threads in ((1, 2), (2, 1), (1, 1))]
    results: dict[tuple, list[dict]] = {arm: [] for arm in arms}
    load_before = os.getloadavg()
    for _ in range(args.rounds):  # interleaved: every arm once per round
        for arm in arms:
            results[arm].append(run_arm(*arm, epochs=args.epochs))
    rows = []
    for (workload, workers, threads, gpus), runs in results.items():
        epoch = statistics.median(_median_epoch(r) for r in runs)
        images = runs[0]["train_images"]
        rows.append({"workload": workload, "workers": workers, "threads_per_worker": threads,
                     "gpus_per_worker": gpus, "epoch_s": round(epoch, 4),
                     "images_per_s": round(images / epoch, 1),
                     "trial_wall_s": round(statistics.median(r["wall_s"] for r in runs), 2),
                     "epochs": args.epochs, "rounds": len(runs),
                     "world_size": runs[0]["world_size"], "val_acc": [round(r["val_acc"], 4) for r in runs]})
    print(f"{'workload':<12} {'arm':<24} {'epoch (s)':>10} {'images/s':>10} {'trial wall (s)':>15} {'vs 1 worker':>12}")
    for row in rows:
        base = next(r for r in rows if r["workload"] == row["workload"] and r["workers"] == 1
                    and r["threads_per_worker"] == (row["threads_per_worker"] * row["workers"] if not args.gpu
                                                    else row["threads_per_worker"]))
        speedup = base["epoch_s"] / row["epoch_s"]
        row["speedup_vs_1_worker_same_cores"] = round(speedup, 3)
        unit = f"{row['gpus_per_worker']} GPU" if row["gpus_per_worker"] else f"{row['threads_per_worker']} thread(s)"
        arm = f"{row['workers']} worker(s) x {unit}"
        print(f"{row['workload']:<12} {arm:<24} {row['epoch_s']:>10.3f} {row['images_per_s']:>10.0f} "
              f"{row['trial_wall_s']:>15.2f} {speedup:>11.2f}x")
    import lightning
    import torch

    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "lightning": lightning.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average_1_5_15_min": {"before": [round(x, 2) for x in load_before],
                                        "after": [round(x, 2) for x in os.getloadavg()]},
            "config": CONFIG, "rows": rows}
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="data_parallel-"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "data_parallel.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"load average (1, 5, 15 min) before {meta['load_average_1_5_15_min']['before']}, "
          f"after {meta['load_average_1_5_15_min']['after']} (other processes share the cores)")
    print(f"wrote {out / 'data_parallel.json'}")


if __name__ == "__main__":
    main()
