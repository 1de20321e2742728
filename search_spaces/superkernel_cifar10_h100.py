"""Single-Path NAS on CIFAR-10 for one H100, sized for ``tune_nas.compare``'s 10-minute goal
(the child ≥ 95 %).

The research's space (9×9 superkernels holding 3/5/7/9, expansions 3/6/9, skip; 7 blocks ×
2 MBConv layers at MobileNetV2's widths, its CIFAR strides); a 4-minute search of the outer
hyperparameters on a quarter of the training images (two supernets per GPU), then the chosen
child retrained from scratch for 40 epochs on all of them. bf16, channels_last, crop (pad 4)
and flips on the GPU, one-cycle SGD, batch 512. Unmeasured here (no GPU).
"""

from ray import tune

EXPERIMENT = {
    "description": "Single-Path NAS superkernel on CIFAR-10, one H100, 10-minute budget",
    "dataset": "cifar10",
    "data_dir": "data",
    "model": "superkernel",
    "metric": "val/acc",
    "mode": "max",
    "max_epochs": 12,
    "grace_period": 3,
    "reduction_factor": 3,
    "num_samples": 8,
    "cpus_per_trial": 4,
    "gpus_per_trial": 0.5,
    "checkpoint_every": 12,
    "n_startup_trials": 4,
    "train_fraction": 0.25,
    "time_budget_s": 240,
    "final_max_epochs": 40,
}

PARAM_SPACE = {
    "preset": "mobilenet",
    "kernel_sizes": "3,5,7,9",
    "expansions": "3,6,9",
    "cost": "flops",
    "width_mult": tune.choice([0.75, 1.0]),
    "dropout": 0.2,
    "optimizer": "sgd",
    "lr": tune.loguniform(0.05, 0.5),
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": tune.loguniform(1e-5, 5e-4),
    "label_smoothing": 0.1,
    "batch_size": 512,
    "schedule": "onecycle",
    "crop_pad": 4,
    "flip": True,
    "precision": "bf16",
    "channels_last": True,
    "cost_weight": tune.loguniform(1e-3, 0.3),
    "arch_lr": tune.loguniform(3e-3, 1e-1),
    "arch_warmup_epochs": tune.randint(1, 4),
}
