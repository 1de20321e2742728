"""The training hyperparameters a search space may set, validated (no torch import here).

Every key of a trial's config that is a field of :class:`TrainingConfig` configures the
optimiser, schedule, loss, batches and numerics; every other key is an architecture argument
of the model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from tune_nas.metric_keys import RESERVED_KEYS
from tune_nas.objectives import is_number

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "onecycle", "constant")
PRECISIONS = ("auto", "32", "bf16")


@dataclass(frozen=True)
class TrainingConfig:
    """Training hyperparameters (all may be searched). Validated on construction."""

    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    schedule: Literal["cosine", "onecycle", "constant"] = "cosine"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    batch_size: int = 64
    crop_pad: int = 0
    flip: bool = False
    precision: Literal["auto", "32", "bf16"] = "auto"
    channels_last: bool = False
    compile: bool = False
    # searchable-architecture models (those with ``arch_parameters()``), e.g. the superkernel
    arch_lr: float = 1e-2
    arch_warmup_epochs: int = 0
    cost_weight: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value, kind = getattr(self, f.name), str(f.type)
            if kind in ("float", "int") and not (isinstance(value, (int, float))
                                                 and not isinstance(value, bool)):
                raise ValueError(f"{f.name}={value!r}: rule: a number")
            if kind in ("float", "int") and not is_number(value):
                raise ValueError(f"{f.name}={value!r}: rule: a finite number")
            if kind == "bool" and not (isinstance(value, bool) or value in (0, 1)):
                raise ValueError(f"{f.name}={value!r}: rule: true or false")
        rules = [
            ("optimizer", self.optimizer in OPTIMIZERS, f"one of {OPTIMIZERS}"),
            ("schedule", self.schedule in SCHEDULES, f"one of {SCHEDULES}"),
            ("precision", str(self.precision) in PRECISIONS, f"one of {PRECISIONS}"),
            ("lr", self.lr > 0 and math.isfinite(self.lr), "> 0"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("momentum", 0 <= self.momentum < 1, "0 <= momentum < 1"),
            ("warmup_epochs", self.warmup_epochs >= 0, ">= 0"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "0 <= label_smoothing < 1"),
            ("batch_size", int(self.batch_size) == self.batch_size and self.batch_size > 0,
             "a positive integer"),
            ("crop_pad", int(self.crop_pad) == self.crop_pad and self.crop_pad >= 0,
             "an integer >= 0"),
            ("arch_lr", self.arch_lr >= 0, ">= 0"),
            ("arch_warmup_epochs", self.arch_warmup_epochs >= 0, ">= 0"),
            ("cost_weight", self.cost_weight >= 0, ">= 0"),
        ]
        for name, ok, rule in rules:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r}: rule: {rule}")
        object.__setattr__(self, "batch_size", int(self.batch_size))
        object.__setattr__(self, "crop_pad", int(self.crop_pad))
        object.__setattr__(self, "precision", str(self.precision))

    @classmethod
    def keys(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))

    @classmethod
    def split(cls, config: dict[str, Any]) -> tuple[TrainingConfig, dict[str, Any]]:
        """(training config, the remaining keys: the model's architecture arguments)."""
        keys = cls.keys()
        training = cls(**{k: v for k, v in config.items() if k in keys})
        return training, {k: v for k, v in config.items() if k not in keys}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrialSetup:
    """What all trials of an experiment share; fixed by the launcher."""

    model: str
    max_epochs: int
    seed: int = 0
    checkpoint_every: int = 1
    #: epochs a trial always checkpoints after, whatever ``checkpoint_every``: where the
    #: scheduler may pause it (``asha_promotion``'s rungs), so it resumes exactly there
    checkpoint_epochs: tuple[int, ...] = ()
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    #: data-parallel processes training the trial together (each with the CPUs and GPUs above)
    workers_per_trial: int = 1
    plugins: tuple[str, ...] = ()
    #: the experiment's data set name; a tabular trial (``evaluation = "tabular"``) reads its table
    dataset: str = ""


def split_config(config: dict[str, Any]) -> tuple[TrainingConfig, dict[str, Any]]:
    """(training hyperparameters, model architecture arguments) of a trial's config."""
    return TrainingConfig.split({k: v for k, v in config.items() if k not in RESERVED_KEYS})
