"""What a trial learns: a task's loss, its per-epoch metrics and its default objective.

* ``classification`` (:mod:`.classification`): images → classes; cross-entropy, accuracy;
  the default objective ``val/acc`` (max).
* ``regression`` (:mod:`.regression`): vectors → vectors (an emulator of a simulation);
  mean squared error on standardised targets, MAE and R²; the default objective ``val/mse``
  (min).

A task follows from the data set (:func:`task_of_dataset`: array files and simulators are
regression data, everything else images); the models registered for it take its data shape
(:mod:`tune_nas.models.registry`). Torch is imported only by :func:`task_named`'s modules.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from tune_nas.metric_keys import TASKS

#: Data-set name prefixes of regression data (array files, built-in simulators).
REGRESSION_PREFIXES = ("arrays:", "sim:")


class Totals(Protocol):
    """Sums over an epoch's batches, kept on the device (no host synchronisation per step)."""

    keys: tuple[str, ...]

    def update(self, loss: Any, output: Any, target: Any) -> None: ...

    def compute(self) -> Any:
        """The metrics in :attr:`keys` order as one device tensor (NaN when nothing was seen)."""
        ...

    def reset(self) -> None: ...


class Task(Protocol):
    name: str
    #: metric names (without ``train/``/``val/``) of the training and validation totals
    train_keys: tuple[str, ...]
    eval_keys: tuple[str, ...]
    default_metric: str
    default_mode: str

    def loss(self, output: Any, target: Any, label_smoothing: float = 0.0) -> Any: ...

    def train_totals(self) -> Totals: ...

    def eval_totals(self) -> Totals: ...


def task_of_dataset(dataset: str) -> str:
    """``"regression"`` for array files (``arrays:PATH``) and simulators (``sim:NAME``),
    ``"classification"`` for every image data set."""
    return "regression" if isinstance(dataset, str) and dataset.startswith(REGRESSION_PREFIXES) else "classification"


def task_named(name: str) -> Task:
    """The task object of ``name`` (imports torch)."""
    if name not in TASKS:
        raise ValueError(f"task={name!r}: rule: one of {', '.join(TASKS)}")
    return importlib.import_module(f"tune_nas.tasks.{name}").TASK
