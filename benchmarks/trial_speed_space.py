"""The search both sides of benchmarks/trial_speed.py run: digits, small CNN, ASHA, TPE."""

from ray import tune

EXPERIMENT = {
    "description": "trial-speed benchmark: digits, small CNN, 12 trials x <= 10 epochs",
    "dataset": "digits",
    "model": "small_cnn",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 10,
    "grace_period": 1,
    "reduction_factor": 2,
    "num_samples": 12,
    "cpus_per_trial": 1,
    "n_startup_trials": 6,
}

PARAM_SPACE = {
    "lr": tune.loguniform(1e-3, 3e-2),
    "width": tune.choice([16, 32, 64]),
    "depth": tune.randint(1, 4),
    "batch_size": tune.choice([32, 64]),
}
