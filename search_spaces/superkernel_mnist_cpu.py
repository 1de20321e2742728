"""Single-Path NAS on MNIST at very low fidelity, for a CPU (``--preset-suffix _cpu``).

The research's search space (9×9 superkernels holding 3/5/7/9, expansions 3/6/9, skip;
7 blocks × 2 MBConv layers, MobileNetV2's CIFAR strides) at a quarter of MobileNetV2's
widths, searched on 2 % of the training images at 8 px: a few minutes per trial-epoch on 2
shared CPU cores. The thresholds' choice is the child ``tune_nas.compare`` retrains. The GPU
preset is ``superkernel_mnist_h100``.
"""

from ray import tune

EXPERIMENT = {
    "description": "Single-Path NAS superkernel on MNIST, CPU, low fidelity",
    "dataset": "mnist",
    "data_dir": "data",
    "model": "superkernel",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 2,
    "grace_period": 1,
    "reduction_factor": 2,
    "num_samples": 2,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "checkpoint_every": 2,
    "n_startup_trials": 2,
    "train_fraction": 0.02,
    "image_size": 8,
    "time_budget_s": 480,
    "final_max_epochs": 1,
}

PARAM_SPACE = {
    "preset": "mobilenet",
    "kernel_sizes": "3,5,7,9",
    "expansions": "3,6,9",
    "cost": "flops",
    "width_mult": 0.25,
    "dropout": 0.1,
    "optimizer": "adamw",
    "lr": tune.loguniform(2e-3, 2e-2),
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
    "batch_size": 64,
    "schedule": "onecycle",
    "crop_pad": 1,
    "flip": False,
    "cost_weight": tune.loguniform(1e-2, 1.0),
    "arch_lr": tune.loguniform(1e-2, 1e-1),
    "arch_warmup_epochs": 0,
}
