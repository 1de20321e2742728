"""Single-Path NAS on MNIST for one H100 (``tune_nas.compare --preset-suffix _h100``).

The superkernel supernet with MobileNetV2's downsampling on 28 px digits, a 4-minute search
on a quarter of the training images (two supernets per GPU), the child retrained for 10
epochs. Crop (pad 2), no flips, bf16, channels_last, one-cycle, batch 512.
"""

from ray import tune

EXPERIMENT = {
    "description": "Single-Path NAS superkernel on MNIST, one H100",
    "dataset": "mnist",
    "data_dir": "data",
    "model": "superkernel",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 8,
    "grace_period": 2,
    "reduction_factor": 3,
    "num_samples": 8,
    "cpus_per_trial": 4,
    "gpus_per_trial": 0.5,
    "checkpoint_every": 8,
    "n_startup_trials": 4,
    "train_fraction": 0.25,
    "time_budget_s": 240,
    "final_max_epochs": 10,
}

PARAM_SPACE = {
    "preset": "mobilenet",
    "kernel_sizes": "3,5,7,9",
    "expansions": "3,6,9",
    "cost": "flops",
    "width_mult": tune.choice([0.25, 0.5]),
    "optimizer": "sgd",
    "lr": tune.loguniform(0.02, 0.4),
    "momentum": 0.9,
    "weight_decay": tune.loguniform(1e-5, 1e-3),
    "label_smoothing": 0.1,
    "batch_size": 512,
    "schedule": "onecycle",
    "crop_pad": 2,
    "flip": False,
    "precision": "bf16",
    "channels_last": True,
    "cost_weight": tune.loguniform(1e-3, 0.3),
    "arch_lr": tune.loguniform(3e-3, 1e-1),
    "arch_warmup_epochs": tune.randint(0, 3),
}
