"""Accuracy against size: a small CNN on scikit-learn's digits with two objectives, minutes on a CPU.

Validation accuracy (max) and trainable parameters (min): the search returns a Pareto front,
not one trial (summary.json's ``pareto``; the launcher prints the front; ``python -m
tune_nas.study`` lists and plots it). The width, depth and dropout set the size; the
optimiser's settings the accuracy at that size. MOASHA (grace 3, η = 3: about 56 % of the
epochs of no stopping; the README's "Multi-objective search" replays other settings and says
what each costs the front) stops trials whose (accuracy, size)
ranks in the bottom of its rung by non-dominated sorting; the parameter count is known from
the first epoch, so a large net that is no more accurate stops at the first rung.
``--scheduler none`` trains every trial to the end.
Add ``"constraints": {"model/params": ("<=", 20_000)}`` to keep only small nets.
"""

from ray import tune

EXPERIMENT = {
    "description": "small CNN on digits: accuracy vs parameters (two objectives), 24 trials",
    "dataset": "digits",
    "model": "small_cnn",
    "objectives": {"val/acc": "max", "model/params": "min"},
    "max_epochs": 9,
    "grace_period": 3,
    "reduction_factor": 3,
    "scheduler": "moasha",
    "searcher": "tpe",
    "num_samples": 24,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "n_startup_trials": 8,
}

PARAM_SPACE = {
    "optimizer": "adamw",
    "lr": tune.loguniform(1e-3, 3e-2),
    "weight_decay": tune.loguniform(1e-6, 1e-2),
    "batch_size": 64,
    "width": tune.choice([4, 8, 16, 32, 64]),
    "depth": tune.randint(1, 4),
    "dropout": tune.uniform(0.0, 0.3),
}
