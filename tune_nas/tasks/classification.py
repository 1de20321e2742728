"""Classification: cross-entropy (with optional label smoothing), mean loss and accuracy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tune_nas.tasks.totals import SummedTotals


class EpochTotals(SummedTotals):
    """Mean loss and accuracy over an epoch, summed on the device with no host synchronisation.

    The same numbers as torchmetrics' ``MeanMetric`` (weighted by batch size) and micro
    ``MulticlassAccuracy``, at a fifth of their per-step cost (~25 µs instead of ~120 µs on a
    CPU, measured), which shows in small models whose step takes a few milliseconds. A NaN loss
    propagates to the mean, so a diverged trial is seen as one.
    """

    keys = ("loss", "acc")
    count_index = 0

    def __init__(self) -> None:
        self.sums: torch.Tensor | None = None  # [sum of loss × batch size, correct predictions]
        self.count = 0  # images, counted on the host (no synchronisation)

    def update(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        n = len(y)
        step = torch.stack([loss.detach().float() * n, (logits.detach().argmax(1) == y).sum().float()])
        self.sums = step if self.sums is None else self.sums.add_(step)
        self.count += n

    def compute(self) -> torch.Tensor:
        """[mean loss, accuracy] as a device tensor (NaNs when nothing was seen)."""
        if self.sums is None or not self.count:
            return torch.full((2,), float("nan"))
        return self.sums / self.count

    def state(self) -> torch.Tensor | None:
        """[images, sum of loss × batch size, correct predictions] as float64."""
        if self.sums is None:
            return None
        return torch.cat([torch.tensor([float(self.count)], dtype=torch.float64, device=self.sums.device),
                          self.sums.double()])

    def set_state(self, state: torch.Tensor) -> None:
        self.count, self.sums = int(state[0].item()), state[1:3].float()

    def reset(self) -> None:
        self.sums, self.count = None, 0


class Classification:
    name = "classification"
    train_keys = eval_keys = EpochTotals.keys
    default_metric, default_mode = "val/acc", "max"

    def loss(self, logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing)

    def train_totals(self) -> EpochTotals:
        return EpochTotals()

    eval_totals = train_totals


TASK = Classification()
