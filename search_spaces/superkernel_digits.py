"""Single-Path NAS on scikit-learn's digits: a small superkernel supernet, CPU, full resolution.

Each trial trains one supernet (9×9 depthwise superkernels with kernels 3/5/7/9, expansions
3/6/9, skip; 7 blocks × 2 layers at the full 8×8 resolution, small channels) and its learned
thresholds choose the architecture. Optuna's TPE and ASHA tune the outer hyperparameters:
learning rate, weight decay, the cost weight λ (``cost_weight``: the loss adds λ × the
chosen net's FLOPs as a fraction of the full supernet's), the thresholds' learning rate and
warm-up, and the width multiplier. Read each trial's choice from its ``arch/*`` metrics.
"""

from ray import tune

EXPERIMENT = {
    "description": "Single-Path NAS superkernel on digits (CPU, full resolution)",
    "dataset": "digits",
    "model": "superkernel",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 9,
    "grace_period": 3,
    "reduction_factor": 3,
    "num_samples": 8,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "n_startup_trials": 4,
}

PARAM_SPACE = {
    # the supernet (constants; comma-separated strings are the model's tuple arguments)
    "preset": "full_res",
    "channels": "8,8,16,16,24,24,32",
    "channel_divisor": 4,
    "kernel_sizes": "3,5,7,9",
    "expansions": "3,6,9",
    "cost": "flops",
    "width_mult": tune.choice([0.5, 1.0]),
    # weights
    "optimizer": "adamw",
    "lr": tune.loguniform(1e-3, 3e-2),
    "weight_decay": tune.loguniform(1e-6, 1e-3),
    "batch_size": 64,
    # the architecture search
    "cost_weight": tune.loguniform(1e-3, 1.0),
    "arch_lr": tune.loguniform(3e-3, 1e-1),
    "arch_warmup_epochs": tune.randint(0, 3),  # 0, 1 or 2 epochs of frozen thresholds
}
