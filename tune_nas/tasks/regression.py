"""Regression (emulators): mean squared error on standardised targets; MSE, MAE and R².

Targets arrive standardised with the training split's mean and standard deviation per output
(:mod:`tune_nas.data.arrays`), so ``mse`` and ``mae`` are in units of each output's training
standard deviation, averaged over the outputs (a constant prediction of the training mean
scores about 1), and comparable across data sets. ``r2`` is the coefficient of determination
per output, averaged over the outputs: scikit-learn's ``r2_score(..., multioutput=
"uniform_average")``, which standardising does not change (an output constant over the split
scores 1 when predicted exactly, else 0, as scikit-learn's ``force_finite``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tune_nas.tasks.totals import SummedTotals


def r2_per_output(sse: torch.Tensor, ss_tot: torch.Tensor) -> torch.Tensor:
    """1 − SSE/SS_tot per output; a constant output (SS_tot 0) scores 1 if fitted exactly, else 0."""
    constant = ss_tot <= 1e-12 * torch.clamp(sse, min=1.0)
    r2 = 1.0 - sse / torch.where(constant, torch.ones_like(ss_tot), ss_tot)
    return torch.where(constant, (sse <= 0).to(r2.dtype), r2)


class RegressionTotals(SummedTotals):
    """Per-output sums over an epoch on the device, in float64: squared and absolute errors,
    the targets and their squares (R²'s total sum of squares), and the loss."""

    keys = ("loss", "mse", "mae", "r2")
    count_index = 0

    def __init__(self) -> None:
        self.sums: torch.Tensor | None = None  # 4 × outputs: Σ err², Σ |err|, Σ y, Σ y²
        self.loss_sum: torch.Tensor | None = None
        self.count = 0

    def update(self, loss: torch.Tensor, output: torch.Tensor, y: torch.Tensor) -> None:
        n = len(y)
        out = output.detach().reshape(n, -1).double()
        target = y.detach().reshape(n, -1).double()
        err = out - target
        step = torch.stack([(err * err).sum(0), err.abs().sum(0), target.sum(0), (target * target).sum(0)])
        weighted = loss.detach().double() * n
        if self.sums is None:
            self.sums, self.loss_sum = step, weighted
        else:
            self.sums.add_(step)
            self.loss_sum = self.loss_sum + weighted
        self.count += n

    def per_output(self) -> dict[str, torch.Tensor]:
        """MSE, MAE and R² of each output (device tensors)."""
        n = self.count
        sse, sae, total, squares = self.sums
        ss_tot = squares - total * total / n
        return {"mse": sse / n, "mae": sae / n, "r2": r2_per_output(sse, ss_tot)}

    def compute(self) -> torch.Tensor:
        """[mean loss, mse, mae, r2] (each averaged over outputs) as a device tensor."""
        if self.sums is None or not self.count:
            return torch.full((len(self.keys),), float("nan"))
        per = self.per_output()
        return torch.stack([self.loss_sum / self.count, per["mse"].mean(), per["mae"].mean(),
                            per["r2"].mean()]).float()

    def state(self) -> torch.Tensor | None:
        """[samples, loss sum, then Σ err², Σ |err|, Σ y, Σ y² per output] as float64."""
        if self.loss_sum is None:
            return None
        head = torch.stack([torch.tensor(float(self.count), dtype=torch.float64, device=self.loss_sum.device),
                            self.loss_sum.double()])
        return head if self.sums is None else torch.cat([head, self.sums.reshape(-1)])

    def set_state(self, state: torch.Tensor) -> None:
        self.count, self.loss_sum = int(state[0].item()), state[1]
        if len(state) > 2:
            self.sums = state[2:].reshape(4, -1)

    def reset(self) -> None:
        self.sums, self.loss_sum, self.count = None, None, 0


class TrainTotals(RegressionTotals):
    """The training epoch's mean loss only (dropout and a moving model make the rest moot)."""

    keys = ("loss",)

    def update(self, loss: torch.Tensor, output: torch.Tensor, y: torch.Tensor) -> None:
        n = len(y)
        weighted = loss.detach().double() * n
        self.loss_sum = weighted if self.loss_sum is None else self.loss_sum + weighted
        self.count += n

    def compute(self) -> torch.Tensor:
        if self.loss_sum is None or not self.count:
            return torch.full((1,), float("nan"))
        return (self.loss_sum / self.count).float().reshape(1)


class Regression:
    name = "regression"
    train_keys, eval_keys = TrainTotals.keys, RegressionTotals.keys
    default_metric, default_mode = "val/mse", "min"

    def loss(self, output: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        return F.mse_loss(output.float().reshape(len(y), -1), y.reshape(len(y), -1))

    def train_totals(self) -> TrainTotals:
        return TrainTotals()

    def eval_totals(self) -> RegressionTotals:
        return RegressionTotals()


TASK = Regression()
