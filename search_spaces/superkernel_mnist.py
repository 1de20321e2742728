"""Single-Path NAS on MNIST: the superkernel supernet with MobileNetV2's downsampling.

28 px grey digits; blocks downsample like MobileNetV2 on small images (28 → 14 → 7 → 4 →
2 px), so 9×9 superkernels stay affordable; one GPU per trial (runs on CPU, slowly). The
outer search is as in ``superkernel_digits``: lr, weight decay, the cost weight λ, the
thresholds' learning rate and warm-up, and the width multiplier.
"""

from ray import tune

EXPERIMENT = {
    "description": "Single-Path NAS superkernel on MNIST (MobileNetV2 strides)",
    "dataset": "mnist",
    "data_dir": "data",
    "model": "superkernel",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 12,
    "grace_period": 2,
    "reduction_factor": 3,
    "num_samples": 12,
    "cpus_per_trial": 2,
    "gpus_per_trial": 1,
    "checkpoint_every": 3,
    "n_startup_trials": 6,
}

PARAM_SPACE = {
    "preset": "mobilenet",
    "kernel_sizes": "3,5,7,9",
    "expansions": "3,6,9",
    "cost": "flops",
    "width_mult": tune.choice([0.25, 0.5]),
    "optimizer": "adamw",
    "lr": tune.loguniform(1e-3, 1e-2),
    "weight_decay": tune.loguniform(1e-5, 1e-2),
    "batch_size": 256,
    "precision": "auto",
    "cost_weight": tune.loguniform(1e-3, 1.0),
    "arch_lr": tune.loguniform(3e-3, 1e-1),
    "arch_warmup_epochs": tune.randint(0, 4),
}
