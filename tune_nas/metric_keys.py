"""Metric and config keys, defined once: what a trial reports and what a config reserves.

What a trial reports depends on its task (:mod:`tune_nas.tasks`): a classifier reports
accuracies, a regressor (an emulator of a simulation) mean squared and absolute errors and R².
:data:`METRICS` and :data:`FINAL_METRICS` are the classification keys (the default task);
:func:`metrics_of` and :func:`final_metrics_of` give any task's.
"""

TASKS = ("classification", "regression")

#: What every epoch's report holds besides the task's own metrics.
_EPOCH = ("epoch",)
_COMMON = ("lr", "time/epoch_s", "model/params", "model/flops", "model/latency_ms")
#: Each task's per-epoch training and validation metrics, in report order.
_TASK_METRICS = {
    "classification": ("train/loss", "train/acc", "val/loss", "val/acc"),
    "regression": ("train/loss", "val/loss", "val/mse", "val/mae", "val/r2"),
}
#: What each task's last epoch adds when the trial trained its full budget.
_TASK_FINAL = {
    "classification": ("test/loss", "test/acc", "test/seconds", "test/images_per_s"),
    "regression": ("test/loss", "test/mse", "test/mae", "test/r2", "test/seconds", "test/samples_per_s"),
}
#: The test metric each task's trial tables, reports and final stage lead with.
TEST_HEADLINE = {"classification": "test/acc", "regression": "test/r2"}
#: The test metrics a trial's Optuna user attributes keep (``test_acc``; a regressor's too).
TEST_METRICS = ("test/acc", "test/r2", "test/mse", "test/mae")
#: The direction in which each task metric improves (an objective named without a mode).
NATURAL_DIRECTIONS = {
    "acc": "max", "r2": "max", "loss": "min", "mse": "min", "mae": "min",
    "model/params": "min", "model/flops": "min", "model/latency_ms": "min", "time/epoch_s": "min",
}
#: The values a reported metric can take, by its last part (accuracies are fractions; R² is at
#: most 1 and unbounded below); any other reported metric (a loss, an error, a count, a time, a
#: learning rate) is never negative.
METRIC_RANGES = {"acc": (0.0, 1.0), "r2": (float("-inf"), 1.0)}


def metric_range(metric: str) -> tuple[float, float]:
    """(lowest, highest) value a reported ``metric`` can take (a constraint outside it cannot be met)."""
    return METRIC_RANGES.get(metric.rsplit("/", 1)[-1], (0.0, float("inf")))


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task={task!r}: rule: one of {', '.join(TASKS)}")
    return task


def metrics_of(task: str) -> tuple[str, ...]:
    """What every epoch's report of a ``task`` trial holds (a space's ``metric`` is one)."""
    return (*_EPOCH, *_TASK_METRICS[_check_task(task)], *_COMMON)


def final_metrics_of(task: str) -> tuple[str, ...]:
    """What the last epoch's report of a ``task`` trial adds when it trained its full budget."""
    return _TASK_FINAL[_check_task(task)]


def natural_direction(metric: str) -> str | None:
    """``"max"`` or ``"min"``: the way ``metric`` improves (``val/r2`` max, ``val/mse`` min), or
    None when it is not a known metric."""
    return NATURAL_DIRECTIONS.get(metric, NATURAL_DIRECTIONS.get(metric.rsplit("/", 1)[-1]))


def task_of_keys(keys) -> str:
    """The task whose reports hold ``keys`` (a regression report has ``val/r2``)."""
    return "regression" if "val/r2" in keys or "test/r2" in keys else "classification"


#: What every epoch's report of a classifier holds (the search metric and the scheduler's time
#: attribute among them).
METRICS = metrics_of("classification")
#: What the last epoch's report of a classifier adds when the trial trained its full budget.
FINAL_METRICS = final_metrics_of("classification")
#: Keys of a trial's config that are bookkeeping (the Optuna trial number, the TensorBoard run
#: name, and a searcher's instructions to the trial: ``warm_start`` — start from a parent's
#: trained weights, see :mod:`tune_nas.trial.warm_start`), not hyperparameters.
RESERVED_KEYS = ("trial_number", "trial_run", "warm_start")
#: What a warm-started trial adds to every report: its own epoch budget and the validation
#: accuracy of its starting weights, measured before its first epoch.
BUDGET, WARM_START_VAL_ACC = "budget", "warm_start_val_acc"
#: How many processes trained the trial together (data-parallel workers, ``workers_per_trial``):
#: in every report of a trained trial, 1 for a trial of one process.
WORLD_SIZE = "world_size"
