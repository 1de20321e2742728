"""An emulator of Burgers' equation with a 1-D convolutional decoder (fields on a periodic grid).

The data set and objective are those of ``emulator_burgers`` (see it); the model maps the 5
inputs to a coarse field (a linear layer), then upsamples it ×2 per stage with convolutions
(circular padding suits the periodic domain) to the 2 × 64 output field.
"""

from ray import tune

EXPERIMENT = {
    "description": "1-D conv decoder emulator of the viscous Burgers equation (sim:burgers), 24 trials",
    "dataset": "sim:burgers",
    "model": "conv1d",
    "max_epochs": 60,
    "grace_period": 6,
    "reduction_factor": 3,
    "searcher": "tpe",
    "n_startup_trials": 8,
    "num_samples": 24,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "time_budget_s": 480,
}

PARAM_SPACE = {
    "optimizer": "adamw",
    "schedule": "cosine",
    "lr": tune.loguniform(3e-4, 1e-2),
    "weight_decay": tune.loguniform(1e-7, 1e-3),
    "batch_size": tune.choice([32, 64, 128]),
    "channels": tune.choice([16, 32, 64]),
    "upsamples": tune.randint(1, 4),
    "convs_per_stage": tune.randint(1, 3),
    "kernel_size": tune.choice([3, 5, 7]),
    "activation": tune.choice(["gelu", "silu"]),
    "padding": tune.choice(["zeros", "circular"]),
}
