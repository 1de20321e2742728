"""The embedded default: a small CNN on scikit-learn's digits, offline, ~1 minute on 2 cores.

16 trials; Optuna's TPE picks the learning rate, weight decay, label smoothing, batch size and
the net's width and depth; ASHA stops weak trials at epochs 1 and 3 (grace 1, factor 3).
"""

from ray import tune

EXPERIMENT = {
    "description": "small CNN on scikit-learn digits (offline default)",
    "dataset": "digits",
    "model": "small_cnn",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 9,
    "grace_period": 1,
    "reduction_factor": 3,
    "num_samples": 16,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "n_startup_trials": 8,
}

PARAM_SPACE = {
    "optimizer": "adamw",
    "lr": tune.loguniform(3e-4, 3e-2),
    "weight_decay": tune.loguniform(1e-6, 1e-2),
    "label_smoothing": tune.uniform(0.0, 0.2),
    "batch_size": tune.choice([32, 64, 128]),
    "width": tune.choice([8, 16, 32, 64]),
    "depth": tune.randint(1, 4),  # 1, 2 or 3 conv stages
    "dropout": tune.uniform(0.0, 0.3),
}
