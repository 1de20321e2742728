"""Single-Path NAS on digits without Ray: what the cost weight λ does to the chosen net.

Trains the ``superkernel`` supernet with ``run_trial`` once per λ (``--cost-weights``), reads
the thresholds' decisions from every epoch's checkpoint, and prints per epoch the accuracy,
the epoch time and the chosen architecture's FLOPs fraction, then the final architecture
string and the extracted child's measured params / FLOPs / test accuracy; and the epoch time
of ``small_cnn`` for comparison.

    python benchmarks/superkernel_lambda.py --epochs 6 --cost-weights 0 0.5
"""

from __future__ import annotations

import argparse
import os

import torch

from tune_nas.data.batches import TensorBatches, to_device_tensor
from tune_nas.data.sources import load_splits
from tune_nas.models import create_model
from tune_nas.models.superkernel import extract_child
from tune_nas.trial.cost import count_parameters, flops_per_image
from tune_nas.trial.run import CHECKPOINT_FILE, TrialSetup, run_trial, split_config

SUPERNET = {"preset": "full_res", "channels": "8,8,16,16,24,24,32", "channel_divisor": 4,
            "kernel_sizes": "3,5,7,9", "expansions": "3,6,9", "cost": "flops"}
TRAINING = {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "batch_size": 64,
            "arch_lr": 3e-2, "arch_warmup_epochs": 1}


class ArchRecorder:
    """A reporter that rebuilds the supernet from each epoch's checkpoint to read decisions."""

    def __init__(self, splits, arch: dict) -> None:
        self.splits, self.arch, self.rows, self.model = splits, arch, [], None

    def report(self, metrics, checkpoint_dir) -> None:
        row = dict(metrics)
        if checkpoint_dir:
            state = torch.load(os.path.join(checkpoint_dir, CHECKPOINT_FILE),
                               weights_only=True)["state_dict"]
            model = create_model("superkernel", self.splits.num_classes, self.splits.in_channels,
                                 self.splits.image_size, **self.arch)
            model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()
                                   if k.startswith("model.")})
            row.update(model.decisions())
            row["arch_string"] = model.arch_string()
            self.model = model
        self.rows.append(row)


def child_test_acc(model, splits) -> float:
    x = to_device_tensor(splits.test_x, "cpu")
    y = to_device_tensor(splits.test_y, "cpu")
    correct = 0
    model.eval()
    with torch.no_grad():
        for xb, yb in TensorBatches(x, y, 256, mean=splits.mean, std=splits.std):
            correct += int((model(xb).argmax(1) == yb).sum())
    return correct / len(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--cost-weights", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--width-mult", type=float, default=1.0)
    args = parser.parse_args()
    splits = load_splits("digits")

    small = ArchRecorder(splits, {})
    small.report = lambda m, c: small.rows.append(dict(m))
    run_trial({"lr": 3e-3, "width": 32, "depth": 2, "batch_size": 64}, splits,
              TrialSetup("small_cnn", max_epochs=args.epochs), small)
    small_epoch = sorted(r["time/epoch_s"] for r in small.rows)[len(small.rows) // 2]
    print(f"small_cnn (width 32, depth 2): median epoch {small_epoch:.2f} s, "
          f"test acc {small.rows[-1]['test/acc']:.3f}")

    for cost_weight in args.cost_weights:
        config = {**SUPERNET, **TRAINING, "width_mult": args.width_mult, "cost_weight": cost_weight}
        _, arch = split_config(config)
        recorder = ArchRecorder(splits, arch)
        run_trial(config, splits, TrialSetup("superkernel", max_epochs=args.epochs), recorder)
        print(f"\nsuperkernel, cost_weight (λ) = {cost_weight}")
        print(" epoch  train/loss  val/acc  epoch_s  arch/cost")
        for r in recorder.rows:
            print(f" {r['epoch']:5d}  {r['train/loss']:10.4f}  {r['val/acc']:7.3f}  "
                  f"{r['time/epoch_s']:7.2f}  {r.get('arch/cost', float('nan')):9.3f}")
        last = recorder.rows[-1]
        epoch_s = sorted(r["time/epoch_s"] for r in recorder.rows)[len(recorder.rows) // 2]
        print(f" median epoch {epoch_s:.2f} s ({epoch_s / small_epoch:.0f}× small_cnn); "
              f"supernet test acc {last['test/acc']:.3f}")
        print(f" arch: {last['arch_string']}")
        child = extract_child(recorder.model)
        print(f" child: {count_parameters(child)} params, "
              f"{flops_per_image(child, splits.in_channels, splits.image_size) / 1e6:.2f} MFLOPs "
              f"(supernet {recorder.model.full_cost() / 1e6:.2f}), "
              f"test acc {child_test_acc(child, splits):.3f}")


if __name__ == "__main__":
    main()
