"""Single-Path NAS on CIFAR-10: the superkernel supernet, for a GPU.

The research variant's search space (9×9 depthwise superkernels holding 3/5/7/9, expansions
3/6/9, skip; 7 blocks × 2 MBConv layers with MobileNetV2's channels × ``width_mult``), with
MobileNetV2's CIFAR downsampling (32 → 16 → 8 → 4 px: ``preset="mobilenet"``); set
``"preset": "full_res"`` for the research's full-resolution variant, which costs ~24× the
FLOPs. Random crop and flips on the GPU, bf16 autocast. Optuna + ASHA tune lr, weight decay,
the cost weight λ, the thresholds' learning rate and warm-up, and the width multiplier.
"""

from ray import tune

EXPERIMENT = {
    "description": "Single-Path NAS superkernel on CIFAR-10 (GPU)",
    "dataset": "cifar10",
    "data_dir": "data",
    "model": "superkernel",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 30,
    "grace_period": 3,
    "reduction_factor": 3,
    "num_samples": 12,
    "cpus_per_trial": 4,
    "gpus_per_trial": 1,
    "checkpoint_every": 5,
    "n_startup_trials": 6,
}

PARAM_SPACE = {
    "preset": "mobilenet",
    "kernel_sizes": "3,5,7,9",
    "expansions": "3,6,9",
    "cost": "flops",
    "width_mult": tune.choice([0.5, 0.75, 1.0]),
    "dropout": 0.2,
    "optimizer": "sgd",
    "lr": tune.loguniform(0.02, 0.3),
    "momentum": 0.9,
    "weight_decay": tune.loguniform(1e-5, 1e-3),
    "label_smoothing": 0.1,
    "batch_size": 256,
    "schedule": "onecycle",
    "crop_pad": 4,
    "flip": True,
    "precision": "auto",
    "channels_last": True,
    "cost_weight": tune.loguniform(1e-3, 1.0),
    "arch_lr": tune.loguniform(3e-3, 1e-1),
    "arch_warmup_epochs": tune.randint(0, 6),
}
