"""Tiny: the Single-Path-NAS superkernel on digits, 2 trials × 2 epochs (compare tests).

A narrow supernet (one searchable MBConv layer per block, 9×9 superkernels holding 3/5/7/9,
expansions 3/6, skip) at the full 8×8 resolution; its best trial's ``arch`` string is the
child ``mbconv_net`` that ``python -m tune_nas.compare`` retrains.
"""

from ray import tune

EXPERIMENT = {
    "description": "tiny superkernel search on digits (compare tests)",
    "dataset": "digits",
    "model": "superkernel",
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
    "preset": "full_res",
    "channels": "8,8,16,16,16,16,24",
    "channel_divisor": 4,
    "layers_per_block": 1,
    "kernel_sizes": "3,5,7,9",
    "expansions": "3,6",
    "cost": "flops",
    "width_mult": 1.0,
    "optimizer": "adamw",
    "lr": tune.loguniform(3e-3, 3e-2),
    "batch_size": 64,
    "cost_weight": tune.loguniform(1e-2, 1.0),
    "arch_lr": tune.loguniform(1e-2, 1e-1),
    "arch_warmup_epochs": 0,
}
