"""Tiny: a small CNN on scikit-learn's digits, 2 trials × 2 epochs (tests of tune_nas.compare).

Used as ``python -m tune_nas.compare --models small_cnn,superkernel --datasets digits
--preset-suffix _tiny``: seconds per search on one CPU core.
"""

from ray import tune

EXPERIMENT = {
    "description": "tiny small-CNN search on digits (compare tests)",
    "dataset": "digits",
    "model": "small_cnn",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 2,
    "grace_period": 1,
    "reduction_factor": 2,
    "num_samples": 2,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "n_startup_trials": 2,
    "final_max_epochs": 2,
}

PARAM_SPACE = {
    "optimizer": "adamw",
    "lr": tune.loguniform(3e-3, 3e-2),
    "batch_size": 64,
    "width": tune.choice([8, 16]),
    "depth": tune.randint(1, 3),
}
