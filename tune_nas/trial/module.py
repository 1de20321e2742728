"""One LightningModule for every model: loss, optimizer, schedule, metrics on the device.

The training hyperparameters a search space may set are the fields of
:class:`tune_nas.config.training.TrainingConfig`; everything else in a trial's config goes to
the model factory.
Loss and accuracy are summed on the device and read once per epoch, so no step forces a host
synchronisation.
"""

from __future__ import annotations

import math
import os

_NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
_nvml_check_before = os.environ.get(_NVML_CHECK)
import lightning.pytorch as pl  # noqa: E402  (sets PYTORCH_NVML_BASED_CUDA_CHECK=1)

# Lightning sets it so that forked DataLoader workers are not poisoned by CUDA; trials fork no
# workers (batches come from tensors), and with it every optimizer step's CUDA availability
# check loads NVML again: ~80 µs a step on a machine without a GPU (measured), ~1 % of a small
# model's step. The user's own setting is kept.
if _nvml_check_before is None:
    os.environ.pop(_NVML_CHECK, None)
else:
    os.environ[_NVML_CHECK] = _nvml_check_before
import torch  # noqa: E402
from torch import nn  # noqa: E402

from tune_nas.config.training import TrainingConfig  # noqa: E402
from tune_nas.tasks import Task, task_named  # noqa: E402
from tune_nas.tasks.classification import EpochTotals  # noqa: E402,F401  (re-exported)


def resolve_precision(precision: str, device: torch.device) -> str:
    """Lightning's precision flag: bf16 autocast on GPUs that support it when ``auto``."""
    if precision == "bf16":
        return "bf16-mixed"
    if precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def _lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str) -> float:
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class TrialModule(pl.LightningModule):
    """Training of any ``model`` on a task (cross-entropy for classification, MSE for
    regression: :mod:`tune_nas.tasks`) with metrics accumulated on the device.

    Models with architecture parameters (``arch_parameters()``, e.g. superkernel thresholds)
    get them in an optimizer group of their own (``arch_lr``, no weight decay, frozen for the
    first ``arch_warmup_epochs``), and ``cost_weight × model.expected_cost()`` joins the loss.
    """

    def __init__(self, model: nn.Module, training: TrainingConfig, task: Task | str,
                 steps_per_epoch: int, max_epochs: int) -> None:
        super().__init__()
        self.model = model
        self.training_config = training
        self.task = task_named(task) if isinstance(task, str) else task
        self.steps_per_epoch, self.max_epochs = steps_per_epoch, max_epochs
        self.train_totals, self.val_totals = self.task.train_totals(), self.task.eval_totals()
        self._searchable = callable(getattr(model, "arch_parameters", None))

    def __setattr__(self, name: str, value) -> None:
        # Lightning names the running hook in ``_current_fx_name`` around every hook call
        # (~30 assignments a training step); nn.Module's __setattr__ checks each against the
        # parameters, buffers and submodules, ~1 % of a small model's step. A hook name is a
        # plain attribute.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.task.loss(output, y, self.training_config.label_smoothing)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self.model(x)
        loss = self._loss(logits, y)
        self.train_totals.update(loss, logits, y)
        if self._searchable and self.training_config.cost_weight > 0:
            loss = loss + self.training_config.cost_weight * self.model.expected_cost()
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self.model(x)
        self.val_totals.update(self._loss(logits, y), logits, y)

    def on_train_epoch_start(self) -> None:
        if self._searchable:
            frozen = self.current_epoch < self.training_config.arch_warmup_epochs
            for p in self.model.arch_parameters():
                p.requires_grad_(not frozen)

    def epoch_metrics(self) -> dict[str, float]:
        """The epoch's training and validation metrics (the task's: loss and accuracy, or loss,
        MSE, MAE and R², over every data-parallel worker) and the learning rate; resets the meters."""
        strategy = self.trainer.strategy if self._trainer else None
        values = torch.cat([self.train_totals.compute_over(strategy).cpu(),
                            self.val_totals.compute_over(strategy).cpu()]).tolist()
        self.train_totals.reset()
        self.val_totals.reset()
        keys = [f"train/{k}" for k in self.train_totals.keys] + [f"val/{k}" for k in self.val_totals.keys]
        lr = self.trainer.optimizers[0].param_groups[0]["lr"] if self._trainer else float("nan")
        return {**dict(zip(keys, values)), "lr": float(lr)}

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float]:
        """The task's validation metrics (loss and accuracy, or loss, MSE, MAE and R²) over
        ``batches`` (e.g. the test split), in eval mode; under data-parallel training every
        worker calls it with its shard and gets the numbers over all of them."""
        was_training = self.training
        self.eval()
        totals = self.task.eval_totals()
        bf16 = self._trainer is not None and "bf16" in str(self.trainer.precision)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16)
        with autocast:
            for x, y in batches:
                logits = self.model(x.to(self.device))
                y = y.to(self.device)
                totals.update(self._loss(logits.float(), y), logits, y)
        self.train(was_training)
        strategy = self.trainer.strategy if self._trainer else None
        return dict(zip(totals.keys, totals.compute_over(strategy).tolist()))

    def configure_optimizers(self):
        cfg = self.training_config
        arch = {id(p) for p in self.model.arch_parameters()} if self._searchable else set()
        decay, no_decay, arch_params = [], [], []
        for p in self.model.parameters():
            if id(p) in arch:
                arch_params.append(p)
            elif p.ndim <= 1:
                no_decay.append(p)  # biases and norm scales are not decayed
            else:
                decay.append(p)
        groups = [{"params": decay, "weight_decay": cfg.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        if arch_params:
            groups.append({"params": arch_params, "weight_decay": 0.0, "lr": cfg.arch_lr})
        groups = [g for g in groups if g["params"]]
        if cfg.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                                  nesterov=cfg.nesterov and cfg.momentum > 0)
        else:
            opt = torch.optim.AdamW(groups, lr=cfg.lr)
        total = self.steps_per_epoch * self.max_epochs
        if cfg.schedule == "constant" and not cfg.warmup_epochs:
            return opt  # nothing to schedule: no scheduler step in every training step
        if cfg.schedule == "onecycle":
            max_lrs = [g.get("lr", cfg.lr) for g in groups]
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lrs, total_steps=total)
        else:
            warmup = int(round(cfg.warmup_epochs * self.steps_per_epoch))
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda step: _lr_factor(step, warmup, total, cfg.schedule))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
